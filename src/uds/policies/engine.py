"""The PolicyEngine protocol and the role-table engine.

The role table is the first engine; the Rego engines (embedded regopy and an OPA server)
implement the same protocol and read the same action names.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from uds.auth.principal import Principal

Scope = Literal["principal", "tenant", "platform"]
ROLE_RANK = {"VIEWER": 1, "EDITOR": 2, "ADMIN": 3}


@dataclass(frozen=True, slots=True)
class Action:
    """What an action needs: who may ask, the least tenant role, and whether it writes."""

    scope: Scope
    min_role: str | None = None
    write: bool = False


# Every action an API field may name. A field naming an action missing here is denied.
ACTIONS: Mapping[str, Action] = {
    "principal.read": Action("principal"),
    "tenant.read": Action("tenant", "VIEWER"),
    "member.read": Action("tenant", "VIEWER"),
    "member.write": Action("tenant", "ADMIN", write=True),
    "audit.read": Action("tenant", "ADMIN"),
    "tenant.list": Action("platform"),
    "tenant.create": Action("platform", write=True),
    "tenant.suspend": Action("platform", write=True),
    "tenant.resume": Action("platform", write=True),
    "tenant.delete": Action("platform", write=True),
    "tenant.member.add": Action("platform", write=True),
    "tenant.limits.set": Action("platform", write=True),
    "serviceclient.create": Action("platform", write=True),
    "serviceclient.revoke": Action("platform", write=True),
}


@dataclass(frozen=True, slots=True)
class PolicyInput:
    principal: Principal | None
    action: str
    tenant_slug: str | None = None
    tenant_status: str | None = None
    tenant_role: str | None = None
    resource: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Decision:
    allow: bool
    reasons: tuple[str, ...] = ()


class PolicyEngine(Protocol):
    async def decide(self, request: PolicyInput) -> Decision: ...

    async def ready(self) -> bool: ...


class RoleTableEngine:
    """Decides from `ACTIONS`: role hierarchy, platform admins, suspended tenants."""

    async def ready(self) -> bool:
        return True

    async def decide(self, request: PolicyInput) -> Decision:
        action = ACTIONS.get(request.action)
        if action is None:
            return Decision(False, (f"unknown action {request.action}",))
        principal = request.principal
        if principal is None:
            return Decision(False, ("authentication required",))
        if action.scope == "principal":
            return Decision(True)
        if action.scope == "platform":
            if principal.is_platform_admin:
                return Decision(True)
            return Decision(False, ("platform admin role required",))
        if request.tenant_slug is None:
            return Decision(False, ("this action needs a tenant (X-Tenant-ID)",))
        if action.write and request.tenant_status == "suspended":
            return Decision(False, ("tenant is suspended: read-only",))
        if principal.is_platform_admin:
            return Decision(True)
        have = ROLE_RANK.get(request.tenant_role or "", 0)
        need = ROLE_RANK[action.min_role or "VIEWER"]
        if have >= need:
            return Decision(True)
        return Decision(False, (f"role {action.min_role} or higher required",))
