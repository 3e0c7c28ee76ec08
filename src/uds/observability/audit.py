"""Writing the tenant's audit log: every mutation, and every denial.

Mutations are recorded in the request's own transaction, so the entry commits or rolls
back with the change it describes. Denials are recorded in a transaction of their own,
because the request that was denied may well be rolled back.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from uds.db import tenant_options
from uds.observability.models import AuditEntry
from uds.tenants.models import PlatformAudit

_TABLE = AuditEntry.__table__


async def record(
    conn: AsyncConnection,
    *,
    slug: str,
    actor: str,
    action: str,
    target: str | None = None,
    allowed: bool = True,
    detail: Mapping[str, Any] | None = None,
) -> None:
    """Append an entry to `slug`'s audit log on the caller's connection and transaction."""
    bound = await conn.execution_options(**tenant_options(slug))
    await bound.execute(
        insert(_TABLE).values(
            actor=actor, action=action, target=target, allowed=allowed, detail=dict(detail or {})
        )
    )


async def record_denial(
    engine: AsyncEngine,
    *,
    slug: str | None,
    actor: str,
    action: str,
    reasons: tuple[str, ...],
    target: str | None,
) -> None:
    """Append a denial in its own transaction, so it is kept whatever the request does.

    With a slug it goes to that tenant's log; platform-level denials go to
    `uds.platform_audit` (the tenant they name may not even exist).
    """
    detail = {"reasons": list(reasons)}
    async with engine.begin() as conn:
        if slug:
            await record(
                conn, slug=slug, actor=actor, action=action, target=target, allowed=False, detail=detail
            )
        else:
            await conn.execute(
                insert(PlatformAudit.__table__).values(
                    actor=actor, action=action, target=target, allowed=False, detail=detail
                )
            )


BREAK_GLASS = "break_glass.access"


async def record_break_glass(
    engine: AsyncEngine, *, slug: str, actor: str, target: str, detail: Mapping[str, Any]
) -> None:
    """A platform admin who is not a member entered tenant `slug`: tell both audit logs.

    In a transaction of its own, committed before the request runs, so the entry stays
    whatever the request does; the tenant's admins read it with `auditLog`.
    """
    entry = {"actor": actor, "action": BREAK_GLASS, "target": target, "allowed": True, "detail": dict(detail)}
    async with engine.begin() as conn:
        await record(conn, slug=slug, **entry)
        await conn.execute(insert(PlatformAudit.__table__).values(**{**entry, "target": f"{slug}: {target}"}))
