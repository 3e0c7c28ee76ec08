"""Structure of a PostgreSQL database, read from pg_catalog in four queries.

Schemas, tables, views, columns, types, nullability, primary keys, unique constraints,
declared foreign keys, indexes and row estimates. Objects that belong to an extension
(PostGIS's spatial_ref_sys, …) and system schemas are left out.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import asyncpg

from uds.discovery.snapshot import (
    STATS,
    ColumnSnapshot,
    Figure,
    Relationship,
    TableSnapshot,
)

# Assumed bytes of a variable-length value (short text, numeric) when nothing better is known.
VARLENA_WIDTH = 16
# Per-row overhead on a heap page: tuple header (23, aligned to 24) and line pointer (4).
ROW_OVERHEAD = 28

KINDS = {
    "r": "table",
    "p": "partitioned_table",
    "v": "view",
    "m": "materialized_view",
    "f": "foreign_table",
}

# Every catalog query starts with this comment, so a statement log (or the discovery
# engine's own count, CatalogSnapshot.statements) tells catalog reads from data reads.
CATALOG_QUERY = "/* uds:catalog */ "

INFO_SQL = (
    CATALOG_QUERY
    + """
select current_setting('server_version') as version, current_database() as database,
       current_setting('block_size')::int as block_size,
       current_setting('default_statistics_target')::int as stats_target
"""
)

RELATIONS_SQL = (
    CATALOG_QUERY
    + """
select c.oid, n.nspname as schema, c.relname as name, c.relkind::text as relkind,
       c.reltuples::float8 as reltuples, c.relpages::bigint as relpages,
       case when c.relkind = 'p'
            then (select coalesce(sum(p.relpages), 0) from pg_partition_tree(c.oid) t
                  join pg_class p on p.oid = t.relid)
            when c.relkind in ('r', 'm') then c.relpages end::bigint as pages,
       case when c.relkind = 'p'
            then (select case when bool_or(p.reltuples < 0) then -1 else sum(p.reltuples) end
                  from pg_partition_tree(c.oid) t
                  join pg_class p on p.oid = t.relid where t.isleaf) end::float8 as part_tuples,
       obj_description(c.oid, 'pg_class') as comment,
       greatest(s.last_analyze, s.last_autoanalyze) as analyzed_at,
       s.n_mod_since_analyze::bigint as modified_since_analyze,
       case when c.relkind = 'p'
            then (select sum(ps.n_live_tup) from pg_partition_tree(c.oid) t
                  join pg_stat_all_tables ps on ps.relid = t.relid where t.isleaf)
            else s.n_live_tup end::bigint as live_tuples,
       case when c.relkind = 'p'
            then (select sum(ps.n_dead_tup) from pg_partition_tree(c.oid) t
                  join pg_stat_all_tables ps on ps.relid = t.relid where t.isleaf)
            else s.n_dead_tup end::bigint as dead_tuples,
       case when c.relkind = 'p'
            then array(select pn.nspname || '.' || pc.relname from pg_partition_tree(c.oid) t
                       join pg_class pc on pc.oid = t.relid
                       join pg_namespace pn on pn.oid = pc.relnamespace
                       where t.isleaf order by 1) end as partitions,
       (select ipn.nspname || '.' || ip.relname from pg_inherits i
        join pg_class ip on ip.oid = i.inhparent join pg_namespace ipn on ipn.oid = ip.relnamespace
        where i.inhrelid = c.oid order by i.inhseqno limit 1) as inherits,
       exists (select 1 from pg_inherits i where i.inhparent = c.oid) as has_children,
       has_table_privilege(c.oid, 'SELECT') as can_select
from pg_class c
join pg_namespace n on n.oid = c.relnamespace
left join pg_stat_all_tables s on s.relid = c.oid
where c.relkind in ('r', 'p', 'v', 'm', 'f')
  and not c.relispartition
  and n.nspname not in ('pg_catalog', 'information_schema')
  and n.nspname not like 'pg\\_toast%' and n.nspname not like 'pg\\_temp\\_%'
  and ($1::text[] is null or n.nspname = any($1::text[]))
  and not exists (select 1 from pg_depend d
                  where d.classid = 'pg_class'::regclass and d.objid = c.oid and d.deptype = 'e')
order by n.nspname, c.relname
"""
)

COLUMNS_SQL = (
    CATALOG_QUERY
    + """
