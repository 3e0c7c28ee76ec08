"""Storing discovery runs and reading catalogs back (tenant session first; never commits).

A run is written step by step (`start_run`, `store_table` per table, `store_relationships`,
`finish_run`); every write is an upsert keyed by the run id, so a retried job that
repeats a step overwrites its own rows. `store_run` does all of it for a finished
`CatalogSnapshot`.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import delete, func, or_, select, tuple_, update
from sqlalchemy.dialects.postgresql import distinct_on, insert
from sqlalchemy.ext.asyncio import AsyncSession

from uds.discovery.drift import CatalogDiff, diff
from uds.discovery.models import (
    FAILED,
    RUNNING,
    SUCCEEDED,
    CatalogColumn,
    CatalogRelationship,
    CatalogTable,
    DiscoveryRun,
)
from uds.discovery.snapshot import CatalogSnapshot, ColumnSnapshot, Relationship, TableSnapshot
from uds.errors import BadUserInput, NotFound

MAX_WARNINGS = 200


async def start_run(
    session: AsyncSession,
    *,
    run_id: uuid.UUID,
    data_source_id: uuid.UUID,
    row_budget: int,
    created_by: str,
    job_id: uuid.UUID | None = None,
) -> DiscoveryRun:
    """The run with this id, created RUNNING if new (a retry finds its own row)."""
    await session.execute(
        insert(DiscoveryRun)
        .values(
            id=run_id,
            data_source_id=data_source_id,
            job_id=job_id,
            status=RUNNING,
            row_budget=row_budget,
            created_by=created_by,
            rows_read=0,
            warnings=[],
        )
        .on_conflict_do_nothing(index_elements=["id"])
    )
    run = await session.get(DiscoveryRun, run_id, populate_existing=True)
    if run is None:
        raise NotFound("discovery run not found")
    return run


def _table_values(run_id: uuid.UUID, table: TableSnapshot) -> dict[str, object]:
    detail = table.to_dict()
    detail.pop("columns")
    return {
        "run_id": run_id,
        "schema_name": table.schema,
        "table_name": table.name,
        "kind": table.kind,
        "row_estimate": table.rows,
        "size_bytes": table.size_bytes,
        "primary_key": table.primary_key,
        "profile_method": table.profile_method,
        "profiled": table.profiled,
        "quality_score": table.quality.score if table.quality else None,
        "detail": detail,
    }


def _column_values(run_id: uuid.UUID, table: TableSnapshot, column: ColumnSnapshot) -> dict[str, object]:
    return {
        "run_id": run_id,
        "schema_name": table.schema,
        "table_name": table.name,
        "column_name": column.name,
        "position": column.position,
        "data_type": column.data_type,
        "nullable": column.nullable,
        "semantic_type": column.semantic_type,
        "pii": column.pii,
        "detail": column.to_dict(),
    }


async def store_tables(session: AsyncSession, *, run_id: uuid.UUID, tables: Sequence[TableSnapshot]) -> None:
    """Upsert tables and replace their columns, for this run."""
    if not tables:
        return
    rows = [_table_values(run_id, t) for t in tables]
    statement = insert(CatalogTable).values(rows)
    excluded = statement.excluded
    await session.execute(
        statement.on_conflict_do_update(
            index_elements=["run_id", "schema_name", "table_name"],
            set_={
                name: getattr(excluded, name)
                for name in rows[0]
                if name not in ("run_id", "schema_name", "table_name")
            },
        )
    )
    for table in tables:
        await session.execute(
            delete(CatalogColumn).where(
                CatalogColumn.run_id == run_id,
                CatalogColumn.schema_name == table.schema,
                CatalogColumn.table_name == table.name,
            )
        )
    columns = [_column_values(run_id, t, c) for t in tables for c in t.columns]
    for start in range(0, len(columns), 1_000):
        await session.execute(insert(CatalogColumn).values(columns[start : start + 1_000]))


async def store_table(session: AsyncSession, *, run_id: uuid.UUID, table: TableSnapshot) -> None:
    await store_tables(session, run_id=run_id, tables=[table])


async def remove_tables(session: AsyncSession, *, run_id: uuid.UUID, keep: set[tuple[str, str]]) -> None:
    """Delete this run's tables that are not in `keep` (dropped while the run was retried)."""
    stored = (
        await session.execute(
            select(CatalogTable.schema_name, CatalogTable.table_name).where(CatalogTable.run_id == run_id)
        )
    ).all()
    for schema, name in stored:
        if (schema, name) not in keep:
            for model in (CatalogColumn, CatalogTable):
                await session.execute(
                    delete(model).where(
                        model.run_id == run_id, model.schema_name == schema, model.table_name == name
                    )
                )


