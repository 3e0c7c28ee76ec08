"""The tenant's audit log, newest first."""

from __future__ import annotations

from datetime import datetime

import strawberry
from sqlalchemy import select
from strawberry.types import Info

from uds.api.compiler import JsonList, Keyset, read_json
from uds.api.context import Context
from uds.api.pagination import Connection, connection, decode_int_cursor, page_size
from uds.api.rowsource import RowSource, row_source
from uds.observability.models import AuditEntry as AuditRow

_COLUMNS = (AuditRow.id, AuditRow.at, AuditRow.actor, AuditRow.action, AuditRow.target, AuditRow.allowed)


@strawberry.type
class AuditEntry:
    id: strawberry.ID
    at: datetime
    actor: str
    action: str
    target: str | None
    allowed: bool


# The same page as the query below, written as JSON by PostgreSQL (uds.api.compiler).
AUDIT_LIST = JsonList(
    row_source(RowSource(AuditEntry, AuditRow.__table__)),
    keyset=Keyset("audit", "int", ("id",), descending=True),
    order=(("id", True),),
)


async def audit_log(
    info: Info[Context, None], first: int | None = None, after: str | None = None
) -> Connection[AuditEntry]:
    ctx = info.context
    await ctx.authorize("audit.read")
    size = page_size(first, ctx.services.settings.max_page_size)
    before = decode_int_cursor("audit", after)
    fast = await read_json(info, AUDIT_LIST, size=size, after=None if before is None else (before,))
    if fast is not None:
        return fast  # type: ignore[return-value]
    query = select(*_COLUMNS).order_by(AuditRow.id.desc()).limit(size + 1)
    if before is not None:
        query = query.where(AuditRow.id < before)
    session = await ctx.tx.tenant()
    rows = (await session.execute(query)).all()
    entries = [
        AuditEntry(
            id=strawberry.ID(str(r.id)),
            at=r.at,
            actor=r.actor,
            action=r.action,
            target=r.target,
            allowed=r.allowed,
        )
        for r in rows
    ]
    return connection(entries, size=size, kind="audit", key=lambda e: int(e.id))
