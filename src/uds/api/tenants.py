"""GraphQL types and operations for tenants and memberships (admin and tenant-scoped)."""

from __future__ import annotations

import dataclasses
import enum
from datetime import datetime
from typing import Annotated, Any

import strawberry
from strawberry.types import Info

from uds.api.context import Context
from uds.api.guard import NoPolicy, Policy
from uds.api.pagination import Connection, connection, decode_cursor, page_size
from uds.api.results import Conflict, NotAllowed, NotFound, ValidationError, mutate
from uds.auth import clients
from uds.errors import NotFound as Missing
from uds.tenants import plans, service
from uds.tenants.models import ACTIVE, SUSPENDED
from uds.tenants.models import Membership as MembershipRow
from uds.tenants.models import Tenant as TenantRow
from uds.tenants.registry import TenantRecord


@strawberry.enum
class TenantRole(enum.Enum):
    VIEWER = "VIEWER"
    EDITOR = "EDITOR"
    ADMIN = "ADMIN"


@strawberry.enum
class TenantStatus(enum.Enum):
    ACTIVE = "active"
    SUSPENDED = "suspended"


@strawberry.type
class Member:
    subject: str
    role: TenantRole


@strawberry.type(description="Effective limits: the plan's, overridden per tenant.")
class TenantLimits:
    max_data_sources: int
    max_concurrent_jobs: int
    discovery_row_budget: float
    max_dashboards: int
    max_members: int
    requests_per_second: int
    request_burst: int
    member_requests_per_second: int
    member_request_burst: int
    max_ws_connections_per_member: int


@strawberry.input
class TenantLimitsInput:
    max_data_sources: int | None = None
    max_concurrent_jobs: int | None = None
    discovery_row_budget: float | None = None
    max_dashboards: int | None = None
    max_members: int | None = None
    requests_per_second: int | None = None
    request_burst: int | None = None
    member_requests_per_second: int | None = None
    member_request_burst: int | None = None
    max_ws_connections_per_member: int | None = None
    features: list[str] | None = None
    replace: bool = strawberry.field(
        default=False, description="Drop every earlier override instead of merging with them."
    )

    def overrides(self) -> dict[str, Any]:
        values = {
            "max_data_sources": self.max_data_sources,
            "max_concurrent_jobs": self.max_concurrent_jobs,
            "discovery_row_budget": _whole(self.discovery_row_budget),
            "max_dashboards": self.max_dashboards,
            "max_members": self.max_members,
            "requests_per_second": self.requests_per_second,
            "request_burst": self.request_burst,
            "member_requests_per_second": self.member_requests_per_second,
            "member_request_burst": self.member_request_burst,
            "max_ws_connections_per_member": self.max_ws_connections_per_member,
            "features": self.features,
        }
        return {k: v for k, v in values.items() if v is not None}


def _whole(value: float | None) -> int | float | None:
    return int(value) if value is not None and float(value).is_integer() else value


@strawberry.type
class ServiceClient:
    id: strawberry.ID
    name: str
    client_id: str
    role: TenantRole
    revoked: bool
    client_secret: str | None = strawberry.field(
        default=None, description="Only in the result of createServiceClient; never readable again."
    )


@strawberry.type
class Tenant:
    id: strawberry.ID
    slug: str
    name: str
    status: TenantStatus
    plan: str
    created_at: datetime | None = None
    overrides: strawberry.Private[dict[str, Any]] = dataclasses.field(default_factory=dict)

    @strawberry.field(
        description="Features of the plan, with the tenant's overrides.",
        extensions=[NoPolicy("computed from the parent tenant")],
    )
    def features(self) -> list[str]:
        return sorted(plans.effective(self.plan, self.overrides)[0])

    @strawberry.field(extensions=[NoPolicy("computed from the parent tenant")])
    def limits(self) -> TenantLimits:
        return TenantLimits(**plans.effective(self.plan, self.overrides)[1])

    @strawberry.field(
        description="Service clients of the tenant (platform admins).", extensions=[Policy("tenant.list")]
    )
    async def service_clients(self, info: Info[Context, None]) -> list[ServiceClient]:
        ctx = info.context
        await ctx.authorize("tenant.list")
        rows = await clients.list_clients(await ctx.tx.core(), tenant_id=self.id)
        return [_client(r) for r in rows]

    @strawberry.field(
        description="Members of the tenant (needs the member.read action).",
        extensions=[Policy("member.read", "tenant.list")],
    )
    async def members(self, info: Info[Context, None]) -> list[Member]:
        ctx = info.context
        if ctx.tenant is None or ctx.tenant.slug != self.slug:
            await ctx.authorize("tenant.list")
        else:
            await ctx.authorize("member.read")
        rows = await service.members_of(await ctx.tx.core(), tenant_id=self.id)
        return [Member(subject=m.subject, role=TenantRole(m.role)) for m in rows]

    @classmethod
    def from_row(cls, row: TenantRow) -> Tenant:
        return cls(
            id=strawberry.ID(str(row.id)),
            slug=row.slug,
            name=row.name,
            status=TenantStatus(row.status),
            plan=row.plan,
            created_at=row.created_at,
            overrides=dict(row.limits or {}),
        )

    @classmethod
    def from_record(cls, record: TenantRecord) -> Tenant:
        return cls(
            id=strawberry.ID(str(record.id)),
            slug=record.slug,
            name=record.name,
            status=TenantStatus(record.status),
            plan=record.plan,
            overrides=dict(record.limits or {}),
        )


