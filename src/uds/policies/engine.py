"""The PolicyEngine protocol, what it is asked (PolicyInput) and what it answers (Decision).

Backends: `EmbeddedRegoEngine` (regopy, in process) and `OpaServerEngine` (an OPA server).
Both evaluate `rego/authz.rego` and fail closed: anything but a well-formed decision
raises `PolicyUnavailable`, which is not a denial.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

import orjson

from uds.auth.principal import Principal
from uds.errors import PolicyUnavailable
from uds.observability.metrics import cache_lookup
from uds.tenants.plans import effective

if TYPE_CHECKING:
    from uds.tenants.registry import TenantRecord


@dataclass(frozen=True, slots=True)
class TenantFacts:
    """What the policy knows of a tenant: its state, plan, and effective features and limits."""

    slug: str
    status: str
    plan: str
    features: frozenset[str] = frozenset()
    limits: Mapping[str, int] = field(default_factory=dict)

    @classmethod
    def from_record(cls, record: TenantRecord) -> TenantFacts:
        features, limits = effective(record.plan, record.limits)
        return cls(record.slug, record.status, record.plan, features, limits)

    def to_input(self) -> dict[str, Any]:
        return {
            "slug": self.slug,
            "status": self.status,
            "plan": self.plan,
            "features": sorted(self.features),
            "limits": dict(self.limits),
        }


@dataclass(frozen=True, slots=True)
class PolicyInput:
    """One question for the policy: may `principal` do `action` (to `resource`) here?"""

    principal: Principal | None
    action: str
    tenant_role: str | None = None
    tenant: TenantFacts | None = None
    # Ids, owner, and the usage figures the action's limits need (see rego/data.json).
    resource: Mapping[str, Any] = field(default_factory=dict)

    def to_input(self) -> dict[str, Any]:
        """The Rego `input` document (docs/policies.md describes it)."""
        principal = self.principal
        return {
            "principal": None
            if principal is None
            else {
                "sub": principal.subject,
                "kind": principal.kind,
                "platform_roles": sorted(principal.platform_roles),
                "tenant_role": self.tenant_role,
            },
            "tenant": self.tenant.to_input() if self.tenant else None,
            "action": self.action,
            "resource": {str(k): _plain(v) for k, v in self.resource.items()},
        }


def _plain(value: Any) -> Any:
    """A JSON value: ids such as UUIDs become strings."""
    if value is None or isinstance(value, str | int | float | bool):
        return value
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_plain(v) for v in value]
    return str(value)


def canonical_json(value: Any) -> str:
    """The same text for the same document, whatever the key order: the cache key.

    orjson when it can (on every request's path: a tenth of the standard encoder's time);
    the standard encoder for what orjson refuses (integers over 64 bits).
    """
    try:
        return orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()
    except TypeError:
        return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


@dataclass(frozen=True, slots=True)
class Decision:
    allow: bool
    reasons: tuple[str, ...] = ()


def parse_decision(value: Any) -> Decision:
    """Check a decision document from Rego; anything malformed fails closed."""
    if not isinstance(value, dict) or not isinstance(value.get("allow"), bool):
        raise PolicyUnavailable("the policy engine gave no decision")
    reasons = value.get("reasons", [])
    if not isinstance(reasons, list) or not all(isinstance(r, str) for r in reasons):
        raise PolicyUnavailable("the policy engine gave a malformed decision")
    return Decision(value["allow"], tuple(reasons))


class PolicyEngine(Protocol):
    async def decide(self, request: PolicyInput) -> Decision:
        """The decision, or PolicyUnavailable if the engine cannot give one."""
        ...

    async def ready(self) -> bool:
        """True if the engine can decide right now (bundle compiled, server reachable)."""
        ...

    async def aclose(self) -> None: ...


class DecisionCache:
    """A bounded LRU of decisions keyed by the canonical JSON of their input."""

    def __init__(self, maxsize: int) -> None:
        self.maxsize = maxsize
        self._data: OrderedDict[str, Decision] = OrderedDict()
        self.hits = 0
        self.misses = 0

    def get(self, key: str) -> Decision | None:
        decision = self._data.get(key)
        cache_lookup("policy", decision is not None)
        if decision is None:
            self.misses += 1
            return None
        self.hits += 1
        self._data.move_to_end(key)
        return decision

    def put(self, key: str, decision: Decision) -> None:
        self._data[key] = decision
        self._data.move_to_end(key)
        if len(self._data) > self.maxsize:
            self._data.popitem(last=False)

    def clear(self) -> None:
        self._data.clear()

    def __len__(self) -> int:
        return len(self._data)
