"""Benchmark: discovery of the demo shop vs one sequential pass over the same database.

    .venv/bin/python bench/discovery.py [--sizes 100000,5000000] [--repeat 3] [--json PATH]

For each size (rows of the big table, `events`; the whole shop is about 1.9x that):

* builds the demo database (uds.demo) in a database of its own, never analyzed, so
  discovery has to sample (the harder path);
* baseline: `select count(*)` of every table, one after the other: one sequential pass
  over the data, with PostgreSQL's parallel workers as configured on the server;
* discovery: `uds.discovery.engine.discover` with default options, timed end to end
  (connect, structure, profiles, relationships, quality);
* baseline and discovery alternate (B, D, B, D, ...) after one warm-up pass, so both see
  the same cache; medians are reported, with the ratio discovery / baseline;
* accuracy of sampled figures against exact SQL over the whole table: distinct counts
  (share within 10 %, median and worst error), null fractions (worst absolute error,
  and whether each lies within its stated margin) and row estimates;
* the process's collector is tuned first as `uds worker` tunes its own
  (uds.runtime.collect_less_often, settle_heap);
* then ANALYZE, and discovery again: the pg_stats path, timed the same way (distinct
  counts there are PostgreSQL's own estimates).

Besides (issue 11):

* the demo is kept honest: autovacuum is turned off on its tables the moment they exist
  (a poller runs beside the build), and before measuring the bench checks that no table
  has statistics; it prints how many figures came from each method (stats, sample,
  estimate, recount/exact, constraint) and the accuracy of each method apart;
* a bloat case: a table of --bloat-rows rows fresh, then after an UPDATE of every row
  (before VACUUM), then after VACUUM: the row-estimate error and the worst distinct-count
  error of each, and the dead share reported;
* a wide-schema case: discovery of 200 and of 2,000 generated tables (20 columns each),
  and the ratio time(2000) / (10 x time(200)); target <= 1.2;
* inference quality on the logistics database (tests/discovery/logistics.py): precision
  and recall of inferred relationships (confidence >= 0.7) against the planted truth;
  targets >= 0.95 each.

`--quick`: sizes 100000 and a 300,000-row bloat table (the wide and inference cases are
the same size either way).

Servers: UDS_DATABASE_URL if set (the bench creates and drops `uds_bench_disc_<random>`
databases on that server), else an embedded PostgreSQL under a temporary directory.
Target (issue 5): discovery <= 1x the sequential pass at the large size, sampled distinct
counts within 10 % of exact.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
import uuid
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "tests"))  # the logistics database's SQL and planted truth

import asyncpg  # noqa: E402

from uds.datasources.guard import NetworkGuard  # noqa: E402
from uds.datasources.params import ConnectionParams, params_from_url  # noqa: E402
from uds.demo import build_demo_database  # noqa: E402
from uds.discovery.budget import Budget  # noqa: E402
from uds.discovery.engine import DiscoveryOptions, discover  # noqa: E402
from uds.discovery.snapshot import CatalogSnapshot  # noqa: E402
from uds.runtime import collect_less_often, settle_heap  # noqa: E402

OPEN = NetworkGuard(enforce=False)  # the bench connects to its own server on localhost
# Two connections, as the figures in bench/README.md were always measured (the job's
# default, UDS_DISCOVERY_CONNECTIONS, is 1).
OPTIONS = DiscoveryOptions(concurrency=2)


@dataclass
class SizeResult:
    rows: int
    build_seconds: float
    total_rows: int
    baseline_seconds: float
    discovery_seconds: float
    ratio: float
    stats_discovery_seconds: float
    stats_ratio: float
    distinct_columns: int
    distinct_within_10pct: int
    distinct_recounted: int
    distinct_median_error: float
    distinct_worst: list[Any]
    null_fraction_worst_error: float
    null_fraction_within_margin: str
    row_estimate_worst_error: float
    stats_distinct_within_10pct: str
    misses: list[Any] = field(default_factory=list)
    tables_with_statistics: int = 0
    methods: dict[str, Any] = field(default_factory=dict)


def _connect_args(params: ConnectionParams) -> dict[str, Any]:
    return replace(params, sslmode="disable").asyncpg_kwargs()


async def _tables(conn: asyncpg.Connection) -> list[str]:
    return [
        r[0]
        for r in await conn.fetch(
            "select relname from pg_class where relnamespace = 'shop'::regnamespace and relkind = 'r' "
            "order by 1"
        )
    ]


async def _sequential_pass(conn: asyncpg.Connection, tables: list[str]) -> tuple[float, int]:
    started = time.perf_counter()
    total = 0
    for table in tables:
        total += int(await conn.fetchval(f'select count(*) from shop."{table}"'))
    return time.perf_counter() - started, total


async def _discover(params: ConnectionParams) -> tuple[float, CatalogSnapshot]:
    started = time.perf_counter()
    snapshot = await discover(
        params, budget=Budget(rows=10**10), guard=OPEN, include_schemas=("shop",), options=OPTIONS
    )
    return time.perf_counter() - started, snapshot


async def _alternate(
    conn: asyncpg.Connection, params: ConnectionParams, tables: list[str], repeat: int
) -> Any:
    await _sequential_pass(conn, tables)  # warm-up: both sides then read from the same cache
    base, disc = [], []
    snapshot = None
    for _ in range(repeat):
        seconds, total = await _sequential_pass(conn, tables)
        base.append(seconds)
        seconds, snapshot = await _discover(params)
        disc.append(seconds)
    return statistics.median(base), statistics.median(disc), total, snapshot


async def _accuracy(conn: asyncpg.Connection, snapshot: CatalogSnapshot) -> dict[str, Any]:
    distinct: list[tuple[str, float, float, float]] = []
    null_errors: list[float] = []
    within_margin = margins = recounted = 0
    row_errors: list[float] = []
    methods_of: dict[str, str] = {}
    for table in snapshot.tables:
        if table.kind != "table" or table.profile_method not in ("sample", "stats"):
            continue
        exact_rows = int(await conn.fetchval(f'select count(*) from shop."{table.name}"'))
        if table.rows is not None and exact_rows:
            row_errors.append(abs(table.rows / exact_rows - 1))
        for column in table.columns:
            profile = column.profile
            if profile is None:
                continue
            name = f'"{column.name}"'
            truth = await conn.fetchrow(
                f"select count(distinct {name}) as d, "
                f'1 - count({name})::float8 / greatest(count(*), 1) as nf from shop."{table.name}"'
            )
            figure = profile.distinct_count
            if figure is not None:
                methods_of[f"{table.name}.{column.name}"] = figure.method
            # Exact figures in a sampled table are the recounts of unsteady estimates
            # (ProfileOptions.recount_rows): they are checked too, and counted apart.
            if figure is not None and figure.method in ("estimate", "stats", "exact") and truth["d"]:
                recounted += figure.method == "exact"
                error = float(figure.value) / truth["d"] - 1
                distinct.append(
                    (f"{table.name}.{column.name}", float(figure.value), float(truth["d"]), error)
                )
            nf = profile.null_fraction
            if nf is not None and nf.method in ("sample", "stats"):
                null_errors.append(abs(float(nf.value) - truth["nf"]))
                if nf.margin is not None:
                    margins += 1
                    within_margin += abs(float(nf.value) - truth["nf"]) <= nf.margin
    errors = [abs(e) for *_, e in distinct]
    worst = max(distinct, key=lambda d: abs(d[3]), default=None)
    return {
        "methods": _methods(snapshot, distinct, methods_of),
        "distinct_columns": len(distinct),
        "distinct_within_10pct": sum(1 for e in errors if e <= 0.10),
        "distinct_recounted": recounted,
        "distinct_median_error": round(statistics.median(errors), 4) if errors else 0.0,
        "distinct_worst": [worst[0], worst[1], worst[2], round(worst[3], 3)] if worst else [],
        "misses": [
            [n, round(e, 3)] for n, _, _, e in sorted(distinct, key=lambda d: -abs(d[3])) if abs(e) > 0.10
        ],
        "null_fraction_worst_error": round(max(null_errors, default=0.0), 4),
        "null_fraction_within_margin": f"{within_margin}/{margins}",
        "row_estimate_worst_error": round(max(row_errors, default=0.0), 4),
    }


def _methods(
    snapshot: CatalogSnapshot, distinct: list[tuple[str, float, float, float]], methods_of: dict[str, str]
) -> dict[str, Any]:
    """How many figures came from each method, and distinct-count accuracy per method."""
    rows: dict[str, int] = {}
    figures: dict[str, int] = {}
    for table in snapshot.tables:
        if table.row_estimate is not None:
            rows[table.row_estimate.method] = rows.get(table.row_estimate.method, 0) + 1
        for column in table.columns:
            if column.profile is None:
                continue
            for name in ("null_fraction", "distinct_count", "min", "max"):
                figure = getattr(column.profile, name)
                if figure is not None:
                    figures[figure.method] = figures.get(figure.method, 0) + 1
    accuracy: dict[str, str] = {}
    by_method: dict[str, list[float]] = {}
    for name, _, _, error in distinct:
        by_method.setdefault(methods_of.get(name, "?"), []).append(abs(error))
    for method, errors in sorted(by_method.items()):
        accuracy[method] = (
            f"{sum(1 for e in errors if e <= 0.10)}/{len(errors)} within 10 %, worst {max(errors):.1%}"
        )
    return {"row_estimates": rows, "figures": figures, "distinct_accuracy": accuracy}


async def _keep_autovacuum_off(params: ConnectionParams, done: asyncio.Event) -> None:
    """Turn autovacuum off on the demo's tables as soon as they exist (the build creates
    them first, then fills them), so that autovacuum never analyzes them under the bench."""
    seen: set[str] = set()
    while not done.is_set():
        try:
            conn = await asyncpg.connect(**_connect_args(params))
        except (OSError, asyncpg.PostgresError):
            await asyncio.sleep(0.05)
            continue
        try:
            while not done.is_set():
                names = [
                    r[0]
                    for r in await conn.fetch(
                        "select c.relname from pg_class c join pg_namespace n on n.oid = c.relnamespace "
                        "where n.nspname = 'shop' and c.relkind = 'r'"
                    )
                ]
                for name in names:
                    if name not in seen:
                        await conn.execute(f'alter table shop."{name}" set (autovacuum_enabled = false)')
                        seen.add(name)
                await asyncio.sleep(0.05)
        except (OSError, asyncpg.PostgresError):
            await asyncio.sleep(0.05)
        finally:
            await conn.close()


async def _build_unanalyzed(admin: ConnectionParams, rows: int, name: str) -> None:
    done = asyncio.Event()
    watcher = asyncio.create_task(_keep_autovacuum_off(admin.with_database(name), done))
    try:
        await build_demo_database(admin, rows=rows, database=name)
    finally:
        done.set()
        await watcher
    conn = await asyncpg.connect(**_connect_args(admin.with_database(name)))
    try:  # and any table the poller missed
        for (table,) in await conn.fetch(
            "select relname from pg_class where relnamespace = 'shop'::regnamespace and relkind = 'r'"
        ):
            await conn.execute(f'alter table shop."{table}" set (autovacuum_enabled = false)')
    finally:
        await conn.close()


async def _tables_with_statistics(conn: asyncpg.Connection) -> list[str]:
    return [
        r[0]
        for r in await conn.fetch(
            "select relname from pg_stat_user_tables where schemaname = 'shop' "
            "and coalesce(last_analyze, last_autoanalyze) is not null order by 1"
        )
    ]


async def bench_size(admin: ConnectionParams, rows: int, repeat: int) -> SizeResult:
    name = f"uds_bench_disc_{uuid.uuid4().hex[:8]}"
    started = time.perf_counter()
    await _build_unanalyzed(admin, rows, name)
    build = time.perf_counter() - started
    params = admin.with_database(name)
    conn = await asyncpg.connect(**_connect_args(params))
    try:
        tables = await _tables(conn)
        analyzed = await _tables_with_statistics(conn)
        if analyzed:
            print(f"   WARNING: tables with statistics before measuring: {analyzed}")
        base, disc, total, snapshot = await _alternate(conn, params, tables, repeat)
        sampled = await _accuracy(conn, snapshot)
        await conn.execute("analyze")
        stats_base, stats_disc, _, stats_snapshot = await _alternate(conn, params, tables, repeat)
        stats = await _accuracy(conn, stats_snapshot)
    finally:
        await conn.close()
        admin_conn = await asyncpg.connect(**_connect_args(admin))
        try:
            await admin_conn.execute(f'drop database if exists "{name}" with (force)')
        finally:
            await admin_conn.close()
    return SizeResult(
        rows=rows,
        build_seconds=round(build, 2),
        total_rows=total,
        baseline_seconds=round(base, 4),
        discovery_seconds=round(disc, 4),
        ratio=round(disc / base, 3),
        stats_discovery_seconds=round(stats_disc, 4),
        stats_ratio=round(stats_disc / stats_base, 3),
        stats_distinct_within_10pct=f"{stats['distinct_within_10pct']}/{stats['distinct_columns']}",
        tables_with_statistics=len(analyzed),
        **sampled,
    )


def report(result: SizeResult) -> None:
    r = result
    print(f"\n== events = {r.rows:,} rows (shop total {r.total_rows:,}; built in {r.build_seconds:.1f}s)")
    print(f"   one sequential pass (count(*) of every table): {r.baseline_seconds * 1000:8.1f} ms")
    print(
        f"   discovery, sampling (never analyzed):          {r.discovery_seconds * 1000:8.1f} ms"
        f"   ratio {r.ratio:.2f}x  {'OK' if r.ratio <= 1 else 'over 1x'}"
    )
    print(
        f"   discovery, with fresh pg_stats:                {r.stats_discovery_seconds * 1000:8.1f} ms"
        f"   ratio {r.stats_ratio:.2f}x"
    )
    print(
        f"   sampled distinct counts within 10 % of exact: {r.distinct_within_10pct}/{r.distinct_columns}"
        f" ({r.distinct_recounted} of them recounted exactly; median error {r.distinct_median_error:.1%};"
        f" worst {r.distinct_worst})"
    )
    if r.misses:
        print(f"   outside 10 %: {r.misses}")
    print(
        f"   null fractions: worst error {r.null_fraction_worst_error:.2%}, within stated margin "
        f"{r.null_fraction_within_margin}; row estimates: worst error {r.row_estimate_worst_error:.2%}"
    )
    print(f"   pg_stats distinct counts within 10 % of exact: {r.stats_distinct_within_10pct}")
    print(f"   tables with statistics before the sampled runs: {r.tables_with_statistics}")
    print(f"   row estimates by method: {r.methods.get('row_estimates')}")
    print(f"   figures by method: {r.methods.get('figures')}")
    print(f"   distinct counts by method: {r.methods.get('distinct_accuracy')}")


# -- bloat -------------------------------------------------------------------------------

BLOAT_SQL = """
create schema ops;
create table ops.parcels (
  id int primary key, tracking text not null, weight_g int, depot int, note text
) with (autovacuum_enabled = false);
insert into ops.parcels
select i, 'TRK' || lpad(i::text, 10, '0'), 100 + (i * 37) % 5000, i % 40,
       case when i % 4 = 0 then null else 'n' || (i % 1000) end
