"""GraphQL for dashboards: generateDashboard, dashboards, dashboard, widgetData,
updateDashboard, deleteDashboard, and the Dashboard, Widget and WidgetData types.

Dashboards are read from the tenant schema (uds.dashboards.service); widget data comes
from the data source through uds.dashboards.service.widget_data (guarded read-only
connection, row limit, timeout, Redis cache).
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any

import strawberry
from strawberry.scalars import JSON
from strawberry.types import Info

from uds.api.context import Context
from uds.api.datasources import DataSource
from uds.api.guard import NoPolicy, Policy
from uds.api.jobs import Job, StartJobResult
from uds.api.pagination import Connection, connection, decode_time_id_cursor, page_size, time_id_key
from uds.api.results import NotAllowed, NotFound, ValidationError, mutate
from uds.dashboards import service
from uds.dashboards.generator import MAX_WIDGETS
from uds.dashboards.grafana import grafana_dashboard
from uds.dashboards.links import dashboard_url as signed_url
from uds.datasources import service as sources
from uds.discovery import service as discovery
from uds.errors import BadUserInput
from uds.errors import NotFound as Missing
from uds.jobs import service as jobs

MAX_GOAL = 500
MAX_TABLES = 50


@strawberry.type(description="A place on the dashboard's 12-column grid (x: column 0-11, w: columns).")
class GridPosition:
    x: int
    y: int
    w: int
    h: int


@strawberry.input
class GridPositionInput:
    x: int
    y: int
    w: int
    h: int


@strawberry.type(description="One chart of a dashboard: its SQL, Vega-Lite spec, place and why it is there.")
class Widget:
    id: strawberry.ID
    title: str
    kind: str = strawberry.field(
        description="kpi, timeseries, bar, stacked_bar, pie, histogram, scatter or table."
    )
    sql: str = strawberry.field(description="One read-only SELECT on the data source, checked by a parser.")
    spec: JSON = strawberry.field(description="Vega-Lite spec without data; fields are the SQL's columns.")
    position: GridPosition
    score: float = strawberry.field(description="How well it answers the goal, from 0 to 1.")
    reason: str = strawberry.field(description="Why it was chosen, from what discovery measured.")
    insights: list[str] = strawberry.field(
        description="What its data shows (trend, top share, outliers); empty until first fetched."
    )
    version: int = strawberry.field(description="Goes up on every edit of this widget.")
    source_columns: list[str] = strawberry.field(
        description="The data source columns its SQL reads (schema.table.column); empty once edited."
    )

    @classmethod
    def from_record(cls, w: service.WidgetRecord) -> Widget:
        return cls(
            id=strawberry.ID(str(w.id)),
            title=w.title,
            kind=w.kind,
            sql=w.sql,
            spec=w.spec,
            position=GridPosition(x=w.position.x, y=w.position.y, w=w.position.w, h=w.position.h),
            score=w.score,
            reason=w.reason,
            insights=list(w.insights or []),
            version=w.version,
            source_columns=list(w.columns),
        )


@strawberry.type(description="A dashboard generated from a data source's catalog and a goal.")
class Dashboard:
    id: strawberry.ID
    title: str
    goal: str | None
    version: int = strawberry.field(description="Goes up on every change (updateDashboard).")
    message: str = strawberry.field(description="How the goal was read (or that it matched nothing).")
    data_source_id: strawberry.ID
    widgets: list[Widget] = strawberry.field(description="In layout order (KPIs first).")
    created_by: str
    created_at: datetime
    updated_at: datetime
    record: strawberry.Private[service.DashboardRecord]

    @classmethod
    def from_record(cls, d: service.DashboardRecord) -> Dashboard:
        return cls(
            id=strawberry.ID(str(d.id)),
            title=d.title,
            goal=d.goal,
            version=d.version,
            message=d.message,
            data_source_id=strawberry.ID(str(d.data_source_id)),
            widgets=[Widget.from_record(w) for w in d.widgets],
            created_by=d.created_by,
            created_at=d.created_at,
            updated_at=d.updated_at,
            record=d,
        )

    @strawberry.field(
        description="A signed link to the dashboard's page (GET /dashboards/{id}?sig=...), for the caller.",
        extensions=[NoPolicy("computed from the dashboard already read")],
    )
    def url(self, info: Info[Context, None]) -> str:
        return dashboard_url(info.context, self.record.id)

    @strawberry.field(description="The data source it reads.", extensions=[Policy("datasource.read")])
    async def data_source(self, info: Info[Context, None]) -> DataSource | None:
        ctx = info.context
        await ctx.authorize("datasource.read", {"id": str(self.data_source_id)})
        session = await ctx.tx.tenant()
        try:
            row = await sources.get_source(session, source_id=self.record.data_source_id)
        except Missing:
            return None
        return DataSource.from_row(row)

    @strawberry.field(
        description="A Grafana dashboard model (PostgreSQL panels with rawSql) that imports as-is "
        "(needs the grafana_export feature).",
        extensions=[Policy("dashboard.export")],
    )
    async def grafana_json(self, info: Info[Context, None]) -> JSON:
        await info.context.authorize("dashboard.export", {"id": str(self.id)})
        return grafana_json(self.record)


def grafana_json(d: service.DashboardRecord) -> dict[str, Any]:
    return grafana_dashboard(
        uid=str(d.id).replace("-", "")[:40],
        title=d.title,
        widgets=[
            {
                "title": w.title,
                "sql": w.sql,
                "spec": w.spec,
                "position": {"x": w.position.x, "y": w.position.y, "w": w.position.w, "h": w.position.h},
                "kind": w.kind,
                "reason": w.reason,
            }
            for w in d.widgets
        ],
    )


def dashboard_url(ctx: Context, dashboard_id: uuid.UUID) -> str:
    """A signed link to the page, for the caller (their membership is checked when opened)."""
    return signed_url(
        ctx.services.settings,
        ctx.require_tenant().slug,
        dashboard_id,
        ctx.require_principal().subject,
        key=ctx.services.signing_key,
    )


@strawberry.type(description="A widget's rows from its data source, and its spec with them inlined.")
class WidgetData:
    columns: list[str]
    rows: JSON = strawberry.field(description="One object per row, keyed by column.")
    spec: JSON = strawberry.field(description="The widget's Vega-Lite spec with data.values inlined.")
    cached: bool = strawberry.field(description="Served from the cache (true) or fetched now (false).")
    truncated: bool = strawberry.field(description="The query returned more rows than the row limit.")
    data_key: str = strawberry.field(description="Stable hash of the widget version and the rows.")
    insights: list[str]


@strawberry.input(description="What to generate a dashboard from.")
class GenerateDashboardInput:
    data_source_id: strawberry.ID
    goal: str | None = strawberry.field(
        default=None, description="In plain words, e.g. 'revenue over time by category'."
    )
    tables: list[str] | None = strawberry.field(
        default=None, description="Only these tables (name or schema.name)."
    )
    max_widgets: int | None = strawberry.field(default=None, description="1 to 12 (default 8).")


@strawberry.input(description="A widget to edit (with id) or to add (without; needs sql and spec).")
class WidgetInput:
    id: strawberry.ID | None = None
    title: str | None = None
    sql: str | None = None
    spec: JSON | None = None
    position: GridPositionInput | None = None


@strawberry.input
class UpdateDashboardInput:
    id: strawberry.ID
    title: str | None = None
    widgets: list[WidgetInput] | None = None
    remove_widget_ids: list[strawberry.ID] | None = None


@strawberry.type
class DashboardDeleted:
    id: strawberry.ID


UpdateDashboardResult = Annotated[
    Dashboard | ValidationError | NotFound | NotAllowed, strawberry.union("UpdateDashboardResult")
]
DeleteDashboardResult = Annotated[
    DashboardDeleted | NotFound | NotAllowed, strawberry.union("DeleteDashboardResult")
]


async def dashboards(
    info: Info[Context, None], first: int | None = None, after: str | None = None
) -> Connection[Dashboard]:
    """The tenant's dashboards, newest first."""
    ctx = info.context
    await ctx.authorize("dashboard.read")
    size = page_size(first, ctx.services.settings.max_page_size)
    before = decode_time_id_cursor("dashboard", after)
    records = await service.list_dashboards(await ctx.tx.tenant(), limit=size + 1, before=before)
    return connection(
        [Dashboard.from_record(r) for r in records],
        size=size,
        kind="dashboard",
        key=lambda d: time_id_key(d.created_at, d.id),
    )