select a.attrelid as oid, a.attname as name, a.attnum::int as position,
       format_type(a.atttypid, a.atttypmod) as data_type, a.attnotnull as not_null,
       -- relid 0: pg_get_expr would otherwise lock the table to name its columns, and a
       -- catalog query must never wait for a lock. Generated columns (which reference
       -- other columns) therefore show no expression.
       case when a.attgenerated = '' then pg_get_expr(d.adbin, 0) end as default_expr,
       col_description(a.attrelid, a.attnum) as comment,
       coalesce(bt.typcategory, t.typcategory)::text as category,
       coalesce(bt.typname, t.typname)::text as base_type,
       t.typtype::text as typtype,
       t.typlen::int as typlen
from pg_attribute a
join pg_type t on t.oid = a.atttypid
left join pg_type bt on t.typtype = 'd' and bt.oid = t.typbasetype
left join pg_attrdef d on d.adrelid = a.attrelid and d.adnum = a.attnum
where a.attrelid = any($1::oid[]) and a.attnum > 0 and not a.attisdropped
order by a.attrelid, a.attnum
"""
)

CONSTRAINTS_SQL = (
    CATALOG_QUERY
    + """
select con.conrelid as oid, con.conname as name, con.contype::text as kind,
       array(select a.attname::text from unnest(con.conkey) with ordinality k(n, i)
             join pg_attribute a on a.attrelid = con.conrelid and a.attnum = k.n order by k.i) as columns,
       fn.nspname as ref_schema, fc.relname as ref_table,
       array(select a.attname::text from unnest(con.confkey) with ordinality k(n, i)
             join pg_attribute a on a.attrelid = con.confrelid and a.attnum = k.n order by k.i) as ref_columns
from pg_constraint con
left join pg_class fc on fc.oid = con.confrelid
left join pg_namespace fn on fn.oid = fc.relnamespace
where con.conrelid = any($1::oid[]) and con.contype in ('p', 'u', 'f')
order by con.conrelid, con.conname
"""
)

INDEXES_SQL = (
    CATALOG_QUERY
    + """
select i.indrelid as oid, ic.relname as name, i.indisunique as is_unique, i.indisprimary as is_primary,
       am.amname::text as method, i.indpred is not null as partial,
       array(select coalesce(a.attname::text, '(expression)')
             from unnest(i.indkey::int2[]) with ordinality k(n, o)
             left join pg_attribute a on a.attrelid = i.indrelid and a.attnum = k.n
             where k.o <= i.indnkeyatts order by k.o) as columns