async def store_relationships(
    session: AsyncSession, *, run_id: uuid.UUID, relationships: Sequence[Relationship]
) -> None:
    await session.execute(delete(CatalogRelationship).where(CatalogRelationship.run_id == run_id))
    rows = [
        {
            "run_id": run_id,
            "key": r.key,
            "from_schema": r.from_schema,
            "from_table": r.from_table,
            "to_schema": r.to_schema,
            "to_table": r.to_table,
            "declared": r.declared,
            "confidence": r.confidence,
            "detail": r.to_dict(),
        }
        for r in relationships
    ]
    if rows:
        # Two declared FKs may connect the same columns; one row per key is enough.
        unique = {row["key"]: row for row in rows}
        await session.execute(insert(CatalogRelationship).values(list(unique.values())))


async def record_progress(
    session: AsyncSession,
    *,
    run_id: uuid.UUID,
    rows_read: int,
    server_version: str | None = None,
    database: str | None = None,
) -> None:
    values: dict[str, object] = {"rows_read": rows_read}
    if server_version is not None:
        values["server_version"] = server_version
    if database is not None:
        values["database"] = database
    await session.execute(update(DiscoveryRun).where(DiscoveryRun.id == run_id).values(**values))


async def finish_run(
    session: AsyncSession,
    *,
    run_id: uuid.UUID,
    status: str,
    rows_read: int | None = None,
    warnings: Sequence[str] = (),
    error: str | None = None,
) -> None:
    values: dict[str, object] = {
        "status": status,
        "finished_at": datetime.now(UTC),
        "warnings": list(warnings)[:MAX_WARNINGS],
        "error": error,
    }
    if rows_read is not None:
        values["rows_read"] = rows_read
    await session.execute(update(DiscoveryRun).where(DiscoveryRun.id == run_id).values(**values))


async def store_run(
    session: AsyncSession,
    *,
    data_source_id: uuid.UUID,
    snapshot: CatalogSnapshot,
    created_by: str,
    row_budget: int,
    run_id: uuid.UUID | None = None,
    job_id: uuid.UUID | None = None,
) -> DiscoveryRun:
    """Write a whole snapshot as one SUCCEEDED run; returns the run."""
    run_id = run_id or uuid.uuid4()
    await start_run(
        session,
        run_id=run_id,
        data_source_id=data_source_id,
        row_budget=row_budget,
        created_by=created_by,
        job_id=job_id,
    )
    await record_progress(
        session,
        run_id=run_id,
        rows_read=snapshot.rows_read,
        server_version=snapshot.server_version,
        database=snapshot.database,
    )
    await store_tables(session, run_id=run_id, tables=snapshot.tables)
    await store_relationships(session, run_id=run_id, relationships=snapshot.relationships)
    await finish_run(
        session, run_id=run_id, status=SUCCEEDED, rows_read=snapshot.rows_read, warnings=snapshot.warnings
    )
    run = await session.get(DiscoveryRun, run_id, populate_existing=True)
    assert run is not None
    return run


async def fail_run(session: AsyncSession, *, run_id: uuid.UUID, error: str, status: str = FAILED) -> None:
    await finish_run(session, run_id=run_id, status=status, error=error[:2_000])


async def get_run(session: AsyncSession, *, run_id: uuid.UUID) -> DiscoveryRun:
    run = await session.get(DiscoveryRun, run_id)
    if run is None:
        raise NotFound("discovery run not found")
    return run


