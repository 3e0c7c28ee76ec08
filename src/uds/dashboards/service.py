"""Stored dashboards: read, create from a draft, edit, delete, and fetch widget data.

Functions taking a `session` work in the caller's tenant session and never commit.
`widget_data` is the exception: it is called with the services and the tenant's slug,
fetches rows from the data source (uds.dashboards.data), caches them in Redis
(uds.dashboards.cache) and, the first time a widget's data is fetched, stores its
insights in a transaction of its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import functools
import hashlib
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson
from sqlalchemy import delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from uds.dashboards import cache
from uds.dashboards.data import pools_for
from uds.dashboards.draft import GRID_COLUMNS, KINDS, DashboardDraft
from uds.dashboards.insights import compute_insights
from uds.dashboards.models import Dashboard, Widget
from uds.dashboards.sqlcheck import check_widget_sql
from uds.dashboards.vegalite import json_value, validate_spec
from uds.datasources import service as sources
from uds.datasources.guard import NetworkGuard
from uds.datasources.models import DataSource
from uds.db import TransactionScope, transaction
from uds.discovery.models import SUCCEEDED, CatalogTable, DiscoveryRun
from uds.errors import BadUserInput, NotFound
from uds.observability import events
from uds.tenants.slugs import tenant_schema

MAX_TITLE = 200
MAX_WIDGETS_STORED = 24  # generation keeps at most 12; editing may add up to this many
MAX_HEIGHT = 40
DASHBOARD_NAMESPACE = uuid.UUID("6f1d0a52-4b8e-4d0e-9a39-1c4f3f0b9d11")


@dataclass(frozen=True, slots=True)
class GridPosition:
    x: int
    y: int
    w: int
    h: int


@dataclass(frozen=True, slots=True)
class WidgetRecord:
    id: uuid.UUID
    dashboard_id: uuid.UUID
    key: str
    title: str
    kind: str
    sql: str
    spec: dict[str, Any]
    position: GridPosition
    score: float
    reason: str
    insights: list[str] | None
    columns: list[str]
    version: int
    order: int
    created_at: dt.datetime
    updated_at: dt.datetime


@dataclass(frozen=True, slots=True)
class DashboardRecord:
    id: uuid.UUID
    data_source_id: uuid.UUID
    run_id: uuid.UUID | None
    job_id: uuid.UUID | None
    title: str
    goal: str | None
    version: int
    message: str
    matched: bool
    schemas: tuple[str, ...]
    created_by: str
    created_at: dt.datetime
    updated_at: dt.datetime
    # The data source's version and its newest successful discovery run, as of the read:
    # widget data is cached per both.
    source_version: int
    latest_run_id: uuid.UUID | None
    widgets: list[WidgetRecord] = field(default_factory=list)

    def widget(self, widget_id: uuid.UUID | str) -> WidgetRecord | None:
        wanted = str(widget_id)
        return next((w for w in self.widgets if str(w.id) == wanted), None)


@dataclass(frozen=True, slots=True)
class WidgetData:
    """A widget's rows: `rows` as objects keyed by `columns`, `spec` with them inlined."""

    columns: list[str]
    rows: list[dict[str, Any]]
    spec: dict[str, Any]
    cached: bool
    truncated: bool
    # Stable hash of the widget id and version and the rows (picture caches key on it).
    data_key: str
    insights: list[str] = field(default_factory=list)


def parse_id(value: object, what: str = "dashboard") -> uuid.UUID:
    try:
        return uuid.UUID(str(value))
    except ValueError:
        raise NotFound(f"no such {what}") from None


