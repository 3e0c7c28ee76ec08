"""GraphQL for data sources: dataSources, dataSource, register/test/delete, startDiscovery.

A DataSource never carries its password: the type has no such field, and the password
goes from the input straight into `uds.datasources.service`, which seals it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import strawberry
from strawberry.types import Info

from uds.api.catalog import RUN_SOURCE, DiscoveryRun
from uds.api.compiler import JsonList, Keyset, read_json
from uds.api.context import Context
from uds.api.jobs import Job, StartJobResult
from uds.api.pagination import Connection, connection, decode_cursor, page_size
from uds.api.results import Conflict, NotAllowed, NotFound, ValidationError, mutate
from uds.api.rowsource import Relation, RowSource, row_source
from uds.datasources import service
from uds.datasources.connect import SourceLimits
from uds.datasources.guard import NetworkGuard
from uds.datasources.models import DataSource as SourceRow
from uds.datasources.params import ConnectionParams
from uds.discovery import service as discovery
from uds.discovery.models import DiscoveryRun as RunRow
from uds.errors import NotFound as Missing
from uds.jobs import service as jobs
from uds.tenants.plans import effective


@strawberry.input(description="Where a PostgreSQL data source is and how to log in.")
class DataSourceInput:
    name: str
    host: str = strawberry.field(description="Host name, IP address, or a unix socket directory (dev only).")
    database: str
    user: str
    password: str = strawberry.field(description="Stored encrypted; never returned by any field.")
    port: int | None = 5432
    sslmode: str | None = strawberry.field(
        default=None, description="disable, allow, prefer (default), require, verify-ca or verify-full."
    )
    schemas: list[str] | None = strawberry.field(
        default=None, description="Schemas to discover (default: all)."
    )


@strawberry.type(description="A registered PostgreSQL database. Its password is never returned.")
class DataSource:
    id: strawberry.ID
    name: str
    host: str
    port: int
    database: str
    user: str
    sslmode: str
    schemas: list[str]
    version: int = strawberry.field(description="Bumped on every change of the connection.")
    created_by: str
    created_at: datetime
    last_discovery_run: DiscoveryRun | None

    @classmethod
    def from_row(cls, row: SourceRow, last_run: RunRow | None = None) -> DataSource:
        return cls(
            id=strawberry.ID(str(row.id)),
            name=row.name,
            host=row.host,
            port=row.port,
            database=row.database,
            user=row.username,
            sslmode=row.sslmode,
            schemas=list(row.schemas or []),
            version=row.version,
            created_by=row.created_by,
            created_at=row.created_at,
            last_discovery_run=DiscoveryRun.from_row(last_run) if last_run else None,
        )


# The page `dataSources` reads, with each source's newest run (as discovery.latest_runs
# picks it), written as JSON by PostgreSQL (uds.api.compiler).
SOURCE_LIST = JsonList(
    row_source(
        RowSource(
            DataSource,
            SourceRow.__table__,
            columns={"user": "username"},
            empty_if_null=frozenset({"schemas"}),
            relations={
                "last_discovery_run": Relation(
                    RUN_SOURCE, match=(("data_source_id", "id"),), order=(("started_at", True), ("id", True))
                )
            },
        )
    ),
    keyset=Keyset("datasource", "text", ("name",), descending=False),
    order=(("name", False),),
)


@strawberry.type(description="The outcome of connecting to a data source with discovery's guards.")
class DataSourceTest:
    ok: bool
    message: str
    error_kind: str | None = strawberry.field(
        description="refused, unreachable, auth_failed, access_denied, timeout, gone or failed."
    )
    latency_ms: float | None
    server_version: str | None
    tables_visible: int | None
    data_source: DataSource


@strawberry.type
class DataSourceDeleted:
    id: strawberry.ID


RegisterDataSourceResult = Annotated[
    DataSource | ValidationError | Conflict | NotAllowed, strawberry.union("RegisterDataSourceResult")
]
TestDataSourceResult = Annotated[
    DataSourceTest | ValidationError | NotFound | NotAllowed, strawberry.union("TestDataSourceResult")
]
DeleteDataSourceResult = Annotated[
    DataSourceDeleted | NotFound | NotAllowed, strawberry.union("DeleteDataSourceResult")
]


def _guard(ctx: Context) -> NetworkGuard:
    return NetworkGuard.from_settings(ctx.services.settings)


async def data_sources(
    info: Info[Context, None], first: int | None = None, after: str | None = None
) -> Connection[DataSource]:
    """The tenant's data sources, by name."""
    ctx = info.context
    await ctx.authorize("datasource.read")
    size = page_size(first, ctx.services.settings.max_page_size)
    after_name = decode_cursor("datasource", after)
    fast = await read_json(info, SOURCE_LIST, size=size, after=None if after_name is None else (after_name,))
    if fast is not None:
        return fast  # type: ignore[return-value]
    session = await ctx.tx.tenant()
    rows = await service.list_sources(session, after_name=after_name, limit=size + 1)
    last = await discovery.latest_runs(session, data_source_ids=[r.id for r in rows[:size]])
    nodes = [DataSource.from_row(r, last.get(r.id)) for r in rows]
    return connection(nodes, size=size, kind="datasource", key=lambda d: d.name)