async def dashboard(info: Info[Context, None], id: strawberry.ID) -> Dashboard | None:
    ctx = info.context
    await ctx.authorize("dashboard.read", {"id": str(id)})
    found = await service.get_dashboard(await ctx.tx.tenant(), id)
    return Dashboard.from_record(found) if found is not None else None


async def widget_data(
    info: Info[Context, None], dashboard_id: strawberry.ID, widget_id: strawberry.ID, refresh: bool = False
) -> WidgetData:
    """Run the widget's SQL on its data source (or serve the cached rows)."""
    ctx = info.context
    tenant = ctx.require_tenant()
    await ctx.authorize("widget.read", {"id": str(widget_id)})
    data = await service.read_widget_data(
        ctx.services, ctx.tx, tenant.slug, dashboard_id, widget_id, refresh=refresh
    )
    return WidgetData(
        columns=data.columns,
        rows=data.rows,
        spec=data.spec,
        cached=data.cached,
        truncated=data.truncated,
        data_key=data.data_key,
        insights=data.insights,
    )


def _generate_params(input: GenerateDashboardInput, source_id: uuid.UUID) -> dict[str, Any]:
    goal = (input.goal or "").strip()
    if len(goal) > MAX_GOAL:
        raise BadUserInput(f"goal must be at most {MAX_GOAL} characters")
    tables = [t.strip() for t in input.tables or [] if t.strip()]
    if len(tables) > MAX_TABLES:
        raise BadUserInput(f"tables: at most {MAX_TABLES}")
    max_widgets = input.max_widgets if input.max_widgets is not None else 8
    if not 1 <= max_widgets <= MAX_WIDGETS:
        raise BadUserInput(f"maxWidgets must be between 1 and {MAX_WIDGETS}")
    return {"data_source_id": str(source_id), "goal": goal, "tables": tables, "max_widgets": max_widgets}


