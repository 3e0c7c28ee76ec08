"""The typed per-request GraphQL context."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.websockets import WebSocket

from uds.api.loaders import Loaders
from uds.auth.principal import Principal
from uds.db import TransactionScope
from uds.errors import Forbidden, PolicyUnavailable, TenantRequired, Unauthenticated
from uds.observability import metrics, tracing
from uds.observability.audit import record_denial
from uds.policies import ACTIONS, Decision, PolicyInput, TenantFacts
from uds.services import Services
from uds.tenants.registry import TenantRecord


@dataclass(eq=False)
class Context:
    request: Request | WebSocket
    services: Services
    principal: Principal | None
    tenant: TenantRecord | None
    tenant_role: str | None
    tx: TransactionScope
    loaders: Loaders
    after_commit: list[Callable[[], Awaitable[None]]] = field(default_factory=list)
    # Actions this request asked the policy engine about (checked by uds.api.guard.Policy).
    asked: set[str] = field(default_factory=set)
    # WebSocket only: the connection_init payload (set by strawberry), from which
    # GraphQLView.on_ws_connect sets principal, tenant and tenant_role.
    connection_params: dict[str, Any] | None = None
    # HTTP: the response strawberry merges headers and status from (rate limit headers).
    response: Response | WebSocket | None = None
    # Held while a guarded resolver runs (uds.api.guard.Policy): one database user at a time.
    serial: asyncio.Lock = field(default_factory=asyncio.Lock)
    # "query", "mutation" or "subscription", once the admission gate has seen the operation.
    operation: str | None = None
    # WebSocket: this connection's slot among the member's connections (key, lease id).
    ws_lease: tuple[str, str] | None = None
    # A query's graphql-core executor (uds.api.execution), for the JSON fast path.
    executor: Any = None
    # Set by an operation plan (uds.api.plans): list fields hand their statements here,
    # to run as one, instead of running them.
    deferred: list[Any] | None = None

    def require_principal(self) -> Principal:
        if self.principal is None:
            raise Unauthenticated("a bearer token is required")
        return self.principal

    async def refresh_membership(self) -> None:
        """Re-read the tenant and the principal's role in it (registry cache, invalidated on
        change): a WebSocket connection outlives both, and each subscription is checked anew.
        """
        if self.tenant is None or self.principal is None:
            return
        tenant = await self.services.registry.get(self.tenant.slug)
        if tenant is None:
            raise Forbidden("no such tenant, or you are not a member of it")
        self.tenant = tenant
        self.tenant_role = await self.services.registry.role_of(tenant, self.principal.subject)

    def require_tenant(self) -> TenantRecord:
        if self.tenant is None:
            raise TenantRequired("this field needs the X-Tenant-ID header")
        return self.tenant

    async def decide(self, action: str, resource: dict[str, Any] | None = None) -> Decision:
        """Ask the policy engine; missing principal or tenant raise their own errors.

        `resource` carries ids, `owner`, and the usage figures an action's limits need
        (rego/data.json). An engine that cannot decide raises PolicyUnavailable (fail closed).
        """
        self.asked.add(action)
        self.require_principal()
        rule = ACTIONS.get(action)
        if rule is not None and rule.scope == "tenant":
            self.require_tenant()
        with tracing.span("policy", action=action):
            try:
                decision = await self.services.policy.decide(
                    PolicyInput(
                        principal=self.principal,
                        action=action,
                        tenant_role=self.tenant_role,
                        tenant=_facts(self.tenant) if self.tenant else None,
                        resource=resource or {},
                    )
                )
            except PolicyUnavailable:
                metrics.policy_decision(action, "error")
                raise
        metrics.policy_decision(action, "allow" if decision.allow else "deny")
        return decision

    async def authorize(self, action: str, resource: dict[str, Any] | None = None) -> None:
        """Raise Forbidden (with the policy's reasons) unless the action is allowed."""
        decision = await self.decide(action, resource)
        if not decision.allow:
            await self.audit_denial(action, decision, resource)
            raise Forbidden(f"not allowed: {action}", reasons=decision.reasons)

    async def audit_denial(self, action: str, decision: Decision, resource: dict[str, Any] | None) -> None:
        """Record a denial: tenant actions in the tenant's log, platform ones in the platform's."""
        if self.principal is None:
            return
        rule = ACTIONS.get(action)
        tenant_scoped = rule is not None and rule.scope == "tenant" and self.tenant is not None
        await record_denial(
            self.services.engine,
            slug=self.tenant.slug if tenant_scoped and self.tenant else None,
            actor=self.principal.subject,
            action=action,
            reasons=decision.reasons,
            target=_target(resource),
        )


# TenantFacts per registry record: the record object stays the same until the registry
# re-reads the tenant, so its facts (effective plan features and limits) are computed
# once per record, not once per decision. Holding the record keeps its id unique.
_FACTS: dict[int, tuple[TenantRecord, TenantFacts]] = {}


def _facts(record: TenantRecord) -> TenantFacts:
    hit = _FACTS.get(id(record))
    if hit is not None and hit[0] is record:
        return hit[1]
    facts = TenantFacts.from_record(record)
    if len(_FACTS) >= 4096:
        _FACTS.clear()
    _FACTS[id(record)] = (record, facts)
    return facts


def _target(resource: dict[str, Any] | None) -> str | None:
    if not resource:
        return None
    return ",".join(f"{k}={v}" for k, v in sorted(resource.items()))
