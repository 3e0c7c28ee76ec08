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

import asyncpg  # noqa: E402

from uds.datasources.guard import NetworkGuard  # noqa: E402
from uds.datasources.params import ConnectionParams, params_from_url  # noqa: E402
from uds.demo import build_demo_database  # noqa: E402
from uds.discovery.budget import Budget  # noqa: E402
from uds.discovery.engine import discover  # noqa: E402
from uds.discovery.snapshot import CatalogSnapshot  # noqa: E402
from uds.runtime import collect_less_often, settle_heap  # noqa: E402

OPEN = NetworkGuard(enforce=False)  # the bench connects to its own server on localhost


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
    snapshot = await discover(params, budget=Budget(rows=10**10), guard=OPEN, include_schemas=("shop",))
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


async def bench_size(admin: ConnectionParams, rows: int, repeat: int) -> SizeResult:
    name = f"uds_bench_disc_{uuid.uuid4().hex[:8]}"
    started = time.perf_counter()
    await build_demo_database(admin, rows=rows, database=name)
    build = time.perf_counter() - started
    params = admin.with_database(name)
    conn = await asyncpg.connect(**_connect_args(params))
    try:
        tables = await _tables(conn)
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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="100000,5000000", help="comma-separated rows of the big table")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--json", help="also write the results here")
    args = parser.parse_args()
    sizes = [int(s.replace("_", "")) for s in args.sizes.split(",") if s.strip()]

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
        results = []
        for rows in sizes:
            result = asyncio.run(bench_size(admin, rows, args.repeat))
            report(result)
            results.append(result)
    finally:
        if stop:
            stop()
    if args.json:
        Path(args.json).write_text(json.dumps([asdict(r) for r in results], indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