async def generate_dashboard(info: Info[Context, None], input: GenerateDashboardInput) -> StartJobResult:
    """Start a `dashboard` job; when it SUCCEEDED, job.result is {"dashboardId": ...}."""
    ctx = info.context
    session = await ctx.tx.tenant()
    running = await jobs.count_active(session)
    count = await service.count_dashboards(session)

    async def work() -> Job:
        source = await sources.get_source(session, source_id=sources.parse_id(input.data_source_id))
        params = _generate_params(input, source.id)
        run = await discovery.latest_successful_run(session, data_source_id=source.id)
        if run is None:
            raise BadUserInput(
                f"data source {source.name!r} has no catalog yet: run discovery first (startDiscovery)"
            )
        if await service.count_catalog_tables(session, run_id=run.id) == 0:
            raise BadUserInput(
                f"the catalog of data source {source.name!r} is empty (discovery found no tables): "
                "check the source's schemas and run discovery again"
            )
        state = await jobs.start_job(
            session,
            services=ctx.services,
            kind="dashboard",
            params=params,
            created_by=ctx.require_principal().subject,
        )
        return Job.from_state(state)

    return await mutate(
        ctx,
        "dashboard.generate",
        work,
        {"running_jobs": running, "dashboards": count, "id": str(input.data_source_id)},
    )


def _change(w: WidgetInput) -> service.WidgetChange:
    pos = w.position
    return service.WidgetChange(
        id=str(w.id) if w.id is not None else None,
        title=w.title,
        sql=w.sql,
        spec=w.spec if w.spec is None or isinstance(w.spec, dict) else _not_object(),
        position=service.GridPosition(pos.x, pos.y, pos.w, pos.h) if pos is not None else None,
    )


def _not_object() -> dict[str, Any]:
    raise BadUserInput("a widget spec must be a JSON object")


async def update_dashboard(info: Info[Context, None], input: UpdateDashboardInput) -> UpdateDashboardResult:
    """Edit the title and widgets (SQL checked again, spec validated); the version goes up."""
    ctx = info.context
    tenant = ctx.require_tenant()
    session = await ctx.tx.tenant()

    async def work() -> Dashboard:
        record = await service.update_dashboard(
            session,
            tenant=tenant.slug,
            dashboard_id=input.id,
            actor=ctx.require_principal().subject,
            title=input.title,
            widgets=[_change(w) for w in input.widgets or []],
            remove_widget_ids=[str(i) for i in input.remove_widget_ids or []],
        )
        return Dashboard.from_record(record)

    return await mutate(ctx, "dashboard.update", work, {"id": str(input.id)})


async def delete_dashboard(info: Info[Context, None], id: strawberry.ID) -> DeleteDashboardResult:
    """Delete a dashboard and its widgets."""
    ctx = info.context
    session = await ctx.tx.tenant()

    async def work() -> DashboardDeleted:
        await service.delete_dashboard(session, dashboard_id=id)
        return DashboardDeleted(id=id)

    return await mutate(ctx, "dashboard.delete", work, {"id": str(id)})
