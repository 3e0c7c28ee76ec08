"""Tenant lifecycle: create, suspend, resume, delete, memberships.

Functions take the caller's session and never commit: the request (or CLI command) that
calls them owns the transaction, which is what makes provisioning atomic.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import delete, func, select, text
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from uds.errors import BadUserInput, Conflict, NotFound
from uds.migrations import provision_tenant_schema
from uds.observability import events
from uds.tenants.models import ACTIVE, ROLES, SUSPENDED, Membership, PlatformAudit, Tenant
from uds.tenants.plans import check_overrides, check_plan
from uds.tenants.slugs import check_slug, tenant_schema

MAX_NAME = 200


async def get_tenant(session: AsyncSession, *, slug: str) -> Tenant:
    tenant = await session.scalar(select(Tenant).where(Tenant.slug == check_slug(slug)))
    if tenant is None:
        raise NotFound(f"no tenant {slug!r}")
    return tenant


async def list_tenants(session: AsyncSession, *, after_slug: str | None, limit: int) -> Sequence[Tenant]:
    query = select(Tenant).order_by(Tenant.slug).limit(limit)
    if after_slug is not None:
        query = query.where(Tenant.slug > after_slug)
    return (await session.scalars(query)).all()


async def create_tenant(
    session: AsyncSession, *, slug: str, name: str, plan: str = "free", actor: str
) -> Tenant:
    """Insert the tenant row, create its schema and run the tenant migrations.

    All in the caller's transaction: if any step fails, rolling back leaves no row and
    no schema.
    """
    check_slug(slug)
    check_plan(plan)
    name = name.strip()
    if not name or len(name) > MAX_NAME:
        raise BadUserInput(f"tenant name must be 1-{MAX_NAME} characters")
    schema = tenant_schema(slug)
    conn = await session.connection()
    exists = await conn.scalar(
        text(
            "select exists(select 1 from uds.tenants where slug = :s)"
            " or exists(select 1 from pg_namespace where nspname = :n)"
        ),
        {"s": slug, "n": schema},
    )
    if exists:
        raise Conflict(f"tenant {slug!r} already exists")
    tenant = Tenant(slug=slug, name=name, plan=plan, status=ACTIVE, limits={})
    session.add(tenant)
    try:
        await session.flush()
    except IntegrityError:
        raise Conflict(f"tenant {slug!r} already exists") from None
    await provision_tenant_schema(conn, slug)
    _audit(session, actor=actor, action="tenant.create", target=slug, detail={"plan": plan})
    data = {"slug": slug, "name": name, "plan": plan, "actor": actor}
    await events.record(session, type="tenant.created", tenant=slug, data=data)
    return tenant


async def set_status(session: AsyncSession, *, slug: str, status: str, actor: str) -> Tenant:
    if status not in (ACTIVE, SUSPENDED):
        raise BadUserInput("status must be active or suspended")
    tenant = await get_tenant(session, slug=slug)
    previous = tenant.status
    tenant.status = status
    tenant.updated_at = func.now()
    await session.flush()
    await session.refresh(tenant)
    action = "tenant.suspend" if status == SUSPENDED else "tenant.resume"
    _audit(session, actor=actor, action=action, target=slug)
    if previous != status:
        kind = "tenant.suspended" if status == SUSPENDED else "tenant.resumed"
        await events.record(session, type=kind, tenant=slug, data={"slug": slug, "actor": actor})
    return tenant


async def set_limits(
    session: AsyncSession, *, slug: str, overrides: dict[str, Any], replace: bool = False, actor: str
) -> Tenant:
    """Set per-tenant overrides of the plan's limits and features (validated)."""
    clean = check_overrides(overrides)
    tenant = await get_tenant(session, slug=slug)
    tenant.limits = clean if replace else {**tenant.limits, **clean}
    tenant.updated_at = func.now()
    await session.flush()
    await session.refresh(tenant)
    _audit(session, actor=actor, action="tenant.limits.set", target=slug, detail=clean)
    return tenant


async def delete_tenant(session: AsyncSession, *, slug: str, confirm: str, actor: str) -> None:
    """Drop the tenant's schema and row (memberships cascade). `confirm` must equal slug."""
    if confirm != slug:
        raise BadUserInput("confirm must equal the tenant slug")
    tenant = await get_tenant(session, slug=slug)
    conn = await session.connection()
    await conn.execute(text(f'drop schema if exists "{tenant_schema(slug)}" cascade'))
    await session.delete(tenant)
    await session.flush()
    _audit(session, actor=actor, action="tenant.delete", target=slug)
    await events.record(session, type="tenant.deleted", tenant=slug, data={"slug": slug, "actor": actor})


async def set_member(session: AsyncSession, *, slug: str, subject: str, role: str, actor: str) -> Membership:
    """Add a member or change their role (upsert)."""
    if role not in ROLES:
        raise BadUserInput(f"role must be one of {', '.join(ROLES)}")
    subject = subject.strip()
    if not subject or len(subject) > 255:
        raise BadUserInput("subject must be 1-255 characters")
    tenant = await get_tenant(session, slug=slug)
    before = await session.scalar(
        select(Membership.role).where(Membership.tenant_id == tenant.id, Membership.subject == subject)
    )
    stmt = (
        insert(Membership)
        .values(tenant_id=tenant.id, subject=subject, role=role)
        .on_conflict_do_update(index_elements=["tenant_id", "subject"], set_={"role": role})
        .returning(Membership)
    )
    member = (await session.scalars(stmt)).one()
    _audit(session, actor=actor, action="member.set", target=slug, detail={"subject": subject, "role": role})
    if before != role:
        data = {"subject": subject, "role": role, "actor": actor}
        if before is not None:
            data["previousRole"] = before
        kind = "member.added" if before is None else "member.updated"
        await events.record(session, type=kind, tenant=slug, subject=f"member/{subject}", data=data)
    return member


async def remove_member(session: AsyncSession, *, slug: str, subject: str, actor: str) -> bool:
    tenant = await get_tenant(session, slug=slug)
    result = await session.execute(
        delete(Membership).where(Membership.tenant_id == tenant.id, Membership.subject == subject)
    )
    _audit(session, actor=actor, action="member.remove", target=slug, detail={"subject": subject})
    removed = bool(result.rowcount)  # type: ignore[attr-defined]
    if removed:
        await events.record(
            session,
            type="member.removed",
            tenant=slug,
            subject=f"member/{subject}",
            data={"subject": subject, "actor": actor},
        )
    return removed


async def members_of(session: AsyncSession, *, tenant_id: Any) -> Sequence[Membership]:
    query = select(Membership).where(Membership.tenant_id == tenant_id).order_by(Membership.subject)
    return (await session.scalars(query)).all()


def _audit(
    session: AsyncSession,
    *,
    actor: str,
    action: str,
    target: str | None,
    detail: dict[str, Any] | None = None,
) -> None:
    session.add(PlatformAudit(actor=actor, action=action, target=target, detail=detail or {}))