from pg_index i
join pg_class ic on ic.oid = i.indexrelid
join pg_am am on am.oid = ic.relam
where i.indrelid = any($1::oid[])
order by i.indrelid, ic.relname
"""
)


@dataclass(slots=True)
class TableFacts:
    """What the profiler needs beyond the snapshot: catalog numbers and privileges."""

    oid: int
    reltuples: float
    # Pages as of the last ANALYZE/VACUUM; `pages` is refreshed by the profiler (it needs
    # a lock on the table, which a catalog query should never wait for).
    relpages: int
    block_size: int
    can_select: bool
    modified_since_analyze: int | None
    live_tuples: int | None
    dead_tuples: int | None = None
    # An inheritance parent (not a partitioned table): its own rows are read with ONLY.
    has_children: bool = False
    # Leading columns of plain btree indexes: min/max can be read from the index.
    btree_leading: set[str] = field(default_factory=set)

    pages: int = 0
    # Blocks per relation read by a sample, as the profiler found them: {0: pages} for a
    # table, {partition oid: pages} for a partitioned table.
    blocks: dict[int, int] = field(default_factory=dict)
    # Read for every table at once before profiling (prefetch): (relation key, bytes) rows
    # as profiles.SIZE_SQL returns them, and the table's pg_stats rows; None: read per table.
    sizes: list[tuple[int, int | None]] | None = None
    stats: list[Any] | None = None
    stats_target: int = 100
    # Bytes a row takes on disk, guessed from the column types (varlena: 32), for the
    # density of a never-analyzed table.
    row_width: int = 0


@dataclass(slots=True)
class Structure:
    tables: list[TableSnapshot]
    facts: dict[tuple[str, str], TableFacts]
    declared: list[Relationship]
    server_version: str
    database: str
    stats_target: int = 100


def family_of(category: str, base_type: str, typtype: str) -> str:
    """A coarse type family; what decides how a column is sampled and compared."""
    if category == "N":
        if base_type in ("int2", "int4", "int8", "oid"):
            return "integer"
        return "number"
    if category == "D":
        if base_type == "date":
            return "date"
        if base_type in ("timestamp", "timestamptz"):
            return "time"
        return "other"
    if category == "S" or typtype == "e":
        return "text"
    if category == "B":
        return "bool"
    if base_type == "uuid":
        return "uuid"
    if category == "I":
        return "network"
    if category == "T":
        return "interval"
    return "other"


async def read_structure(conn: asyncpg.Connection, *, include_schemas: tuple[str, ...] = ()) -> Structure:
    """The structure of every (or every included) schema, from one consistent snapshot."""
    info = await conn.fetchrow(INFO_SQL)
    assert info is not None
    version, database, block_size = info["version"], info["database"], int(info["block_size"])
    relations = await conn.fetch(RELATIONS_SQL, list(include_schemas) or None)
    oids = [r["oid"] for r in relations]
    columns = await conn.fetch(COLUMNS_SQL, oids)
    constraints = await conn.fetch(CONSTRAINTS_SQL, oids)
    indexes = await conn.fetch(INDEXES_SQL, oids)

    by_oid: dict[int, TableSnapshot] = {}
    facts: dict[tuple[str, str], TableFacts] = {}
    tables: list[TableSnapshot] = []
    for r in relations:
        table = TableSnapshot(
            schema=r["schema"],
            name=r["name"],
            kind=KINDS[r["relkind"]],
            size_bytes=r["pages"] * block_size if r["pages"] is not None else None,
            comment=r["comment"],
            analyzed_at=r["analyzed_at"],
        )
        reltuples = r["part_tuples"] if r["relkind"] == "p" else r["reltuples"]
        pages = int(r["pages"] or 0)
        table.row_estimate = _row_estimate(r, reltuples)
        by_oid[r["oid"]] = table
        tables.append(table)
        facts[table.key] = TableFacts(
            oid=r["oid"],
            reltuples=float(reltuples if reltuples is not None else -1),
            relpages=int(pages),
            pages=int(pages),
            block_size=block_size,
            can_select=bool(r["can_select"]),
            modified_since_analyze=r["modified_since_analyze"],
            live_tuples=r["live_tuples"],
            dead_tuples=r["dead_tuples"],
            has_children=bool(r["has_children"]) and r["relkind"] == "r",
        )
        table.partitions = list(r["partitions"] or [])
        table.inherits = r["inherits"]

    for c in columns:
        table = by_oid[c["oid"]]
        width = c["typlen"] if c["typlen"] and c["typlen"] > 0 else VARLENA_WIDTH
        facts[table.key].row_width += width
        table.columns.append(
            ColumnSnapshot(
                name=c["name"],
                position=c["position"],
                data_type=c["data_type"],
                family=family_of(c["category"], c["base_type"], c["typtype"]),
                nullable=not c["not_null"],
                default=c["default_expr"],
                comment=c["comment"],
            )
        )

    declared: list[Relationship] = []
    for con in constraints:
        table = by_oid[con["oid"]]
        cols = list(con["columns"])
        if con["kind"] == "p":
            table.primary_key = cols
        elif con["kind"] == "u":
            table.unique_constraints.append(cols)
        elif con["kind"] == "f" and con["ref_table"] is not None:
            declared.append(
                Relationship(
                    from_schema=table.schema,
                    from_table=table.name,
                    from_columns=cols,
                    to_schema=con["ref_schema"],
                    to_table=con["ref_table"],
                    to_columns=list(con["ref_columns"]),
                    declared=True,
                    confidence=1.0,
                    name=con["name"],
                    reasons=[f"declared foreign key {con['name']}"],
                )
            )

    for ix in indexes:
        table = by_oid[ix["oid"]]
        cols = list(ix["columns"])
        table.indexes.append(
            {
                "name": ix["name"],
                "columns": cols,
                "unique": ix["is_unique"],
                "primary": ix["is_primary"],
                "method": ix["method"],
                "partial": ix["partial"],
            }
        )
        if ix["method"] == "btree" and not ix["partial"] and cols and cols[0] != "(expression)":
            facts[table.key].btree_leading.add(cols[0])
        if ix["is_unique"] and not ix["partial"] and not ix["is_primary"] and "(expression)" not in cols:
            if cols not in table.unique_constraints:
                table.unique_constraints.append(cols)

    return Structure(tables, facts, declared, str(version), str(database), int(info["stats_target"]))


def _row_estimate(r: Any, reltuples: float | None) -> Figure | None:
    """pg_class's row count as of the last ANALYZE/VACUUM (refreshed by the profiler)."""
    if r["relkind"] in ("v", "f") or reltuples is None or reltuples < 0:
        return None  # a view, or never analyzed or vacuumed: the profiler measures it
    return Figure(float(reltuples), STATS)