from generate_series(1, {rows}) i;
analyze ops.parcels;
"""


async def _scratch(admin: ConnectionParams, label: str) -> tuple[ConnectionParams, str]:
    name = f"uds_bench_disc_{label}_{uuid.uuid4().hex[:8]}"
    conn = await asyncpg.connect(**_connect_args(admin))
    try:
        await conn.execute(f'create database "{name}"')
    finally:
        await conn.close()
    return admin.with_database(name), name


async def _drop(admin: ConnectionParams, name: str) -> None:
    conn = await asyncpg.connect(**_connect_args(admin))
    try:
        await conn.execute(f'drop database if exists "{name}" with (force)')
    finally:
        await conn.close()


async def _bloat_state(conn: asyncpg.Connection, params: ConnectionParams, rows: int) -> dict[str, Any]:
    started = time.perf_counter()
    snapshot = await discover(params, budget=Budget(rows=10**10), guard=OPEN, options=OPTIONS)
    seconds = time.perf_counter() - started
    table = snapshot.table("ops", "parcels")
    assert table is not None and table.rows is not None
    worst = ("", 0.0)
    for column in table.columns:
        figure = column.profile.distinct_count if column.profile else None
        if figure is None:
            continue
        truth = int(await conn.fetchval(f'select count(distinct "{column.name}") from ops.parcels'))
        error = float(figure.value) / truth - 1 if truth else 0.0
        if abs(error) >= abs(worst[1]):
            worst = (f"{column.name} ({figure.method})", error)
    return {
        "seconds": round(seconds, 3),
        "method": table.row_estimate.method if table.row_estimate else None,
        "row_error": round(table.rows / rows - 1, 4),
        "worst_distinct": [worst[0], round(worst[1], 4)],
        "dead_share": table.dead_row_share,
        "basis": table.row_estimate_basis,
    }


async def _dead_reported(conn: asyncpg.Connection, dead: bool) -> None:
    for _ in range(100):
        n = await conn.fetchval(
            "select n_dead_tup from pg_stat_user_tables where relid = 'ops.parcels'::regclass"
        )
        if ((n or 0) > 0) == dead:
            return
        await asyncio.sleep(0.1)


async def bench_bloat(admin: ConnectionParams, rows: int) -> dict[str, Any]:
    params, name = await _scratch(admin, "bloat")
    conn = await asyncpg.connect(**_connect_args(params))
    try:
        await conn.execute(BLOAT_SQL.format(rows=rows))
        fresh = await _bloat_state(conn, params, rows)
        await conn.execute("update ops.parcels set weight_g = weight_g + 1")
        await _dead_reported(conn, True)
        bloated = await _bloat_state(conn, params, rows)
        await conn.execute("vacuum ops.parcels")
        await _dead_reported(conn, False)
        vacuumed = await _bloat_state(conn, params, rows)
    finally:
        await conn.close()
        await _drop(admin, name)
    return {"rows": rows, "fresh": fresh, "after_update": bloated, "after_vacuum": vacuumed}


def report_bloat(result: dict[str, Any]) -> None:
    print(f"\n== bloat: ops.parcels, {result['rows']:,} rows (analyzed; all updated; then vacuumed)")
    for label in ("fresh", "after_update", "after_vacuum"):
        r = result[label]
        print(
            f"   {label:13} row estimate {r['row_error']:+.2%} ({r['method']}), worst distinct count "
            f"{r['worst_distinct'][1]:+.2%} ({r['worst_distinct'][0]}), dead share {r['dead_share']}, "
            f"{r['seconds'] * 1000:.0f} ms"
        )


# -- wide schemas --------------------------------------------------------------------------

WIDE_SQL = (
    "create schema wide;\n"
    "do $$\nbegin\n  for i in 1..{tables} loop\n    execute format(\n"
    "      'create table wide.t%s (id int primary key, '\n"
    "      'a1 int, a2 int, a3 int, a4 int, a5 int, a6 int, a7 int, a8 int, a9 int, '\n"
    "      'n1 numeric, n2 numeric, n3 numeric, n4 numeric, n5 numeric, '\n"
    "      's1 text, s2 text, s3 text, s4 text, s5 text) with (autovacuum_enabled = false); '\n"
    "      'insert into wide.t%s select g, g, g * 2, g %% 3, g, g, g, g, g, g, g / 2.0, g, g, g, g, '\n"
    "      '''v'' || g, ''w'', null, ''x'' || (g %% 2), ''y'' from generate_series(1, 1 + %s %% 50) g',\n"
    "      i, i, i);\n  end loop;\nend $$;\n"
)


async def bench_wide(admin: ConnectionParams, counts: list[int], repeat: int) -> dict[str, Any]:
    times: dict[int, float] = {}
    statements: dict[int, dict[str, int]] = {}
    for count in counts:
        params, name = await _scratch(admin, "wide")
        try:
            conn = await asyncpg.connect(**_connect_args(params))
            try:
                await conn.execute(WIDE_SQL.replace("{tables}", str(count)))
            finally:
                await conn.close()
            runs = []
            for _ in range(repeat):
                started = time.perf_counter()
                snapshot = await discover(
                    params, budget=Budget(rows=10**10), guard=OPEN, options=DiscoveryOptions()
                )
                runs.append(time.perf_counter() - started)
                assert len(snapshot.tables) == count
            times[count] = statistics.median(runs)
            statements[count] = snapshot.statements
        finally:
            await _drop(admin, name)
    small, large = min(counts), max(counts)
    ratio = times[large] / (large / small * times[small])
    return {
        "seconds": times,
        "statements": statements,
        "ratio": round(ratio, 3),
        "small": small,
        "large": large,
    }


def report_wide(result: dict[str, Any]) -> None:
    small, large = result["small"], result["large"]
    print("\n== wide schemas (20 columns a table, 2-50 rows each, one connection)")
    for count, seconds in result["seconds"].items():
        print(f"   {count:5,} tables: {seconds:7.2f} s  statements {result['statements'][count]}")
    print(
        f"   time({large}) / ({large // small} x time({small})) = {result['ratio']:.2f}"
        f"  {'OK' if result['ratio'] <= 1.2 else 'over 1.2'}"
    )


# -- inference on the logistics database ---------------------------------------------------


async def bench_inference(admin: ConnectionParams) -> dict[str, Any]:
    from discovery import logistics

    params, name = await _scratch(admin, "logi")
    try:
        conn = await asyncpg.connect(**_connect_args(params))
        try:
            await conn.execute(logistics.SQL)
            for (table,) in await conn.fetch(
                "select format('%I.%I', n.nspname, c.relname) from pg_class c "
                "join pg_namespace n on n.oid = c.relnamespace "
                "where n.nspname = 'logi' and c.relkind in ('r', 'm')"
            ):
                await conn.execute(f"alter table {table} set (autovacuum_enabled = false)")
            await conn.execute("analyze")
            await conn.execute(logistics.BLOAT)
        finally:
            await conn.close()
        started = time.perf_counter()
        snapshot = await discover(params, budget=Budget(rows=10**10), guard=OPEN, options=DiscoveryOptions())
        seconds = time.perf_counter() - started
    finally:
        await _drop(admin, name)
    truth = logistics.PLANTED
    found = {
        (r.from_table, tuple(r.from_columns), r.to_table, tuple(r.to_columns))
        for r in snapshot.relationships
        if not r.declared and r.confidence >= 0.7
    }
    hits = found & truth
    semantic_hits = 0
    for (table_name, column_name), expected in logistics.SEMANTICS.items():
        table = snapshot.table("logi", table_name)
        column = table.column(column_name) if table is not None else None
        semantic_hits += column is not None and column.semantic_type == expected
    return {
        "planted": len(truth),
        "found": len(found),
        "precision": round(len(hits) / len(found), 3) if found else 0.0,
        "recall": round(len(hits) / len(truth), 3),
        "false": sorted(map(str, found - truth)),
        "missed": sorted(map(str, truth - found)),
        "semantic": f"{semantic_hits}/{len(logistics.SEMANTICS)}",
        "seconds": round(seconds, 2),
    }


def report_inference(result: dict[str, Any]) -> None:
    print("\n== inference on the logistics database (confidence >= 0.7)")
    print(
        f"   precision {result['precision']:.3f}, recall {result['recall']:.3f} "
        f"({result['found']} found, {result['planted']} planted; targets >= 0.95 each)"
        f"; planted semantic types {result['semantic']}; discovery {result['seconds']:.2f} s"
    )
    if result["false"]:
        print(f"   not planted: {result['false']}")
    if result["missed"]:
        print(f"   missed: {result['missed']}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="100000,5000000", help="comma-separated rows of the big table")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--json", help="also write the results here")
    parser.add_argument("--bloat-rows", type=int, default=1_000_000, help="rows of the bloated table")
    parser.add_argument("--wide", default="200,2000", help="table counts of the wide-schema case")
    parser.add_argument("--wide-repeat", type=int, default=1)
    parser.add_argument("--quick", action="store_true", help="sizes 100000 and a 300,000-row bloat table")
    parser.add_argument("--only", default="demo,bloat,wide,inference", help="cases to run (comma-separated)")
    args = parser.parse_args()
    if args.quick:
        args.sizes, args.bloat_rows = "100000", 300_000
    cases = set(args.only.split(","))
    sizes = [int(s.replace("_", "")) for s in args.sizes.split(",") if s.strip()] if "demo" in cases else []

    stop = None
    url = os.environ.get("UDS_DATABASE_URL")
    if not url:
        from uds.embedded import start_embedded

        servers = start_embedded(Path(tempfile.mkdtemp(prefix="uds-bench-")), progress=lambda m: print(m))
        url, stop = servers.database_url, servers.stop
    admin = params_from_url(url, database="postgres")
    # As `uds worker` does once started: discovery runs here as it runs there.
    collect_less_often()
    settle_heap()
    try:
        results: list[Any] = []
        for rows in sizes:
            result = asyncio.run(bench_size(admin, rows, args.repeat))
            report(result)
            results.append(asdict(result))
        if "bloat" in cases:
            bloat = asyncio.run(bench_bloat(admin, args.bloat_rows))
            report_bloat(bloat)
            results.append({"bloat": bloat})
        if "wide" in cases:
            counts = [int(c) for c in args.wide.split(",")]
            wide = asyncio.run(bench_wide(admin, counts, args.wide_repeat))
            report_wide(wide)
            results.append({"wide": wide})
        if "inference" in cases:
            inference = asyncio.run(bench_inference(admin))
            report_inference(inference)
            results.append({"inference": inference})
    finally:
        if stop:
            stop()
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