@strawberry.type
class Membership:
    tenant: Tenant
    role: TenantRole


@strawberry.type
class TenantDeleted:
    slug: str


@strawberry.type
class MemberRemoved:
    subject: str
    removed: bool


@strawberry.input
class CreateTenantInput:
    slug: str
    name: str
    plan: str = strawberry.field(default="free", description="free, pro or enterprise")


CreateTenantResult = Annotated[
    Tenant | ValidationError | Conflict | NotAllowed, strawberry.union("CreateTenantResult")
]
TenantResult = Annotated[Tenant | ValidationError | NotFound | NotAllowed, strawberry.union("TenantResult")]
DeleteTenantResult = Annotated[
    TenantDeleted | ValidationError | NotFound | NotAllowed, strawberry.union("DeleteTenantResult")
]
MemberResult = Annotated[Member | ValidationError | NotFound | NotAllowed, strawberry.union("MemberResult")]
RemoveMemberResult = Annotated[
    MemberRemoved | ValidationError | NotFound | NotAllowed, strawberry.union("RemoveMemberResult")
]


ServiceClientResult = Annotated[
    ServiceClient | ValidationError | NotFound | NotAllowed, strawberry.union("ServiceClientResult")
]


def _client(row: clients.ServiceClient, secret: str | None = None) -> ServiceClient:
    return ServiceClient(
        id=strawberry.ID(str(row.id)),
        name=row.name,
        client_id=row.client_id,
        role=TenantRole(row.role),
        revoked=row.revoked_at is not None,
        client_secret=secret,
    )


def _member(row: MembershipRow) -> Member:
    return Member(subject=row.subject, role=TenantRole(row.role))


@strawberry.type
class AdminQuery:
    @strawberry.field(extensions=[Policy("tenant.list")])
    async def tenants(
        self, info: Info[Context, None], first: int | None = None, after: str | None = None
    ) -> Connection[Tenant]:
        ctx = info.context
        await ctx.authorize("tenant.list")
        size = page_size(first, ctx.services.settings.max_page_size)
        rows = await service.list_tenants(
            await ctx.tx.core(), after_slug=decode_cursor("tenant", after), limit=size + 1
        )
        return connection([Tenant.from_row(r) for r in rows], size=size, kind="tenant", key=lambda t: t.slug)

    @strawberry.field(extensions=[Policy("tenant.list")])
    async def tenant(self, info: Info[Context, None], slug: str) -> Tenant | None:
        ctx = info.context
        await ctx.authorize("tenant.list")
        try:
            return Tenant.from_row(await service.get_tenant(await ctx.tx.core(), slug=slug))
        except Missing:
            return None


def _changed(ctx: Context, slug: str) -> None:
    ctx.after_commit.append(lambda: ctx.services.registry.announce(slug))