async def load_snapshot(session: AsyncSession, *, run: DiscoveryRun) -> CatalogSnapshot:
    """The catalog a run stored, rebuilt as a CatalogSnapshot."""
    tables_rows = (
        await session.scalars(
            select(CatalogTable)
            .where(CatalogTable.run_id == run.id)
            .order_by(CatalogTable.schema_name, CatalogTable.table_name)
        )
    ).all()
    column_rows = (
        await session.scalars(
            select(CatalogColumn)
            .where(CatalogColumn.run_id == run.id)
            .order_by(CatalogColumn.schema_name, CatalogColumn.table_name, CatalogColumn.position)
        )
    ).all()
    rel_rows = (
        await session.scalars(
            select(CatalogRelationship)
            .where(CatalogRelationship.run_id == run.id)
            .order_by(CatalogRelationship.key)
        )
    ).all()
    columns: dict[tuple[str, str], list[ColumnSnapshot]] = {}
    for row in column_rows:
        columns.setdefault((row.schema_name, row.table_name), []).append(ColumnSnapshot.from_dict(row.detail))
    tables = []
    for row in tables_rows:
        table = TableSnapshot.from_dict({**row.detail, "columns": []})
        table.columns = columns.get((row.schema_name, row.table_name), [])
        tables.append(table)
    relationships = [Relationship.from_dict(r.detail) for r in rel_rows]
    relationships.sort(key=lambda r: (not r.declared, r.key))
    return CatalogSnapshot(
        database=run.database or "",
        server_version=run.server_version or "",
        tables=tables,
        relationships=relationships,
        rows_read=run.rows_read,
        warnings=list(run.warnings or []),
    )


async def load_tables(session: AsyncSession, *, run_id: uuid.UUID) -> dict[tuple[str, str], TableSnapshot]:
    """Tables a run has stored so far (a retried job's completed steps)."""
    run = await get_run(session, run_id=run_id)
    snapshot = await load_snapshot(session, run=run)
    return {t.key: t for t in snapshot.tables}


async def page_tables(
    session: AsyncSession,
    *,
    run_id: uuid.UUID,
    after: tuple[str, str] | None,
    limit: int,
    schema: str | None = None,
) -> list[TableSnapshot]:
    """Up to `limit` tables of a run after (schema, name), in that order, with their columns
    (only those of `schema` when given)."""
    query = select(CatalogTable).where(CatalogTable.run_id == run_id)
    if schema is not None:
        query = query.where(CatalogTable.schema_name == schema)
    if after is not None:
        query = query.where(tuple_(CatalogTable.schema_name, CatalogTable.table_name) > tuple_(*after))
    rows = (
        await session.scalars(query.order_by(CatalogTable.schema_name, CatalogTable.table_name).limit(limit))
    ).all()
    return await _with_columns(session, run_id=run_id, rows=rows)


async def tables_named(
    session: AsyncSession, *, run_id: uuid.UUID, name: str, schema: str | None = None, limit: int = 10
) -> list[TableSnapshot]:
    """The run's tables called `name` (in `schema` when given), with their columns; at most
    `limit` of them, ordered by schema."""
    query = select(CatalogTable).where(CatalogTable.run_id == run_id, CatalogTable.table_name == name)
    if schema is not None:
        query = query.where(CatalogTable.schema_name == schema)
    rows = (await session.scalars(query.order_by(CatalogTable.schema_name).limit(limit))).all()
    return await _with_columns(session, run_id=run_id, rows=rows)


async def _with_columns(
    session: AsyncSession, *, run_id: uuid.UUID, rows: Sequence[CatalogTable]
) -> list[TableSnapshot]:
    if not rows:
        return []
    keys = [(r.schema_name, r.table_name) for r in rows]
    column_rows = (
        await session.scalars(
            select(CatalogColumn)
            .where(
                CatalogColumn.run_id == run_id,
                tuple_(CatalogColumn.schema_name, CatalogColumn.table_name).in_(keys),
            )
            .order_by(CatalogColumn.schema_name, CatalogColumn.table_name, CatalogColumn.position)
        )
    ).all()
    columns: dict[tuple[str, str], list[ColumnSnapshot]] = {}
    for row in column_rows:
        columns.setdefault((row.schema_name, row.table_name), []).append(ColumnSnapshot.from_dict(row.detail))
    tables = []
    for row in rows:
        table = TableSnapshot.from_dict({**row.detail, "columns": []})
        table.columns = columns.get((row.schema_name, row.table_name), [])
        tables.append(table)
    return tables