def _widget(row: Widget) -> WidgetRecord:
    return WidgetRecord(
        id=row.id,
        dashboard_id=row.dashboard_id,
        key=row.key,
        title=row.title,
        kind=row.kind,
        sql=row.sql,
        spec=dict(row.spec or {}),
        position=GridPosition(row.x, row.y, row.w, row.h),
        score=float(row.score),
        reason=row.reason,
        insights=list(row.insights) if row.insights is not None else None,
        columns=list(row.columns or []),
        version=row.version,
        order=row.position,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def _latest_run_subquery() -> Any:
    return (
        select(DiscoveryRun.id)
        .where(DiscoveryRun.data_source_id == Dashboard.data_source_id, DiscoveryRun.status == SUCCEEDED)
        .order_by(DiscoveryRun.started_at.desc(), DiscoveryRun.id.desc())
        .limit(1)
        .correlate(Dashboard)
        .scalar_subquery()
    )


def _record(
    row: Dashboard, source_version: int, latest_run: uuid.UUID | None, widgets: list[Widget]
) -> DashboardRecord:
    return DashboardRecord(
        id=row.id,
        data_source_id=row.data_source_id,
        run_id=row.run_id,
        job_id=row.job_id,
        title=row.title,
        goal=row.goal,
        version=row.version,
        message=row.message,
        matched=row.matched,
        schemas=tuple(row.schemas or ()),
        created_by=row.created_by,
        created_at=row.created_at,
        updated_at=row.updated_at,
        source_version=source_version,
        latest_run_id=latest_run,
        widgets=[_widget(w) for w in widgets],
    )


async def get_dashboard(session: AsyncSession, dashboard_id: uuid.UUID | str) -> DashboardRecord | None:
    """The dashboard with its widgets in layout order, or None (also for a malformed id)."""
    try:
        wanted = uuid.UUID(str(dashboard_id))
    except ValueError:
        return None
    found = (
        await session.execute(
            select(Dashboard, DataSource.version, _latest_run_subquery())
            .join(DataSource, DataSource.id == Dashboard.data_source_id)
            .where(Dashboard.id == wanted)
        )
    ).first()
    if found is None:
        return None
    row, source_version, latest = found
    widgets = (
        await session.scalars(
            select(Widget).where(Widget.dashboard_id == wanted).order_by(Widget.position, Widget.id)
        )
    ).all()
    return _record(row, source_version, latest, list(widgets))


async def require_dashboard(session: AsyncSession, dashboard_id: uuid.UUID | str) -> DashboardRecord:
    found = await get_dashboard(session, dashboard_id)
    if found is None:
        raise NotFound("no such dashboard")
    return found


async def count_dashboards(session: AsyncSession) -> int:
    return int(await session.scalar(select(func.count()).select_from(Dashboard)) or 0)


def _widget_sql(schema: str) -> str:
    t = '"' + schema.replace('"', '""') + '"'
    return f"""
SELECT d.id, d.data_source_id, d.run_id, d.job_id, d.title, d.goal, d.version, d.message, d.matched,
       d.schemas::text, d.created_by, d.created_at, d.updated_at, s.version,
       (SELECT r.id FROM {t}.discovery_runs r
         WHERE r.data_source_id = d.data_source_id AND r.status = 'SUCCEEDED'
         ORDER BY r.started_at DESC, r.id DESC LIMIT 1),
       w.id, w.key, w.title, w.kind, w.sql, w.spec::text, w.x, w.y, w.w, w.h, w.score, w.reason,
       w.insights::text, w.columns::text, w.version, w.position, w.created_at, w.updated_at
  FROM {t}.widgets w
  JOIN {t}.dashboards d ON d.id = w.dashboard_id
  JOIN {t}.data_sources s ON s.id = d.data_source_id
 WHERE w.id = $1 AND w.dashboard_id = $2"""


def _json(text: str | None) -> Any:
    return None if text is None else orjson.loads(text)


async def get_widget(
    tx: TransactionScope, tenant: str, dashboard_id: uuid.UUID | str, widget_id: uuid.UUID | str
) -> tuple[DashboardRecord, WidgetRecord] | None:
    """One widget and its dashboard (without its other widgets), in one statement; None if
    there is no such widget on that dashboard. The read path of widgetData."""
    try:
        wid, did = uuid.UUID(str(widget_id)), uuid.UUID(str(dashboard_id))
    except ValueError:
        return None
    statement = _widget_sql(tenant_schema(tenant))
    if tx.reading:
        row = await tx.fetchrow(statement, wid, did)
    else:
        raw = await (await tx.connection()).get_raw_connection()
        row = await raw.driver_connection.fetchrow(statement, wid, did)
    if row is None:
        return None
    v = list(row.values())
    dashboard = DashboardRecord(
        id=v[0],
        data_source_id=v[1],
        run_id=v[2],
        job_id=v[3],
        title=v[4],
        goal=v[5],
        version=v[6],
        message=v[7],
        matched=v[8],
        schemas=tuple(_json(v[9]) or ()),
        created_by=v[10],
        created_at=v[11],
        updated_at=v[12],
        source_version=v[13],
        latest_run_id=v[14],
    )
    widget = WidgetRecord(
        id=v[15],
        dashboard_id=v[0],
        key=v[16],
        title=v[17],
        kind=v[18],
        sql=v[19],
        spec=_json(v[20]) or {},
        position=GridPosition(v[21], v[22], v[23], v[24]),
        score=float(v[25]),
        reason=v[26],
        insights=_json(v[27]),
        columns=list(_json(v[28]) or []),
        version=v[29],
        order=v[30],
        created_at=v[31],
        updated_at=v[32],
    )
    return dashboard, widget


async def count_catalog_tables(session: AsyncSession, *, run_id: uuid.UUID) -> int:
    return int(
        await session.scalar(
            select(func.count()).select_from(CatalogTable).where(CatalogTable.run_id == run_id)
        )
        or 0
    )


async def list_dashboards(
    session: AsyncSession, *, limit: int, before: tuple[dt.datetime, uuid.UUID] | None = None
) -> list[DashboardRecord]:
    """Dashboards newest first, with their widgets (two statements for the page)."""
    query = (
        select(Dashboard, DataSource.version, _latest_run_subquery())
        .join(DataSource, DataSource.id == Dashboard.data_source_id)
        .order_by(Dashboard.created_at.desc(), Dashboard.id.desc())
        .limit(limit)
    )
    if before is not None:
        at, before_id = before
        query = query.where(
            (Dashboard.created_at < at) | ((Dashboard.created_at == at) & (Dashboard.id < before_id))
        )
    found = (await session.execute(query)).all()
    ids = [r[0].id for r in found]
    by_dashboard: dict[uuid.UUID, list[Widget]] = {i: [] for i in ids}
    if ids:
        for w in (
            await session.scalars(
                select(Widget).where(Widget.dashboard_id.in_(ids)).order_by(Widget.position, Widget.id)
            )
        ).all():
            by_dashboard[w.dashboard_id].append(w)
    return [_record(row, version, latest, by_dashboard[row.id]) for row, version, latest in found]


def dashboard_id_for_job(job_id: uuid.UUID) -> uuid.UUID:
    """The id of the dashboard a generation job stores (a retried run writes the same one)."""
    return uuid.uuid5(DASHBOARD_NAMESPACE, f"job/{job_id}")


async def create_dashboard(
    session: AsyncSession,
    *,
    tenant: str,
    dashboard_id: uuid.UUID,
    data_source_id: uuid.UUID,
    run_id: uuid.UUID | None,
    job_id: uuid.UUID | None,
    draft: DashboardDraft,
    schemas: Sequence[str],
    created_by: str,
) -> uuid.UUID:
    """Store a generated draft (idempotent: an existing dashboard with this id is kept)."""
    if await session.get(Dashboard, dashboard_id) is not None:
        return dashboard_id
    session.add(
        Dashboard(
            id=dashboard_id,
            data_source_id=data_source_id,
            run_id=run_id,
            job_id=job_id,
            title=_clip(draft.title or "Dashboard", MAX_TITLE),
            goal=draft.goal,
            version=1,
            message=draft.message or "",
            matched=draft.matched,
            schemas=sorted(set(schemas)),
            created_by=created_by,
        )
    )
    await session.flush()
    for order, w in enumerate(draft.widgets):
        session.add(
            Widget(
                id=uuid.uuid5(dashboard_id, w.key),
                dashboard_id=dashboard_id,
                key=w.key,
                title=_clip(w.title, MAX_TITLE),
                kind=w.kind,
                sql=w.sql,
                spec=w.spec,
                x=w.position.x,
                y=w.position.y,
                w=w.position.w,
                h=w.position.h,
                score=w.score,
                reason=w.reason,
                insights=None,
                columns=list(w.columns),
                version=1,
                position=order,
            )
        )
    await session.flush()
    return dashboard_id


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


# -- editing ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class WidgetChange:
    """One entry of updateDashboard's `widgets`: with `id` an edit, without one a new widget."""

    id: str | None = None
    title: str | None = None
    sql: str | None = None
    spec: dict[str, Any] | None = None
    position: GridPosition | None = None


def check_title(title: str) -> str:
    title = (title or "").strip()
    if not title or len(title) > MAX_TITLE or any(ord(c) < 32 for c in title):
        raise BadUserInput(f"title must be 1-{MAX_TITLE} printable characters")
    return title


def check_position(pos: GridPosition) -> GridPosition:
    if not (0 <= pos.x < GRID_COLUMNS and 1 <= pos.w <= GRID_COLUMNS and pos.x + pos.w <= GRID_COLUMNS):
        raise BadUserInput(
            f"position: x and w must fit the {GRID_COLUMNS}-column grid (x + w <= {GRID_COLUMNS})"
        )
    if not (0 <= pos.y <= 10_000 and 1 <= pos.h <= MAX_HEIGHT):
        raise BadUserInput(f"position: y must be 0 or more and h between 1 and {MAX_HEIGHT}")
    return pos


def check_sql(sql: str, schemas: Sequence[str]) -> str:
    """The statement as it will run (printed back by the checker), or BadUserInput."""
    return _checked(sql, tuple(sorted(schemas)))


@functools.lru_cache(maxsize=1024)
def _checked(sql: str, schemas: tuple[str, ...]) -> str:
    try:
        return check_widget_sql(sql, allowed_schemas=schemas)
    except BadUserInput as exc:
        if "widget SQL" in exc.message:
            raise
        raise BadUserInput(f"widget SQL refused: {exc.message}") from None


def check_spec(spec: Any) -> dict[str, Any]:
    if not isinstance(spec, dict):
        raise BadUserInput("a widget spec must be a JSON object")
    validate_spec(spec)
    return spec


_MARK_KINDS = {
    "bar": "bar",
    "line": "timeseries",
    "area": "timeseries",
    "arc": "pie",
    "point": "scatter",
    "circle": "scatter",
    "square": "scatter",
    "text": "kpi",
}


def kind_of(spec: dict[str, Any], default: str = "table") -> str:
    """The widget kind a spec says (usermeta.uds.kind), else its mark's, else `default`."""
    meta = spec.get("usermeta")
    uds = meta.get("uds") if isinstance(meta, dict) else None
    kind = uds.get("kind") if isinstance(uds, dict) else None
    if kind in KINDS:
        return str(kind)
    mark = spec.get("mark")
    mark = mark.get("type") if isinstance(mark, dict) else mark
    return _MARK_KINDS.get(mark, default) if isinstance(mark, str) else default


async def update_dashboard(
    session: AsyncSession,
    *,
    tenant: str,
    dashboard_id: uuid.UUID | str,
    actor: str,
    title: str | None = None,
    widgets: Sequence[WidgetChange] = (),
    remove_widget_ids: Sequence[str] = (),
) -> DashboardRecord:
    """Apply the edits; every widget SQL and spec is checked first, so a refused edit changes
    nothing. The dashboard's version goes up when anything changed (and dashboard.updated
    is recorded); each edited widget's version goes up too."""
    wanted = parse_id(dashboard_id)
    row = await session.scalar(select(Dashboard).where(Dashboard.id == wanted).with_for_update())
    if row is None:
        raise NotFound("no such dashboard")
    current = {
        str(w.id): w
        for w in (await session.scalars(select(Widget).where(Widget.dashboard_id == wanted))).all()
    }
    new_title = check_title(title) if title is not None else None
    removing: list[str] = []
    for raw in remove_widget_ids:
        key = str(raw)
        if key not in current:
            raise NotFound(f"no widget {key} on this dashboard")
        removing.append(key)
    # Check everything before writing anything.
    edits: list[tuple[WidgetChange, str | None, dict[str, Any] | None, str | None]] = []
    for change in widgets:
        if change.id is not None:
            if str(change.id) not in current:
                raise NotFound(f"no widget {change.id} on this dashboard")
            if str(change.id) in removing:
                raise BadUserInput(f"widget {change.id} is both edited and removed")
        elif change.sql is None or change.spec is None:
            raise BadUserInput("a new widget needs sql and spec")
        sql = change.sql.strip() if change.sql is not None else None
        if sql is not None:
            check_sql(sql, row.schemas or [])  # stored as written; what runs is checked again
        spec = check_spec(change.spec) if change.spec is not None else None
        new_widget_title = check_title(change.title) if change.title is not None else None
        if change.position is not None:
            check_position(change.position)
        edits.append((change, sql, spec, new_widget_title))
    added = sum(1 for c in widgets if c.id is None)
    if len(current) - len(removing) + added > MAX_WIDGETS_STORED:
        raise BadUserInput(f"a dashboard holds at most {MAX_WIDGETS_STORED} widgets")

    changed = False
    if new_title is not None and new_title != row.title:
        row.title = new_title
        changed = True
    if removing:
        await session.execute(delete(Widget).where(Widget.id.in_([uuid.UUID(k) for k in removing])))
        changed = True
    remaining = [w for k, w in current.items() if k not in removing]
    next_order = max((w.position for w in remaining), default=-1) + 1
    bottom = max((w.y + w.h for w in remaining), default=0)
    now = dt.datetime.now(dt.UTC)
    for change, sql, spec, new_widget_title in edits:
        if change.id is not None:
            w = current[str(change.id)]
            touched = False
            if new_widget_title is not None and new_widget_title != w.title:
                w.title, touched = new_widget_title, True
            if sql is not None and sql != w.sql:
                w.sql, touched = sql, True
                w.key = ""  # no longer the generated widget
                w.columns = []
                w.reason = "Edited by hand."
            if spec is not None and spec != w.spec:
                w.spec, touched = spec, True
                w.kind = kind_of(spec, w.kind)
            if change.position is not None:
                p = change.position
                if (p.x, p.y, p.w, p.h) != (w.x, w.y, w.w, w.h):
                    w.x, w.y, w.w, w.h = p.x, p.y, p.w, p.h
                    touched = True
            if touched:
                w.version += 1
                w.insights = None  # computed again when its data is next fetched
                w.updated_at = now
                changed = True
        else:
            assert sql is not None and spec is not None
            p = change.position or GridPosition(0, bottom, 6, 4)
            session.add(
                Widget(
                    id=uuid.uuid4(),
                    dashboard_id=row.id,
                    key="",
                    title=new_widget_title or "Widget",
                    kind=kind_of(spec),
                    sql=sql,
                    spec=spec,
                    x=p.x,
                    y=p.y,
                    w=p.w,
                    h=p.h,
                    score=0.0,
                    reason="Added by hand.",
                    insights=None,
                    columns=[],
                    version=1,
                    position=next_order,
                )
            )
            next_order += 1
            bottom = max(bottom, p.y + p.h)
            changed = True
    if changed:
        row.version += 1
        row.updated_at = now
        await session.flush()
        await events.record(
            session,
            type="dashboard.updated",
            tenant=tenant,
            subject=f"dashboard/{row.id}",
            data={"id": str(row.id), "version": row.version, "actor": actor},
        )
    await session.flush()
    return await require_dashboard(session, row.id)


async def delete_dashboard(session: AsyncSession, *, dashboard_id: uuid.UUID | str) -> None:
    wanted = parse_id(dashboard_id)
    result = await session.execute(delete(Dashboard).where(Dashboard.id == wanted).returning(Dashboard.id))
    if result.first() is None:
        raise NotFound("no such dashboard")


# -- widget data -----------------------------------------------------------------------------


def data_key(widget: WidgetRecord, body: bytes) -> str:
    """Stable hash of the widget's id and version and its rows (the entry's JSON body)."""
    digest = hashlib.sha256(f"{widget.id}:{widget.version}\n".encode())
    digest.update(body)
    return digest.hexdigest()[:32]


def _tag(dashboard: DashboardRecord, widget: WidgetRecord) -> str:
    return cache.cache_tag(
        widget_version=widget.version,
        source_id=str(dashboard.data_source_id),
        source_version=dashboard.source_version,
        run_id=str(dashboard.latest_run_id) if dashboard.latest_run_id else None,
    )


def _key(services: Any, tenant: str, widget_id: uuid.UUID | str) -> str:
    return cache.cache_key(services.settings.redis_prefix, tenant=tenant, widget_id=str(widget_id))


async def widget_data(
    services: Any,
    tenant_slug: str,
    dashboard: DashboardRecord,
    widget: WidgetRecord,
    *,
    refresh: bool = False,
) -> WidgetData:
    """The widget's rows: from the cache, or fetched from the data source (see module doc).

    Raises NotFound (a widget not on this dashboard, a data source gone from the tenant),
    BadUserInput (stored SQL the checker refuses), SourceChanged (SOURCE_CHANGED) or
    WidgetSourceError (SOURCE_UNAVAILABLE).
    """
    if widget.dashboard_id != dashboard.id:
        raise NotFound("no such widget on this dashboard")
    hit = None if refresh else await cache.get(services.redis, _key(services, tenant_slug, widget.id))
    return await _answer(services, tenant_slug, dashboard, widget, hit)


async def read_widget_data(
    services: Any,
    tx: TransactionScope,
    tenant: str,
    dashboard_id: uuid.UUID | str,
    widget_id: uuid.UUID | str,
    *,
    refresh: bool = False,
) -> WidgetData:
    """widgetData's path: the widget (one statement) and its cache entry are read at once."""
    if refresh:
        found = await get_widget(tx, tenant, dashboard_id, widget_id)
        hit = None
    else:
        found, hit = await asyncio.gather(
            get_widget(tx, tenant, dashboard_id, widget_id),
            cache.get(services.redis, _key(services, tenant, widget_id)),
        )
    if found is None:
        raise NotFound("no such widget on this dashboard")
    return await _answer(services, tenant, *found, hit)


async def _answer(
    services: Any, tenant: str, dashboard: DashboardRecord, widget: WidgetRecord, hit: cache.Entry | None
) -> WidgetData:
    tag = _tag(dashboard, widget)
    if hit is not None and hit.tag == tag:
        with contextlib.suppress(KeyError, TypeError, ValueError):  # a body of another shape: a miss
            return _result(widget, hit, cached=True)
    entry = await _fetch(services, tenant, dashboard, widget, tag)
    await cache.put(
        services.redis,
        _key(services, tenant, widget.id),
        entry,
        ttl=services.settings.widget_cache_ttl_seconds,
    )
    return _result(widget, entry, cached=False)


async def _fetch(
    services: Any, tenant: str, dashboard: DashboardRecord, widget: WidgetRecord, tag: str
) -> cache.Entry:
    settings = services.settings
    sql = check_sql(widget.sql, dashboard.schemas)
    pools = pools_for(services)
    source_key = (tenant, str(dashboard.data_source_id), dashboard.source_version)
    params = pools.params.get(source_key)
    if params is None:
        async with transaction(services.engine, tenant) as tx:
            session = await tx.tenant()
            source = await session.get(DataSource, dashboard.data_source_id)
            if source is None:
                raise NotFound("the dashboard's data source no longer exists")
            params = sources.connection_params(source, tenant=tenant, cipher=services.credentials)
        pools.params[source_key] = params
    fetched = await pools.fetch(
        tenant=tenant,
        source_id=str(dashboard.data_source_id),
        source_version=dashboard.source_version,
        params=params,
        guard=NetworkGuard.from_settings(settings),
        settings=settings,
        sql=sql,
        row_limit=settings.widget_row_limit,
    )
    insights = widget.insights
    if insights is None:
        insights = compute_insights(widget.spec or widget.kind, fetched.columns, fetched.rows)
        await _store_insights(services, tenant, widget, insights)
    # orjson writes the values as JSON (numbers stay numbers, times ISO 8601); json_value
    # takes what it does not know (Decimal, timedelta, bytes, ...).
    body = orjson.dumps(
        {
            "columns": fetched.columns,
            "rows": [dict(zip(fetched.columns, r, strict=True)) for r in fetched.rows],
            "truncated": fetched.truncated,
            "insights": insights,
        },
        default=json_value,
    )
    return cache.Entry(tag, data_key(widget, body), body)


def _result(widget: WidgetRecord, entry: cache.Entry, *, cached: bool) -> WidgetData:
    """The answer from an entry: rows are shared with the spec's data.values (nothing
    mutates them); the spec is copied at its top level only."""
    payload = orjson.loads(entry.body)
    rows = payload["rows"]
    spec = dict(widget.spec)
    spec["data"] = {"values": rows}
    return WidgetData(
        columns=list(payload["columns"]),
        rows=rows,
        spec=spec,
        cached=cached,
        truncated=bool(payload["truncated"]),
        data_key=entry.data_key,
        insights=list(payload.get("insights") or []),
    )


async def _store_insights(services: Any, tenant: str, widget: WidgetRecord, insights: list[str]) -> None:
    """Keep the insights of the widget's first fetch (only if the widget was not edited since)."""
    async with transaction(services.engine, tenant) as tx:
        session = await tx.tenant()
        await session.execute(
            update(Widget)
            .where(Widget.id == widget.id, Widget.version == widget.version, Widget.insights.is_(None))
            .values(insights=insights)
        )
