"""Registering, reading, testing and deleting data sources (tenant session first; never commits).

Credentials never leave this module in clear text except as `ConnectionParams` handed to
`open_source`: rows hold the sealed password, and nothing here logs one.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from uds.datasources.connect import SourceLimits, open_source
from uds.datasources.credentials import CredentialCipher, CredentialError
from uds.datasources.errors import SourceError
from uds.datasources.guard import NetworkGuard
from uds.datasources.models import DataSource
from uds.datasources.params import ConnectionParams, check_params
from uds.errors import BadUserInput, Conflict, NotFound
from uds.observability import events

MAX_NAME = 100


def secret_context(tenant: str, source_id: uuid.UUID) -> str:
    """What a sealed password is bound to: it opens for this tenant and this row only."""
    return f"uds/data_source/{tenant}/{source_id}"


def _check_name(name: str) -> str:
    name = (name or "").strip()
    if not name or len(name) > MAX_NAME or any(ord(c) < 32 for c in name):
        raise BadUserInput(f"name must be 1-{MAX_NAME} printable characters")
    return name


async def count_sources(session: AsyncSession) -> int:
    return int(await session.scalar(select(func.count()).select_from(DataSource)) or 0)


async def register_source(
    session: AsyncSession,
    *,
    tenant: str,
    name: str,
    params: ConnectionParams,
    cipher: CredentialCipher,
    guard: NetworkGuard,
    created_by: str,
    max_sources: int | None = None,
) -> DataSource:
    """Store a new data source with its password sealed; nothing connects to it yet.

    The host must pass the network guard now (and will again before every connection).
    """
    name = _check_name(name)
    params = check_params(params)
    if max_sources is not None and await count_sources(session) >= max_sources:
        raise BadUserInput(f"this tenant may register at most {max_sources} data sources")
    if await session.scalar(select(DataSource.id).where(DataSource.name == name)) is not None:
        raise Conflict(f"a data source named {name!r} already exists")
    await guard.vet(params.host, params.port)
    source_id = uuid.uuid4()
    sealed = cipher.seal(params.password, context=secret_context(tenant, source_id))
    row = DataSource(
        id=source_id,
        name=name,
        host=params.host,
        port=params.port,
        database=params.database,
        username=params.user,
        sslmode=params.sslmode,
        schemas=list(params.schemas),
        secret=sealed,
        secret_kid=cipher.current_kid,
        created_by=created_by,
    )
    session.add(row)
    await session.flush()
    await session.refresh(row)
    await events.record(
        session,
        type="datasource.registered",
        tenant=tenant,
        subject=f"datasource/{source_id}",
        data={
            "id": str(source_id),
            "name": name,
            "host": params.host,
            "database": params.database,
            "actor": created_by,
        },
    )
    return row


async def list_sources(session: AsyncSession, *, after_name: str | None, limit: int) -> list[DataSource]:
    query = select(DataSource).order_by(DataSource.name).limit(limit)
    if after_name is not None:
        query = query.where(DataSource.name > after_name)
    return list((await session.scalars(query)).all())


async def get_source(session: AsyncSession, *, source_id: uuid.UUID) -> DataSource:
    row = await session.get(DataSource, source_id)
    if row is None:
        raise NotFound("no such data source")
    return row


def parse_id(value: object, what: str = "data source") -> uuid.UUID:
    try:
        return uuid.UUID(str(value))
    except ValueError:
        raise NotFound(f"no such {what}") from None


def connection_params(row: DataSource, *, tenant: str, cipher: CredentialCipher) -> ConnectionParams:
    """How to connect to a stored source, password opened (for open_source only)."""
    return ConnectionParams(
        host=row.host,
        port=row.port,
        database=row.database,
        user=row.username,
        password=cipher.open(row.secret, context=secret_context(tenant, row.id)),
        sslmode=row.sslmode,
        schemas=tuple(row.schemas or ()),
    )


async def delete_source(session: AsyncSession, *, tenant: str, source_id: uuid.UUID, actor: str) -> None:
    """Delete a source with its runs and catalogs (ON DELETE CASCADE)."""
    row = await get_source(session, source_id=source_id)
    await session.delete(row)
    await session.flush()
    await events.record(
        session,
        type="datasource.deleted",
        tenant=tenant,
        subject=f"datasource/{source_id}",
        data={"id": str(source_id), "name": row.name, "actor": actor},
    )


@dataclass(frozen=True, slots=True)
class SourceCheck:
    """The outcome of testing a connection: ok, or which kind of failure and why."""

    ok: bool
    message: str
    error_kind: str | None = None
    latency_ms: float | None = None
    server_version: str | None = None
    tables_visible: int | None = None


TEST_SQL = """
select current_setting('server_version') as version,
       (select count(*) from pg_class c join pg_namespace n on n.oid = c.relnamespace
        where c.relkind in ('r', 'p', 'v', 'm', 'f')
          and n.nspname not in ('pg_catalog', 'information_schema') and n.nspname not like 'pg\\_toast%'
          and has_table_privilege(c.oid, 'SELECT')) as tables
"""


async def check_source(params: ConnectionParams, *, guard: NetworkGuard, limits: SourceLimits) -> SourceCheck:
    """Connect with the discovery guards and read two catalog figures; never raises SourceError."""
    started = time.monotonic()
    try:
        async with open_source(params, guard=guard, limits=limits) as conn:
            async with conn.transaction(readonly=True):
                record = await conn.fetchrow(TEST_SQL)
    except SourceError as exc:
        return SourceCheck(ok=False, message=exc.message, error_kind=exc.kind)
    latency = round((time.monotonic() - started) * 1000, 1)
    assert record is not None
    return SourceCheck(
        ok=True,
        message=f"connected to PostgreSQL {record['version']}; {record['tables']} tables and views readable",
        latency_ms=latency,
        server_version=str(record["version"]),
        tables_visible=int(record["tables"]),
    )


@dataclass(frozen=True, slots=True)
class Rotation:
    rotated: int
    # (data source name, why) for passwords that could not be opened: left as they were.
    failed: tuple[tuple[str, str], ...] = ()


async def rotate_credentials(session: AsyncSession, *, tenant: str, cipher: CredentialCipher) -> Rotation:
    """Re-seal every password of the tenant that is not under the newest key.

    A password sealed with a key that is no longer configured cannot be re-sealed: it is
    reported in `failed` and left untouched, and the others are still rotated.
    """
    rows = (
        await session.scalars(select(DataSource).where(DataSource.secret_kid != cipher.current_kid))
    ).all()
    rotated = 0
    failed: list[tuple[str, str]] = []
    for row in rows:
        try:
            row.secret = cipher.rotate(row.secret, context=secret_context(tenant, row.id))
        except CredentialError as exc:
            failed.append((row.name, exc.message))
            continue
        row.secret_kid = cipher.current_kid
        rotated += 1
    await session.flush()
    return Rotation(rotated, tuple(failed))