async def count_tables(session: AsyncSession, *, run_id: uuid.UUID, schema: str | None = None) -> int:
    query = select(func.count()).select_from(CatalogTable).where(CatalogTable.run_id == run_id)
    if schema is not None:
        query = query.where(CatalogTable.schema_name == schema)
    return int(await session.scalar(query) or 0)


async def relationships_of(
    session: AsyncSession, *, run_id: uuid.UUID, tables: set[tuple[str, str]]
) -> list[Relationship]:
    """The run's relationships from or to any of `tables`."""
    keys = sorted(tables)
    rows = (
        await session.scalars(
            select(CatalogRelationship)
            .where(
                CatalogRelationship.run_id == run_id,
                or_(
                    tuple_(CatalogRelationship.from_schema, CatalogRelationship.from_table).in_(keys),
                    tuple_(CatalogRelationship.to_schema, CatalogRelationship.to_table).in_(keys),
                ),
            )
            .order_by(CatalogRelationship.key)
        )
    ).all()
    found = [Relationship.from_dict(r.detail) for r in rows]
    found.sort(key=lambda r: (not r.declared, r.key))
    return found


@dataclass(slots=True)
class Catalog:
    run: DiscoveryRun
    snapshot: CatalogSnapshot


async def latest_catalog(session: AsyncSession, *, data_source_id: uuid.UUID) -> Catalog | None:
    """The newest SUCCEEDED run of a data source and its catalog, or None."""
    run = await latest_successful_run(session, data_source_id=data_source_id)
    if run is None:
        return None
    return Catalog(run, await load_snapshot(session, run=run))


async def latest_successful_run(session: AsyncSession, *, data_source_id: uuid.UUID) -> DiscoveryRun | None:
    """The newest SUCCEEDED run of a data source (the one `latest_catalog` reads), or None."""
    return await session.scalar(
        select(DiscoveryRun)
        .where(DiscoveryRun.data_source_id == data_source_id, DiscoveryRun.status == SUCCEEDED)
        .order_by(DiscoveryRun.started_at.desc(), DiscoveryRun.id.desc())
        .limit(1)
    )


async def list_runs(
    session: AsyncSession,
    *,
    data_source_id: uuid.UUID,
    limit: int,
    before: tuple[datetime, uuid.UUID] | None = None,
) -> list[DiscoveryRun]:
    """Runs of a data source, newest first; `before` is the (started_at, id) of the last seen."""
    query = (
        select(DiscoveryRun)
        .where(DiscoveryRun.data_source_id == data_source_id)
        .order_by(DiscoveryRun.started_at.desc(), DiscoveryRun.id.desc())
        .limit(limit)
    )
    if before is not None:
        started, run_id = before
        query = query.where(func.row(DiscoveryRun.started_at, DiscoveryRun.id) < func.row(started, run_id))
    return list((await session.scalars(query)).all())


async def latest_runs(
    session: AsyncSession, *, data_source_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, DiscoveryRun]:
    """The newest run of each data source (any status), in one query."""
    if not data_source_ids:
        return {}
    rows = (
        await session.scalars(
            select(DiscoveryRun)
            .where(DiscoveryRun.data_source_id.in_(data_source_ids))
            .ext(distinct_on(DiscoveryRun.data_source_id))
            .order_by(DiscoveryRun.data_source_id, DiscoveryRun.started_at.desc(), DiscoveryRun.id.desc())
        )
    ).all()
    return {r.data_source_id: r for r in rows}


async def diff_runs(session: AsyncSession, *, from_run_id: uuid.UUID, to_run_id: uuid.UUID) -> CatalogDiff:
    """What changed between two runs of the same data source."""
    before = await get_run(session, run_id=from_run_id)
    after = await get_run(session, run_id=to_run_id)
    if before.data_source_id != after.data_source_id:
        raise BadUserInput("both runs must belong to the same data source")
    return diff(await load_snapshot(session, run=before), await load_snapshot(session, run=after))
