"""Distinct-count estimation and how sampled values are fetched and shown: the estimator's
corrections on synthetic samples whose truth is known, then the recount and the timestamp
path against a real PostgreSQL."""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import replace
from typing import Any

import asyncpg
import pytest

from discovery.kit import OPEN, TEST_OPTIONS, connect_args, execute
from uds.datasources.connect import SourceLimits
from uds.datasources.params import ConnectionParams
from uds.discovery.budget import Budget
from uds.discovery.engine import discover
from uds.discovery.estimators import (
    chao_lin,
    estimate_distinct,
    improved_chao,
    is_unsteady,
    repeat_share,
    worth_recounting,
)
from uds.discovery.profiles import (
    INFINITY_MICROS,
    _top,
    page_edge_carryover,
    page_runs,
    profile_values,
    renderer,
)
from uds.discovery.snapshot import ESTIMATE, EXACT, ColumnSnapshot

# --- the estimator on synthetic samples ---------------------------------------------


def page_sample(
    table: list[Any], *, per_page: int, every: int, offset: int = 0
) -> tuple[list[int], list[Any], float]:
    """Rows of every `every`-th page of `table` (pages of `per_page` rows), as a SYSTEM
    sample would return them: page numbers, values, and the share of pages drawn."""
    pages: list[int] = []
    values: list[Any] = []
    count = (len(table) + per_page - 1) // per_page
    drawn = range(offset, count, every)
    for page in drawn:
        rows = table[page * per_page : (page + 1) * per_page]
        pages.extend([page] * len(rows))
        values.extend(rows)
    return pages, values, len(drawn) / count


def text_column(name: str = "v") -> ColumnSnapshot:
    return ColumnSnapshot(name=name, position=1, data_type="text", family="text", nullable=True)


def test_page_runs_split_the_sample_by_page() -> None:
    assert page_runs([]) == []
    assert page_runs([7, 7, 7, 9, 12, 12]) == [(0, 3), (3, 4), (4, 6)]