@strawberry.type
class AdminMutation:
    @strawberry.mutation(extensions=[Policy("tenant.create")])
    async def create_tenant(self, info: Info[Context, None], input: CreateTenantInput) -> CreateTenantResult:
        ctx = info.context

        async def work() -> Tenant:
            row = await service.create_tenant(
                await ctx.tx.core(),
                slug=input.slug,
                name=input.name,
                plan=input.plan,
                actor=ctx.require_principal().subject,
            )
            await (await ctx.tx.core()).refresh(row)
            _changed(ctx, input.slug)
            return Tenant.from_row(row)

        return await mutate(ctx, "tenant.create", work, {"slug": input.slug}, audit_in=input.slug)

    async def _set_status(self, ctx: Context, slug: str, status: str, action: str) -> TenantResult:
        async def work() -> Tenant:
            row = await service.set_status(
                await ctx.tx.core(), slug=slug, status=status, actor=ctx.require_principal().subject
            )
            _changed(ctx, slug)
            return Tenant.from_row(row)

        return await mutate(ctx, action, work, {"slug": slug}, audit_in=slug)

    @strawberry.mutation(extensions=[Policy("tenant.suspend")])
    async def suspend_tenant(self, info: Info[Context, None], slug: str) -> TenantResult:
        return await self._set_status(info.context, slug, SUSPENDED, "tenant.suspend")

    @strawberry.mutation(extensions=[Policy("tenant.resume")])
    async def resume_tenant(self, info: Info[Context, None], slug: str) -> TenantResult:
        return await self._set_status(info.context, slug, ACTIVE, "tenant.resume")

    @strawberry.mutation(
        description="Drop the tenant's schema and data. `confirm` must equal the slug.",
        extensions=[Policy("tenant.delete")],
    )
    async def delete_tenant(self, info: Info[Context, None], slug: str, confirm: str) -> DeleteTenantResult:
        ctx = info.context

        async def work() -> TenantDeleted:
            await service.delete_tenant(
                await ctx.tx.core(), slug=slug, confirm=confirm, actor=ctx.require_principal().subject
            )
            _changed(ctx, slug)
            return TenantDeleted(slug=slug)

        return await mutate(ctx, "tenant.delete", work, {"slug": slug}, audit_in="")

    @strawberry.mutation(extensions=[Policy("tenant.member.add")])
    async def add_member(
        self, info: Info[Context, None], slug: str, subject: str, role: TenantRole
    ) -> MemberResult:
        ctx = info.context

        async def work() -> Member:
            row = await service.set_member(
                await ctx.tx.core(),
                slug=slug,
                subject=subject,
                role=role.value,
                actor=ctx.require_principal().subject,
            )
            _changed(ctx, slug)
            return _member(row)

        return await mutate(ctx, "tenant.member.add", work, {"slug": slug, "subject": subject}, audit_in=slug)

    @strawberry.mutation(
        description="Override the plan's limits and features for one tenant.",
        extensions=[Policy("tenant.limits.set")],
    )
    async def set_tenant_limits(
        self, info: Info[Context, None], slug: str, limits: TenantLimitsInput
    ) -> TenantResult:
        ctx = info.context

        async def work() -> Tenant:
            row = await service.set_limits(
                await ctx.tx.core(),
                slug=slug,
                overrides=limits.overrides(),
                replace=limits.replace,
                actor=ctx.require_principal().subject,
            )
            _changed(ctx, slug)
            return Tenant.from_row(row)

        return await mutate(ctx, "tenant.limits.set", work, {"slug": slug}, audit_in=slug)

    @strawberry.mutation(
        description="A client-credentials identity for one tenant; the secret is shown once.",
        extensions=[Policy("serviceclient.create")],
    )
    async def create_service_client(
        self, info: Info[Context, None], slug: str, name: str, role: TenantRole
    ) -> ServiceClientResult:
        ctx = info.context

        async def work() -> ServiceClient:
            row, secret = await clients.create_client(
                await ctx.tx.core(),
                slug=slug,
                name=name,
                role=role.value,
                actor=ctx.require_principal().subject,
            )
            _changed(ctx, slug)
            return _client(row, secret)

        return await mutate(ctx, "serviceclient.create", work, {"slug": slug}, audit_in=slug)

    @strawberry.mutation(
        description="Revoke a service client; its tokens stop working at once.",
        extensions=[Policy("serviceclient.revoke")],
    )
    async def revoke_service_client(
        self, info: Info[Context, None], slug: str, client_id: str
    ) -> ServiceClientResult:
        ctx = info.context

        async def work() -> ServiceClient:
            row = await clients.revoke_client(
                await ctx.tx.core(), slug=slug, client_id=client_id, actor=ctx.require_principal().subject
            )
            _changed(ctx, slug)
            return _client(row)

        return await mutate(ctx, "serviceclient.revoke", work, {"slug": slug}, audit_in=slug)


async def set_member(info: Info[Context, None], subject: str, role: TenantRole) -> MemberResult:
    """Add a member to the X-Tenant-ID tenant or change their role (tenant ADMIN)."""
    ctx = info.context
    tenant = ctx.require_tenant()

    async def work() -> Member:
        row = await service.set_member(
            await ctx.tx.core(),
            slug=tenant.slug,
            subject=subject,
            role=role.value,
            actor=ctx.require_principal().subject,
        )
        _changed(ctx, tenant.slug)
        return _member(row)

    return await mutate(ctx, "member.write", work, {"subject": subject})


async def remove_member(info: Info[Context, None], subject: str) -> RemoveMemberResult:
    """Remove a member from the X-Tenant-ID tenant (tenant ADMIN)."""
    ctx = info.context
    tenant = ctx.require_tenant()

    async def work() -> MemberRemoved:
        removed = await service.remove_member(
            await ctx.tx.core(), slug=tenant.slug, subject=subject, actor=ctx.require_principal().subject
        )
        _changed(ctx, tenant.slug)
        return MemberRemoved(subject=subject, removed=removed)

    return await mutate(ctx, "member.write", work, {"subject": subject})
