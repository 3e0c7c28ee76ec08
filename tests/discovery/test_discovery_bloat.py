"""Row counts that survive bloat and stale statistics: a table after an UPDATE of every
row (half its row versions dead), the same after VACUUM (half its pages empty), and a
table that was never analyzed; plus the page-drawing rule against PostgreSQL itself."""

from __future__ import annotations

import asyncio
from dataclasses import replace

import asyncpg

from discovery.kit import OPEN, TEST_OPTIONS, connect_args, execute
from uds.datasources.params import ConnectionParams
from uds.discovery import quality, sampling
from uds.discovery.budget import Budget
from uds.discovery.engine import discover
from uds.discovery.snapshot import CatalogSnapshot

ROWS = 60_000
OPTIONS = replace(TEST_OPTIONS, profile=replace(TEST_OPTIONS.profile, sample_rows=4_000, exact_rows=2_000))

TABLE = f"""
create schema ops;
create table ops.parcels (
  id int primary key,
  tracking text not null,
  weight_g int,
  note text
) with (autovacuum_enabled = false);
insert into ops.parcels
select i, 'TRK' || lpad(i::text, 9, '0'), 100 + (i * 37) % 5000, case when i % 4 = 0 then null else 'n' end
from generate_series(1, {ROWS}) i;
"""


async def dead_tuples_reported(params: ConnectionParams, table: str, *, dead: bool) -> None:
    """Wait until the statistics collector shows the table's dead tuples (or none)."""
    conn = await asyncpg.connect(**connect_args(params))
    try:
        for _ in range(100):
            n = await conn.fetchval(
                "select n_dead_tup from pg_stat_user_tables where relid = $1::regclass", table
            )
            if (n or 0) > 0 if dead else n == 0:
                return
            await asyncio.sleep(0.1)
        raise AssertionError(f"pg_stat never showed the dead tuples of {table} as {dead}")
    finally:
        await conn.close()


async def profiled(params: ConnectionParams) -> CatalogSnapshot:
    return await discover(params, budget=Budget(rows=1_000_000), guard=OPEN, options=OPTIONS)


def check_counts(snapshot: CatalogSnapshot) -> None:
    parcels = snapshot.table("ops", "parcels")
    assert parcels is not None and parcels.profile_method == "sample", parcels
    assert abs(parcels.rows / ROWS - 1) <= 0.05, (parcels.rows, parcels.row_estimate_basis)
    tracking = parcels.column("tracking")
    assert tracking is not None and tracking.profile is not None and tracking.profile.distinct_count
    assert tracking.profile.distinct_count.method == "estimate"
    assert abs(tracking.profile.distinct_count.value / ROWS - 1) <= 0.05
    key = parcels.column("id")
    assert key is not None and key.profile is not None and key.profile.distinct_count
    assert abs(key.profile.distinct_count.value / ROWS - 1) <= 0.05
    # Live rows sit on half the pages only: the modest table's live rows are counted.
    assert parcels.row_estimate is not None and parcels.row_estimate.method == "exact"
    assert (parcels.row_estimate_basis or "").startswith("counted: 60,000 live rows, because")


async def test_after_an_update_of_every_row_the_live_rows_are_counted(scratch: ConnectionParams) -> None:
    await execute(scratch, TABLE, "analyze ops.parcels", "update ops.parcels set weight_g = weight_g + 1")
    await dead_tuples_reported(scratch, "ops.parcels", dead=True)
    snapshot = await profiled(scratch)
    check_counts(snapshot)
    parcels = snapshot.table("ops", "parcels")
    assert parcels is not None and parcels.dead_row_share is not None
    assert 0.45 <= parcels.dead_row_share <= 0.55
    # The stale pg_class figure, scaled to today's pages, was seen and not believed.
    assert "pg_class.reltuples" in (parcels.row_estimate_basis or "")
    assert parcels.quality is not None
    assert any("dead rows: vacuum pending" in r and r.startswith("about 5") for r in parcels.quality.reasons)

    # After VACUUM: no dead rows, but half the pages are empty (the live rows moved on).
    await execute(scratch, "vacuum ops.parcels")
    await dead_tuples_reported(scratch, "ops.parcels", dead=False)
    again = await profiled(scratch)
    check_counts(again)
    parcels = again.table("ops", "parcels")
    assert parcels is not None and parcels.dead_row_share == 0.0
    assert parcels.quality is not None and not any("dead rows" in r for r in parcels.quality.reasons)


