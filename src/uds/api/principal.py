"""`me`: who the caller is, their platform roles, tenants, and what they may do."""

from __future__ import annotations

import re

import strawberry
from strawberry.types import Info

from uds.api.context import Context
from uds.api.guard import NoPolicy
from uds.api.tenants import Membership, Tenant, TenantRole
from uds.auth.principal import Principal as PrincipalValue
from uds.errors import BadUserInput
from uds.policies import ACTIONS


@strawberry.type
class Decision:
    allow: bool
    reasons: list[str]


@strawberry.type
class Principal:
    subject: str
    kind: str
    platform_roles: list[str]

    @strawberry.field(
        description="Tenants the principal is a member of.",
        extensions=[NoPolicy("the principal's own memberships; Query.me checked principal.read")],
    )
    async def tenants(self, info: Info[Context, None]) -> list[Membership]:
        rows = await info.context.loaders.memberships.load(self.subject)
        return [Membership(tenant=Tenant.from_row(t), role=TenantRole(m.role)) for m, t in rows]

    @strawberry.field(
        description="Whether the caller may do `action` in the X-Tenant-ID tenant.",
        extensions=[NoPolicy("explains a decision; asking is the whole point")],
    )
    async def can(
        self, info: Info[Context, None], action: str, resource_id: strawberry.ID | None = None
    ) -> Decision:
        ctx = info.context
        if not ACTION_NAME.fullmatch(action):
            # Not even shaped like an action: refused here, so arbitrary text (control
            # characters included) never reaches the policy engine and its answers.
            raise BadUserInput("action must be an action name such as tenant.read")
        resource = {"id": str(resource_id)} if resource_id is not None else {}
        if ctx.tenant is None and _needs_tenant(action):
            return Decision(allow=False, reasons=["this action needs a tenant (X-Tenant-ID)"])
        decision = await ctx.decide(action, resource)
        return Decision(allow=decision.allow, reasons=list(decision.reasons))

    @classmethod
    def from_value(cls, value: PrincipalValue) -> Principal:
        return cls(subject=value.subject, kind=value.kind, platform_roles=sorted(value.platform_roles))


ACTION_NAME = re.compile(r"[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*){0,4}")


def _needs_tenant(action: str) -> bool:
    rule = ACTIONS.get(action)
    return rule is not None and rule.scope == "tenant"


async def me(info: Info[Context, None]) -> Principal:
    ctx = info.context
    await ctx.authorize("principal.read")
    return Principal.from_value(ctx.require_principal())