def test_runs_straddling_pages_are_not_counted_twice() -> None:
    # Sessions of 6 rows laid out in order, 50 rows a page: most pages cut a session in
    # two, so each drawn page shows one value more than its share. Truth: 100 000.
    table = [i // 6 for i in range(600_000)]
    pages, values, q = page_sample(table, per_page=50, every=100)
    runs = page_runs(pages)
    column = ColumnSnapshot(name="session", position=1, data_type="bigint", family="integer", nullable=False)
    profile, seen = profile_values(column, values, runs, q=q, rows=len(table), exact=False)
    assert seen.clustered
    assert profile.distinct_count is not None and profile.distinct_count.method == ESTIMATE
    assert profile.distinct_count.value == pytest.approx(100_000, rel=0.03)

    # Without the correction, the same sample says about 8 % more.
    per_page = Counter()
    for start, end in runs:
        per_page.update(set(values[start:end]))
    fof = Counter(per_page.values())
    uncorrected = estimate_distinct(len(per_page), fof, q=q, population=len(table))
    assert uncorrected > 1.06 * 100_000
    carried = page_edge_carryover(runs, values, per_page)
    assert 0 < carried < len(runs)


def test_values_spread_at_random_are_left_alone() -> None:
    rng = random.Random(3)
    table = [rng.randrange(20_000) for _ in range(200_000)]
    pages, values, q = page_sample(table, per_page=50, every=20)
    profile, seen = profile_values(text_column(), values, page_runs(pages), q=q, rows=len(table), exact=False)
    assert not seen.clustered
    truth = len(set(table))
    assert profile.distinct_count is not None
    assert profile.distinct_count.value == pytest.approx(truth, rel=0.10)


def test_an_estimate_resting_on_a_few_rare_counts_is_unsteady() -> None:
    # customers.zip_code at 5M (bench/discovery.py): f3 = 8 and f4 = 1 move the estimate
    # by 30 %, and the truth (77 324) lies between the two estimators.
    fof = {1: 11_377, 2: 364, 3: 8, 4: 1}
    d, q, population = 11_750, 0.1252, 97_000
    assert improved_chao(d, fof, q) > 1.25 * chao_lin(d, fof, q)
    assert is_unsteady(d, fof, q=q, population=population)


def test_unique_and_plentiful_counts_are_steady() -> None:
    # All unique: nothing to be unsure about (the estimate is the population).
    assert not is_unsteady(10_000, {1: 10_000}, q=0.1, population=100_000)
    # Every value seen often: all counts are large.
    rng = random.Random(5)
    table = [rng.randrange(2_000) for _ in range(200_000)]
    sample = rng.sample(table, 20_000)
    counts = Counter(sample)
    fof = Counter(counts.values())
    assert not is_unsteady(len(counts), fof, q=0.1, population=len(table))
    # Whole table read: exact, never unsteady.
    assert not is_unsteady(len(counts), fof, q=1.0, population=len(table))


def test_estimates_resting_on_how_values_repeat_are_worth_recounting() -> None:
    # A ZIP-like column at 12 % (see the `odd` table below): steady by its counts, yet
    # 12 % under the truth of 24 543, because a third of the values are unique and the
    # rest repeat: the estimator is a lower bound there.
    fof = {1: 3_823, 2: 116, 3: 5}
    d, q = 3_944, 0.1357
    assert not is_unsteady(d, fof, q=q, population=30_000)
    assert estimate_distinct(d, fof, q=q, population=30_000) < 0.9 * 24_543
    assert repeat_share(d, fof, q) > 0.05
    assert worth_recounting(d, fof, q=q, population=30_000)
    # Near-unique (an e-mail column with a placeholder): the row count pins the estimate.
    email = {1: 12_192, 2: 2, 49: 1}
    assert repeat_share(12_195, email, 0.125) < 0.01
    assert not worth_recounting(12_195, email, q=0.125, population=97_000)
    # Every value seen: nothing extrapolated.
    assert not worth_recounting(67, {5: 10, 40: 57}, q=0.1, population=100_000)


def test_fractional_counts_are_accepted() -> None:
    assert estimate_distinct(99.5, {1: 49.5, 2: 50}, q=0.1, population=10_000) > 99.5


# --- how values are shown -------------------------------------------------------------


def test_timestamps_fetched_as_microseconds_are_shown_as_postgresql_prints_them() -> None:
    tz = ColumnSnapshot(
        name="t", position=1, data_type="timestamp with time zone", family="time", nullable=True
    )
    naive = replace(tz, data_type="timestamp(3) without time zone")
    assert renderer(tz)(0) == "1970-01-01 00:00:00+00"
    assert renderer(naive)(0) == "1970-01-01 00:00:00"
    assert renderer(tz)(1_700_000_000_250_000) == "2023-11-14 22:13:20.25+00"
    assert renderer(tz)(-1) == "1969-12-31 23:59:59.999999+00"
    assert renderer(tz)(INFINITY_MICROS) == "infinity"
    assert renderer(tz)(-INFINITY_MICROS) == "-infinity"
    assert "year" in renderer(tz)(20_000 * 31_556_952_000_000)  # beyond Python's datetime
    # A domain keeps its native fetch and the generic rendering.
    domain = replace(tz, data_type="public.event_time")
    assert renderer(domain)(0) == "0"


def test_top_values_break_ties_by_text_and_skip_values_seen_once() -> None:
    counts = Counter({"b": 3, "a": 3, "c": 2, "z": 1})
    assert _top(counts, str) == [("a", 3), ("b", 3), ("c", 2)]
    many = Counter({f"v{i:03d}": 2 for i in range(50)})
    many["top"] = 9
    top = _top(many, str)
    assert top[0] == ("top", 9) and [v for v, _ in top[1:]] == [f"v{i:03d}" for i in range(9)]
    assert _top(Counter({"x": 1, "y": 1}), str) == []


# --- against PostgreSQL -------------------------------------------------------------


@pytest.fixture
async def odd(scratch: ConnectionParams) -> ConnectionParams:
    """A database with one table of 30 000 rows: a ZIP-like column (a third unique, the
    rest drawn from 30 000 codes), a clustered column, and timestamps including the
    infinities, NULLs and fractional seconds."""
    await execute(
        scratch,
        """
        create schema shop;
        create table shop.places (
          id int primary key,
          zip text,
          visit int,
          seen_at timestamptz,
          local_at timestamp
        );
        insert into shop.places
        select i,
               case when i % 3 = 0 then 'u' || i
                    else lpad((abs(hashint4(i)) % 30000)::text, 5, '0') end,
               i / 7,
               case when i = 5 then 'infinity'::timestamptz
                    when i = 6 then '-infinity'::timestamptz
                    when i % 10 = 0 then null
                    else timestamptz '2024-02-29 12:00:00.5+00' + i * interval '1.25 seconds' end,
               timestamp '2001-01-01' + i * interval '1 minute'
        from generate_series(1, 30000) i;
        alter table shop.places set (autovacuum_enabled = false);
        """,
    )
    return scratch


SAMPLED = replace(
    TEST_OPTIONS, profile=replace(TEST_OPTIONS.profile, sample_rows=3_000, exact_rows=1_000, refine_rows=0)
)


async def truth(params: ConnectionParams, sql: str) -> Any:
    conn = await asyncpg.connect(**connect_args(params))
    try:
        await conn.execute("set timezone = 'UTC'")
        return await conn.fetchrow(sql)
    finally:
        await conn.close()


async def test_unsteady_distinct_counts_of_a_modest_table_are_recounted_exactly(
    odd: ConnectionParams,
) -> None:
    snapshot = await discover(odd, budget=Budget(rows=1_000_000), guard=OPEN, options=SAMPLED)
    places = snapshot.table("shop", "places")
    assert places is not None and places.profile_method == "sample"
    zip_code = places.column("zip")
    assert zip_code is not None and zip_code.profile is not None
    exact = await truth(odd, "select count(distinct zip) as d, count(*) as n from shop.places")
    figure = zip_code.profile.distinct_count
    assert figure is not None
    assert figure.method == EXACT and figure.value == exact["d"] and figure.sample_size == exact["n"]
    assert snapshot.rows_read >= exact["n"]  # the recount is charged to the budget

    # Turned off, or over the size limit: the estimate stays, marked as one.
    for options in (
        replace(SAMPLED, profile=replace(SAMPLED.profile, recount_rows=0)),
        replace(SAMPLED, profile=replace(SAMPLED.profile, recount_rows=10_000)),
    ):
        again = await discover(odd, budget=Budget(rows=1_000_000), guard=OPEN, options=options)
        column = again.table("shop", "places").column("zip")  # type: ignore[union-attr]
        assert column is not None and column.profile is not None
        assert column.profile.distinct_count is not None
        assert column.profile.distinct_count.method == ESTIMATE


async def test_a_tight_budget_skips_the_recount(odd: ConnectionParams) -> None:
    snapshot = await discover(odd, budget=Budget(rows=5_000), guard=OPEN, options=SAMPLED)
    places = snapshot.table("shop", "places")
    assert places is not None
    assert snapshot.rows_read <= 5_500
    for column in places.columns:
        if column.profile is not None and column.profile.distinct_count is not None:
            assert column.profile.distinct_count.method != EXACT, column.name


WHOLE = replace(TEST_OPTIONS, profile=replace(TEST_OPTIONS.profile, exact_rows=50_000, sample_rows=50_000))


@pytest.mark.parametrize("options", [SAMPLED, WHOLE], ids=["sampled", "exact"])
async def test_timestamps_keep_their_extremes_and_infinities(odd: ConnectionParams, options: Any) -> None:
    snapshot = await discover(odd, budget=Budget(rows=1_000_000), guard=OPEN, options=options)
    places = snapshot.table("shop", "places")
    assert places is not None
    seen_at, local_at = places.column("seen_at"), places.column("local_at")
    assert seen_at is not None and seen_at.profile is not None
    assert local_at is not None and local_at.profile is not None
    if options is WHOLE:
        assert places.profile_method == "exact"
        exact = await truth(
            odd,
            "select min(seen_at)::text as lo, max(seen_at)::text as hi, "
            "min(local_at)::text as llo, max(local_at)::text as lhi, "
            "count(distinct seen_at) as d, 1 - count(seen_at)::float8 / count(*) as nf from shop.places",
        )
        assert seen_at.profile.min is not None and seen_at.profile.min.value == exact["lo"] == "-infinity"
        assert seen_at.profile.max is not None and seen_at.profile.max.value == exact["hi"] == "infinity"
        assert local_at.profile.min is not None and local_at.profile.min.value == exact["llo"]
        assert local_at.profile.max is not None and local_at.profile.max.value == exact["lhi"]
        assert (
            seen_at.profile.distinct_count is not None and seen_at.profile.distinct_count.value == exact["d"]
        )
        assert seen_at.profile.null_fraction is not None
        assert seen_at.profile.null_fraction.value == pytest.approx(exact["nf"], abs=1e-6)
    histogram = seen_at.profile.histogram
    assert histogram is not None
    inner = [b for b in histogram.value["bounds"] if "infinity" not in b]
    assert inner and all(b.endswith("+00") for b in inner)
    assert sorted(inner) == inner  # ISO text of one offset sorts like the instants
    conn = await asyncpg.connect(**connect_args(odd))
    try:
        await conn.execute("set timezone = 'UTC'")
        for bound in inner:  # each bound is a value of the column, as PostgreSQL prints it
            assert await conn.fetchval("select count(*) from shop.places where seen_at::text = $1", bound), (
                bound
            )
    finally:
        await conn.close()


async def test_a_recount_over_the_statement_timeout_keeps_the_sample_figures(
    scratch: ConnectionParams,
) -> None:
    # A column whose text form takes about a millisecond a value: the 10 % sample reads
    # in well under the timeout, the recount of all 3 000 rows cannot.
    await execute(
        scratch,
        """
        create schema shop;
        create type shop.pair as (a int, b int);
        create function shop.pair_text(shop.pair) returns text language plpgsql immutable as
          $$ begin perform pg_sleep(0.0002); return ($1).a || '/' || ($1).b; end $$;
        create cast (shop.pair as text) with function shop.pair_text(shop.pair);
        create table shop.pairs (id int primary key, p shop.pair, pad text);
        insert into shop.pairs
        select i, case when i % 3 = 0 then row(i, 0)::shop.pair
                       else row(abs(hashint4(i)) % 1000, 1)::shop.pair end,
               repeat('x', 400)  -- about 16 rows a page: the sample draws many pages
        from generate_series(1, 3000) i;
        alter table shop.pairs set (autovacuum_enabled = false);
        """,
        "vacuum shop.pairs",  # row count known, no pg_stats
    )
    options = replace(
        TEST_OPTIONS,
        profile=replace(
            TEST_OPTIONS.profile, sample_rows=300, exact_rows=100, min_sample_rows=50, refine_rows=0
        ),
    )
    limits = SourceLimits(connect_timeout=5, statement_timeout_ms=2_000, lock_timeout_ms=500)
    snapshot = await discover(
        scratch, budget=Budget(rows=100_000), guard=OPEN, options=options, limits=limits
    )
    pairs = snapshot.table("shop", "pairs")
    assert pairs is not None and pairs.profile_method == "sample", pairs
    pair = pairs.column("p")
    assert pair is not None and pair.profile is not None
    assert pair.profile.distinct_count is not None and pair.profile.distinct_count.method == ESTIMATE
    assert pair.profile.null_fraction is not None
    assert any("recount" in w and "statement timeout" in w for w in pairs.warnings), pairs.warnings