async def data_source(info: Info[Context, None], id: strawberry.ID) -> DataSource | None:
    ctx = info.context
    await ctx.authorize("datasource.read", {"id": str(id)})
    session = await ctx.tx.tenant()
    try:
        row = await service.get_source(session, source_id=service.parse_id(id))
    except Missing:
        return None
    last = await discovery.latest_runs(session, data_source_ids=[row.id])
    return DataSource.from_row(row, last.get(row.id))


async def register_data_source(info: Info[Context, None], input: DataSourceInput) -> RegisterDataSourceResult:
    """Register a PostgreSQL database; the password is sealed, the host checked by the network guard."""
    ctx = info.context
    tenant = ctx.require_tenant()
    session = await ctx.tx.tenant()
    count = await service.count_sources(session)

    async def work() -> DataSource:
        params = ConnectionParams(
            host=input.host,
            port=input.port if input.port is not None else 5432,
            database=input.database,
            user=input.user,
            password=input.password,
            sslmode=input.sslmode or "prefer",
            schemas=tuple(input.schemas or ()),
        )
        row = await service.register_source(
            session,
            tenant=tenant.slug,
            name=input.name,
            params=params,
            cipher=ctx.services.credentials,
            guard=_guard(ctx),
            created_by=ctx.require_principal().subject,
            max_sources=effective(tenant.plan, tenant.limits)[1].get("max_data_sources"),
        )
        return DataSource.from_row(row)

    return await mutate(ctx, "datasource.register", work, {"data_sources": count})


async def test_data_source(info: Info[Context, None], id: strawberry.ID) -> TestDataSourceResult:
    """Connect to the source as discovery would (read-only, with timeouts) and report."""
    ctx = info.context
    tenant = ctx.require_tenant()
    session = await ctx.tx.tenant()

    async def work() -> DataSourceTest:
        row = await service.get_source(session, source_id=service.parse_id(id))
        params = service.connection_params(row, tenant=tenant.slug, cipher=ctx.services.credentials)
        check = await service.check_source(
            params, guard=_guard(ctx), limits=SourceLimits.from_settings(ctx.services.settings)
        )
        return DataSourceTest(
            ok=check.ok,
            message=check.message,
            error_kind=check.error_kind,
            latency_ms=check.latency_ms,
            server_version=check.server_version,
            tables_visible=check.tables_visible,
            data_source=DataSource.from_row(row),
        )

    return await mutate(ctx, "datasource.test", work, {"id": str(id)})


async def delete_data_source(info: Info[Context, None], id: strawberry.ID) -> DeleteDataSourceResult:
    """Delete a data source, its discovery runs and their catalogs."""
    ctx = info.context
    tenant = ctx.require_tenant()
    session = await ctx.tx.tenant()

    async def work() -> DataSourceDeleted:
        await service.delete_source(
            session, tenant=tenant.slug, source_id=service.parse_id(id), actor=ctx.require_principal().subject
        )
        return DataSourceDeleted(id=id)

    return await mutate(ctx, "datasource.delete", work, {"id": str(id)})


async def start_discovery(info: Info[Context, None], data_source_id: strawberry.ID) -> StartJobResult:
    """Start a discovery job; follow it with the jobEvents subscription."""
    ctx = info.context
    session = await ctx.tx.tenant()
    running = await jobs.count_active(session)

    async def work() -> Job:
        row = await service.get_source(session, source_id=service.parse_id(data_source_id))
        state = await jobs.start_job(
            session,
            services=ctx.services,
            kind="discovery",
            params={"data_source_id": str(row.id)},
            created_by=ctx.require_principal().subject,
        )
        return Job.from_state(state)

    return await mutate(ctx, "discovery.start", work, {"running_jobs": running, "id": str(data_source_id)})