SIZES_SQL = (
    CATALOG_QUERY
    + """
select x.oid::int8 as oid, case when x.partitioned then t.relid::oid::int8 else 0 end as rel,
       pg_relation_size(case when x.partitioned then t.relid else x.oid end)::int8 as size
from unnest($1::oid[], $2::bool[]) as x(oid, partitioned)
left join lateral (select relid from pg_partition_tree(x.oid) where isleaf) t on x.partitioned
where not x.partitioned or t.relid is not null
"""
)

STATS_BATCH_SQL = (
    CATALOG_QUERY
    + """
select s.schemaname::text as schema, s.tablename::text as table, s.attname::text as name,
       s.null_frac::float8 as null_frac, s.n_distinct::float8 as n_distinct,
       s.most_common_vals::text::text[] as mcv, s.most_common_freqs::float8[] as mcf,
       s.histogram_bounds::text::text[] as hist
from pg_stats s
join unnest($1::text[], $2::text[], $3::bool[]) as x(schema, name, inherited)
  on s.schemaname = x.schema and s.tablename = x.name and s.inherited = x.inherited
"""
)


# Tables whose sizes one statement reads: pg_relation_size takes a share lock on each,
# held to the end of the transaction, and PostgreSQL's lock table is shared by every
# session (max_locks_per_transaction x max_connections slots).
SIZES_CHUNK = 1_000
LOST = (
    asyncpg.PostgresConnectionError,
    asyncpg.AdminShutdownError,
    asyncpg.CrashShutdownError,
    asyncpg.CannotConnectNowError,
)


async def prefetch(conn: asyncpg.Connection, structure: Structure, fresh: list[tuple[str, str]]) -> None:
    """Sizes on disk of every table (one query per SIZES_CHUNK tables, each in a read-only
    transaction of its own so its locks are let go) and pg_stats of the tables whose
    statistics are fresh (one query), so that a wide schema costs a near-fixed number of
    catalog queries.

    If a chunk fails (a table locked past lock_timeout, the lock table full), its tables'
    sizes are read one by one when they are profiled, where a lock costs only that table."""
    sized = [
        (t, structure.facts[t.key])
        for t in structure.tables
        if t.kind in ("table", "partitioned_table", "materialized_view")
    ]
    for start in range(0, len(sized), SIZES_CHUNK):
        chunk = sized[start : start + SIZES_CHUNK]
        try:
            async with conn.transaction(readonly=True):
                rows = await conn.fetch(
                    SIZES_SQL,
                    [f.oid for _, f in chunk],
                    [t.kind == "partitioned_table" for t, _ in chunk],
                )
        except asyncpg.PostgresError as exc:
            if isinstance(exc, LOST):
                raise
            continue
        by_oid: dict[int, list[tuple[int, int | None]]] = {}
        for r in rows:
            by_oid.setdefault(int(r["oid"]), []).append((int(r["rel"]), r["size"]))
        for _, facts in chunk:
            facts.sizes = by_oid.get(facts.oid, [])
    by_key = {t.key: t for t in structure.tables}
    wanted = [by_key[k] for k in fresh if k in by_key]
    for facts in structure.facts.values():
        facts.stats_target = structure.stats_target
    if not wanted:
        return
    async with conn.transaction(readonly=True):
        rows = await conn.fetch(
            STATS_BATCH_SQL,
            [t.schema for t in wanted],
            [t.name for t in wanted],
            [t.kind == "partitioned_table" for t in wanted],
        )
    stats: dict[tuple[str, str], list[Any]] = {t.key: [] for t in wanted}
    for r in rows:
        stats.setdefault((r["schema"], r["table"]), []).append(r)
    for key, found in stats.items():
        if key in structure.facts:
            structure.facts[key].stats = found