async def test_a_table_never_analyzed_and_bloated_is_counted(scratch: ConnectionParams) -> None:
    await execute(scratch, TABLE, "update ops.parcels set note = 'm' where note is null or true")
    await dead_tuples_reported(scratch, "ops.parcels", dead=True)
    snapshot = await profiled(scratch)
    check_counts(snapshot)
    parcels = snapshot.table("ops", "parcels")
    assert parcels is not None and (parcels.dead_row_share or 0) >= 0.45
    assert "never analyzed" in (parcels.row_estimate_basis or "")


async def test_the_pages_postgresql_draws_are_the_pages_predicted(scratch: ConnectionParams) -> None:
    # One row per page (fillfactor 10, wide rows), so every drawn page shows up.
    await execute(
        scratch,
        "create table wide (x int, pad text) with (fillfactor = 10, autovacuum_enabled = false)",
        "insert into wide select g, repeat('x', 600) from generate_series(1, 1500) g",
    )
    conn = await asyncpg.connect(**connect_args(scratch))
    try:
        blocks = await conn.fetchval("select pg_relation_size('wide') / current_setting('block_size')::int")
        for percent, seed in ((3.0, 5711), (12.5, 7), (0.4, 1.5)):
            drawn = await conn.fetch(
                f"select distinct (ctid::text::point)[0]::int8 as b from wide "
                f"tablesample system ({percent}) repeatable ({seed}) order by 1"
            )
            assert [r["b"] for r in drawn] == sampling.drawn_blocks(blocks, percent=percent, seed=seed)
            assert sampling.seed_hash(seed) == (
                await conn.fetchval("select hashfloat8($1::float8)", seed)
            ) & (2**32 - 1)
    finally:
        await conn.close()
    # A page seen that the rule did not predict: no count (a server of another byte order).
    assert sampling.drawn_share({0: 100}, [999], percent=10.0, seed=1) is None


def test_the_dead_share_reason_reads_as_promised() -> None:
    from uds.discovery.snapshot import TableSnapshot

    table = TableSnapshot(schema="s", name="t", kind="table", primary_key=["id"], profiled=True)
    table.dead_row_share = 0.5
    assert "about 50 % dead rows: vacuum pending" in quality.table_quality(table, []).reasons
    table.dead_row_share = 0.1
    assert quality.table_quality(table, []).reasons == ["no issues found"]


def test_live_rows_are_estimated_region_by_region() -> None:
    # 2,000 pages; live rows (100 a page) only on the second half; every 10th page drawn.
    blocks = {0: 2_000}
    drawn = list(range(3, 2_000, 10))
    rows_on = {p: 100 for p in drawn if p >= 1_000}
    assert abs(sampling.rows_by_region(drawn, rows_on, blocks) / 100_000 - 1) <= 0.02
    # Evenly spread rows: the same as one mean over the drawn pages.
    even = {p: 50 for p in drawn}
    assert abs(sampling.rows_by_region(drawn, even, blocks) - 50 * 2_000) < 1e-6
    # Two relations (partitions): each on its own block axis.
    parted = {7: 100, 9: 300}
    pages = [(7 << 32) + b for b in range(0, 100, 5)] + [(9 << 32) + b for b in range(0, 300, 5)]
    counts = dict.fromkeys(pages, 10)
    assert abs(sampling.rows_by_region(pages, counts, parted) - 10 * 400) < 1e-6
