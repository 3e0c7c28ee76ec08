"""GraphQL for discovery results: `catalog`, `discoveryRuns`, `catalogDiff` and their types.

Every type here is plain data built by the top-level resolver from one stored run, so a
catalog costs three queries however deep the client reads it.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import strawberry
from strawberry.types import Info
from strawberry.types.nodes import SelectedField

from uds.api.compiler import JsonRows, read_rows, subselection
from uds.api.context import Context
from uds.api.guard import NoPolicy
from uds.api.pagination import (
    Connection,
    connection,
    decode_cursor,
    decode_time_id_cursor,
    page_size,
    time_id_key,
)
from uds.api.rowsource import Relation, RowSource, row_source
from uds.datasources import service as sources
from uds.discovery import drift, service
from uds.discovery import models as stored
from uds.discovery import snapshot as snap
from uds.discovery.models import DiscoveryRun as RunRow
from uds.errors import BadUserInput


@strawberry.type(description="One discovery run of a data source.")
class DiscoveryRun:
    id: strawberry.ID
    data_source_id: strawberry.ID
    job_id: strawberry.ID | None
    status: str = strawberry.field(description="RUNNING, SUCCEEDED, FAILED or CANCELLED.")
    started_at: datetime
    finished_at: datetime | None
    rows_read: float = strawberry.field(description="Rows read from the source, against rowBudget.")
    row_budget: float
    server_version: str | None
    warnings: list[str] = strawberry.field(description="Objects skipped or degraded, and why.")
    error: str | None = strawberry.field(description="Why the run failed (never contains credentials).")

    @classmethod
    def from_row(cls, row: RunRow) -> DiscoveryRun:
        return cls(
            id=strawberry.ID(str(row.id)),
            data_source_id=strawberry.ID(str(row.data_source_id)),
            job_id=strawberry.ID(str(row.job_id)) if row.job_id else None,
            status=row.status,
            started_at=row.started_at,
            finished_at=row.finished_at,
            rows_read=float(row.rows_read),
            row_budget=float(row.row_budget),
            server_version=row.server_version,
            warnings=list(row.warnings or []),
            error=row.error,
        )


RUN_SOURCE = row_source(RowSource(DiscoveryRun, RunRow.__table__, empty_if_null=frozenset({"warnings"})))


@strawberry.type(description="A value and how often it occurs (a share of all rows).")
class ValueCount:
    value: str | None
    frequency: float
    count: float | None = strawberry.field(description="Estimated rows: frequency x row estimate.")


@strawberry.type(
    description="Equi-depth histogram: bins between consecutive bounds, with their share of non-null rows."
)
class Histogram:
    bounds: list[str]
    fractions: list[float]


@strawberry.type(description="How one profile figure was obtained.")
class ProfileFigure:
    name: str = strawberry.field(description="nullFraction, distinctCount, min, max, topValues or histogram.")
    method: str = strawberry.field(
        description="exact, stats (pg_stats), sample (TABLESAMPLE), estimate (extrapolated from a sample), "
        "constraint, index or catalog."
    )
    sample_size: int | None = strawberry.field(description="Rows the figure was computed from.")
    margin: float | None = strawberry.field(
        description="Half-width of a 99.7 % interval, for sampled fractions."
    )


@strawberry.type
class ColumnProfile:
    null_fraction: float | None
    distinct_count: float | None
    min: str | None
    max: str | None
    top_values: list[ValueCount] | None
    histogram: Histogram | None
    method: str = strawberry.field(description="How most figures were obtained (see figures for each).")
    sample_size: int | None
    figures: list[ProfileFigure]


@strawberry.type(description="Completeness, key uniqueness and validity, each from 0 to 1.")
class ColumnQuality:
    completeness: float | None
    uniqueness: float | None
    validity: float | None


@strawberry.type
class Quality:
    score: float
    reasons: list[str]


@strawberry.type
class CatalogColumn:
    name: str
    position: int
    data_type: str
    nullable: bool
    default: str | None
    comment: str | None
    semantic_type: str | None = strawberry.field(
        description="email, phone, url, ip_address, card_number, person_name, country, currency, money, "
        "postal_code, category, identifier, created_at or updated_at."
    )
    semantic_confidence: float | None
    semantic_reasons: list[str]
    pii: bool = strawberry.field(description="Holds personal data; its values are shown masked.")
    profile: ColumnProfile | None
    quality: ColumnQuality | None


@strawberry.type
class CatalogIndex:
    name: str
    columns: list[str]
    unique: bool
    primary: bool
    method: str


@strawberry.type(
    description="A reference between tables: a declared foreign key, or inferred with a confidence."
)
class Relationship:
    from_schema: str
    from_table: str
    from_columns: list[str]
    to_schema: str
    to_table: str
    to_columns: list[str]
    declared: bool
    confidence: float
    name: str | None
    reasons: list[str]
    containment: float | None = strawberry.field(
        description="Share of sampled values found in the target key."
    )


@strawberry.type
class CatalogTable:
    schema: str
    name: str
    kind: str = strawberry.field(
        description="table, partitioned_table, view, materialized_view or foreign_table."
    )
    row_estimate: float | None = strawberry.field(description="Live rows (dead row versions not counted).")
    row_estimate_method: str | None
    row_estimate_basis: str | None = strawberry.field(
        description="How the row estimate was arrived at: the figure believed, and how "
        "pg_class.reltuples and pg_stat's n_live_tup compare with it."
    )
    dead_row_share: float | None = strawberry.field(
        description="Share of row versions that are dead (updated or deleted, not yet vacuumed), 0..1."
    )
    partitions: list[str] = strawberry.field(
        description="A partitioned table's leaf partitions (schema.name); they are not listed as tables."
    )
    inherits: str | None = strawberry.field(
        description="The table this one inherits from (INHERITS); each table counts its own rows only."
    )
    size_bytes: float | None
    primary_key: list[str]
    unique_constraints: list[list[str]]
    indexes: list[CatalogIndex]
    comment: str | None
    profile_method: str | None = strawberry.field(
        description="exact, sample, stats, rows (first rows of a view) or skipped."
    )
    sample_size: int | None
    quality: Quality | None
    warnings: list[str]
    columns: list[CatalogColumn]
    relationships: list[Relationship] = strawberry.field(description="References from and to this table.")


@strawberry.type(description="The latest successful discovery of a data source.")
class Catalog:
    run: DiscoveryRun
    tables: list[CatalogTable] = strawberry.field(
        description="Every table and view (for a wide schema, page with tablesConnection)."
    )
    relationships: list[Relationship]

    @strawberry.field(
        description="Tables and views a page at a time, ordered by schema and name (only those of "
        "`schema`, when given).",
        extensions=[NoPolicy("the tables of the catalog Query.catalog authorized")],
    )
    async def tables_connection(
        self,
        info: Info[Context, None],
        first: int | None = None,
        after: str | None = None,
        schema: str | None = None,
    ) -> Connection[CatalogTable]:
        ctx = info.context
        size = page_size(first, ctx.services.settings.max_page_size)
        start = _table_cursor(after)
        session = await ctx.tx.tenant()
        run_id = sources.parse_id(self.run.id, "discovery run")
        tables = await service.page_tables(session, run_id=run_id, after=start, limit=size + 1, schema=schema)
        return connection(
            await _with_relationships(session, run_id, tables[:size])
            + [_table(t, []) for t in tables[size:]],
            size=size,
            kind="table",
            key=lambda t: json.dumps([t.schema, t.name]),
        )

    @strawberry.field(
        description="How many tables and views the catalog holds (in `schema`, when given).",
        extensions=[NoPolicy("a count over the catalog Query.catalog authorized")],
    )
    async def table_count(self, info: Info[Context, None], schema: str | None = None) -> int:
        session = await info.context.tx.tenant()
        run_id = sources.parse_id(self.run.id, "discovery run")
        return await service.count_tables(session, run_id=run_id, schema=schema)

    @strawberry.field(
        description="One table or view with its columns and relationships: `name` in `schema`, or "
        "without `schema` the one table of that name (several give BAD_USER_INPUT naming them). "
        "Names are exact (case-sensitive, unquoted). Null when there is no such table.",
        extensions=[NoPolicy("a table of the catalog Query.catalog authorized")],
    )
    async def table(
        self, info: Info[Context, None], name: str, schema: str | None = None
    ) -> CatalogTable | None:
        session = await info.context.tx.tenant()
        run_id = sources.parse_id(self.run.id, "discovery run")
        found = await service.tables_named(session, run_id=run_id, name=name, schema=schema, limit=6)
        if len(found) > 1:
            names = ", ".join(f"{t.schema}.{t.name}" for t in found[:5]) + (", ..." if len(found) > 5 else "")
            raise BadUserInput(f"there are several tables named {name!r} ({names}); give the schema")
        if not found:
            return None
        return (await _with_relationships(session, run_id, found))[0]


async def _with_relationships(
    session: Any, run_id: Any, tables: list[snap.TableSnapshot]
) -> list[CatalogTable]:
    """The tables as GraphQL objects, with the relationships from or to each (one read)."""
    if not tables:
        return []
    found = await service.relationships_of(session, run_id=run_id, tables={t.key for t in tables})
    relationships = [_relationship(r) for r in found]
    return [_table(t, relationships) for t in tables]


def _table_cursor(after: str | None) -> tuple[str, str] | None:
    key = decode_cursor("table", after)
    if key is None:
        return None
    try:
        schema, name = json.loads(key)
    except (ValueError, TypeError):
        raise BadUserInput("after is not a valid cursor for this list") from None
    if not isinstance(schema, str) or not isinstance(name, str):
        raise BadUserInput("after is not a valid cursor for this list")
    return schema, name


@strawberry.type
class FieldChange:
    field: str
    before: str | None
    after: str | None


@strawberry.type
class ColumnChange:
    name: str
    changes: list[FieldChange]


@strawberry.type
class TableRef:
    schema: str
    name: str


@strawberry.type
class TableChange:
    schema: str
    name: str
    added_columns: list[str]
    removed_columns: list[str]
    changed_columns: list[ColumnChange]
    changes: list[FieldChange]


@strawberry.type(description="What changed between two runs of the same data source.")
class CatalogDiff:
    from_run: DiscoveryRun
    to_run: DiscoveryRun
    added_tables: list[TableRef]
    removed_tables: list[TableRef]
    changed_tables: list[TableChange]
    added_relationships: list[str]
    removed_relationships: list[str]


def _figures(profile: snap.ColumnProfile) -> list[ProfileFigure]:
    out = []
    for name in snap.PROFILE_FIGURES:
        figure = getattr(profile, name)
        if figure is not None:
            camel = name.split("_")[0] + "".join(p.title() for p in name.split("_")[1:])
            out.append(
                ProfileFigure(
                    name=camel, method=figure.method, sample_size=figure.sample_size, margin=figure.margin
                )
            )
    return out


def _value(figure: snap.Figure | None) -> Any:
    return None if figure is None else figure.value


def _profile(profile: snap.ColumnProfile | None, rows: float | None) -> ColumnProfile | None:
    if profile is None:
        return None
    top = None
    if profile.top_values is not None:
        top = [
            ValueCount(
                value=v, frequency=float(f), count=round(float(f) * rows) if rows is not None else None
            )
            for v, f in profile.top_values.value or []
        ]
    histogram = None
    if profile.histogram is not None and profile.histogram.value:
        histogram = Histogram(
            bounds=list(profile.histogram.value["bounds"]),
            fractions=list(profile.histogram.value["fractions"]),
        )
    null_fraction = _value(profile.null_fraction)
    distinct = _value(profile.distinct_count)
    return ColumnProfile(
        null_fraction=float(null_fraction) if null_fraction is not None else None,
        distinct_count=float(distinct) if distinct is not None else None,
        min=_value(profile.min),
        max=_value(profile.max),
        top_values=top,
        histogram=histogram,
        method=profile.method,
        sample_size=profile.sample_size,
        figures=_figures(profile),
    )


def _relationship(r: snap.Relationship) -> Relationship:
    return Relationship(
        from_schema=r.from_schema,
        from_table=r.from_table,
        from_columns=list(r.from_columns),
        to_schema=r.to_schema,
        to_table=r.to_table,
        to_columns=list(r.to_columns),
        declared=r.declared,
        confidence=r.confidence,
        name=r.name,
        reasons=list(r.reasons),
        containment=r.containment,
    )


def _table(t: snap.TableSnapshot, relationships: list[Relationship]) -> CatalogTable:
    rows = t.rows
    return CatalogTable(
        schema=t.schema,
        name=t.name,
        kind=t.kind,
        row_estimate=rows,
        row_estimate_method=t.row_estimate.method if t.row_estimate else None,
        row_estimate_basis=t.row_estimate_basis,
        dead_row_share=t.dead_row_share,
        partitions=list(t.partitions),
        inherits=t.inherits,
        size_bytes=float(t.size_bytes) if t.size_bytes is not None else None,
        primary_key=list(t.primary_key),
        unique_constraints=[list(u) for u in t.unique_constraints],
        indexes=[
            CatalogIndex(
                name=i["name"],
                columns=list(i["columns"]),
                unique=i["unique"],
                primary=i["primary"],
                method=i["method"],
            )
            for i in t.indexes
        ],
        comment=t.comment,
        profile_method=t.profile_method,
        sample_size=t.sample_size,
        quality=Quality(score=t.quality.score, reasons=list(t.quality.reasons)) if t.quality else None,
        warnings=list(t.warnings),
        columns=[
            CatalogColumn(
                name=c.name,
                position=c.position,
                data_type=c.data_type,
                nullable=c.nullable,
                default=c.default,
                comment=c.comment,
                semantic_type=c.semantic_type,
                semantic_confidence=c.semantic_confidence,
                semantic_reasons=list(c.semantic_reasons),
                pii=c.pii,
                profile=_profile(c.profile, rows),
                quality=ColumnQuality(
                    completeness=c.quality.completeness,
                    uniqueness=c.quality.uniqueness,
                    validity=c.quality.validity,
                )
                if c.quality
                else None,
            )
            for c in t.columns
        ],
        relationships=[
            r
            for r in relationships
            if (r.from_schema, r.from_table) == t.key or (r.to_schema, r.to_table) == t.key
        ],
    )


# A catalog's tables and their columns, as `to_catalog` reads them from the stored run,
# written as JSON by PostgreSQL when the selection is plain columns (uds.api.compiler).
COLUMN_SOURCE = row_source(
    RowSource(
        CatalogColumn,
        stored.CatalogColumn.__table__,
        columns={"name": "column_name"},
        documents={"quality": ("detail", "quality")},
    )
)
TABLE_SOURCE = row_source(
    RowSource(
        CatalogTable,
        stored.CatalogTable.__table__,
        columns={"schema": "schema_name", "name": "table_name"},
        documents={"quality": ("detail", "quality")},
        relations={
            "columns": Relation(
                COLUMN_SOURCE,
                match=(("run_id", "run_id"), ("schema_name", "schema_name"), ("table_name", "table_name")),
                order=(("position", False),),
                many=True,
            )
        },
    )
)
CATALOG_TABLES = JsonRows(
    TABLE_SOURCE, order=(("schema_name", False), ("table_name", False)), filters=("run_id",)
)
_NORMAL = object()


async def _catalog_as_json(info: Info[Context, None], session: Any, source_id: Any) -> Any:
    """The catalog with its tables written by PostgreSQL, or _NORMAL for the normal path.

    Only when the selection's `tables` (under one name) is plain columns and the catalog's
    relationships are not asked for: those are rebuilt from the run's snapshot.
    """
    ctx = info.context
    executor = ctx.executor
    if executor is None or not ctx.tx.reading:
        return _NORMAL
    raw = info._raw_info
    selected = subselection(executor, raw.return_type, raw.field_nodes)
    names = [fields[0].node.name.value for fields in selected.values()]
    if "relationships" in names or names.count("tables") > 1:
        return _NORMAL
    run = await service.latest_successful_run(session, data_source_id=source_id)
    if run is None:
        return None
    tables: Any = []
    for fields in selected.values():
        if fields[0].node.name.value == "tables":
            definition = executor.schema.get_type("Catalog").fields["tables"]
            tables = await read_rows(ctx, CATALOG_TABLES, definition.type, fields, run.id)
            if tables is None:
                return _NORMAL
    return Catalog(run=DiscoveryRun.from_row(run), tables=tables, relationships=[])


def _wants_everything(info: Info[Context, None]) -> bool:
    """Whether the selection reads `tables` or `relationships` (which need the whole stored
    run); a client paging with tablesConnection, or reading run and tableCount, does not.
    Fragments are not looked into: they get the whole run."""
    for selected in info.selected_fields:
        for sub in selected.selections:
            if not isinstance(sub, SelectedField) or sub.name in ("tables", "relationships"):
                return True
    return False


def to_catalog(found: service.Catalog) -> Catalog:
    relationships = [_relationship(r) for r in found.snapshot.relationships]
    return Catalog(
        run=DiscoveryRun.from_row(found.run),
        tables=[_table(t, relationships) for t in found.snapshot.tables],
        relationships=relationships,
    )


async def catalog(info: Info[Context, None], data_source_id: strawberry.ID) -> Catalog | None:
    """The latest successful discovery of the data source (null before the first one)."""
    ctx = info.context
    await ctx.authorize("catalog.read", {"id": str(data_source_id)})
    session = await ctx.tx.tenant()
    # The run, its tables, columns and relationships are read in several statements that
    # must agree (a data source deleted in between must not leave half a catalog).
    async with ctx.tx.snapshot():
        source = await sources.get_source(session, source_id=sources.parse_id(data_source_id))
        if not _wants_everything(info):
            run = await service.latest_successful_run(session, data_source_id=source.id)
            return Catalog(run=DiscoveryRun.from_row(run), tables=[], relationships=[]) if run else None
        fast = await _catalog_as_json(info, session, source.id)
        if fast is not _NORMAL:
            return fast  # type: ignore[no-any-return]
        found = await service.latest_catalog(session, data_source_id=source.id)
    return to_catalog(found) if found is not None else None


async def discovery_runs(
    info: Info[Context, None],
    data_source_id: strawberry.ID,
    first: int | None = None,
    after: str | None = None,
) -> Connection[DiscoveryRun]:
    """Discovery runs of a data source, newest first."""
    ctx = info.context
    await ctx.authorize("catalog.read", {"id": str(data_source_id)})
    size = page_size(first, ctx.services.settings.max_page_size)
    session = await ctx.tx.tenant()
    source = await sources.get_source(session, source_id=sources.parse_id(data_source_id))
    rows = await service.list_runs(
        session, data_source_id=source.id, limit=size + 1, before=decode_time_id_cursor("run", after)
    )
    return connection(
        [DiscoveryRun.from_row(r) for r in rows],
        size=size,
        kind="run",
        key=lambda r: time_id_key(r.started_at, r.id),
    )


async def catalog_diff(
    info: Info[Context, None], from_run_id: strawberry.ID, to_run_id: strawberry.ID
) -> CatalogDiff:
    """What changed from one run to another (both of the same data source)."""
    ctx = info.context
    await ctx.authorize("catalog.read", {"id": f"{from_run_id}..{to_run_id}"})
    session = await ctx.tx.tenant()
    async with ctx.tx.snapshot():  # two runs and their catalogs, read as of one moment
        before = await service.get_run(session, run_id=sources.parse_id(from_run_id, "discovery run"))
        after = await service.get_run(session, run_id=sources.parse_id(to_run_id, "discovery run"))
        changes = await service.diff_runs(session, from_run_id=before.id, to_run_id=after.id)
    return CatalogDiff(
        from_run=DiscoveryRun.from_row(before),
        to_run=DiscoveryRun.from_row(after),
        added_tables=[TableRef(schema=s, name=n) for s, n in changes.added_tables],
        removed_tables=[TableRef(schema=s, name=n) for s, n in changes.removed_tables],
        changed_tables=[_table_change(t) for t in changes.changed_tables],
        added_relationships=changes.added_relationships,
        removed_relationships=changes.removed_relationships,
    )


def _table_change(t: drift.TableDiff) -> TableChange:
    return TableChange(
        schema=t.schema,
        name=t.name,
        added_columns=list(t.added_columns),
        removed_columns=list(t.removed_columns),
        changed_columns=[
            ColumnChange(
                name=c.name,
                changes=[FieldChange(field=x.field, before=x.before, after=x.after) for x in c.changes],
            )
            for c in t.changed_columns
        ],
        changes=[FieldChange(field=x.field, before=x.before, after=x.after) for x in t.changes],
    )
