"""GraphQL types and operations for tenants and memberships (admin and tenant-scoped)."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Annotated

import strawberry
from strawberry.types import Info

from uds.api.context import Context
from uds.api.pagination import Connection, connection, decode_cursor, page_size
from uds.api.results import Conflict, NotAllowed, NotFound, ValidationError, mutate
from uds.errors import NotFound as Missing
from uds.tenants import service
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


@strawberry.type
class Tenant:
    id: strawberry.ID
    slug: str
    name: str
    status: TenantStatus
    plan: str
    created_at: datetime | None = None

    @strawberry.field(description="Members of the tenant (needs the member.read action).")
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
        )

    @classmethod
    def from_record(cls, record: TenantRecord) -> Tenant:
        return cls(
            id=strawberry.ID(str(record.id)),
            slug=record.slug,
            name=record.name,
            status=TenantStatus(record.status),
            plan=record.plan,
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
    plan: str = "free"


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


def _member(row: MembershipRow) -> Member:
    return Member(subject=row.subject, role=TenantRole(row.role))


@strawberry.type
class AdminQuery:
    @strawberry.field
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

    @strawberry.field
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
    @strawberry.mutation
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

    @strawberry.mutation
    async def suspend_tenant(self, info: Info[Context, None], slug: str) -> TenantResult:
        return await self._set_status(info.context, slug, SUSPENDED, "tenant.suspend")

    @strawberry.mutation
    async def resume_tenant(self, info: Info[Context, None], slug: str) -> TenantResult:
        return await self._set_status(info.context, slug, ACTIVE, "tenant.resume")

    @strawberry.mutation(description="Drop the tenant's schema and data. `confirm` must equal the slug.")
    async def delete_tenant(self, info: Info[Context, None], slug: str, confirm: str) -> DeleteTenantResult:
        ctx = info.context

        async def work() -> TenantDeleted:
            await service.delete_tenant(
                await ctx.tx.core(), slug=slug, confirm=confirm, actor=ctx.require_principal().subject
            )
            _changed(ctx, slug)
            return TenantDeleted(slug=slug)

        return await mutate(ctx, "tenant.delete", work, {"slug": slug}, audit_in="")

    @strawberry.mutation
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
