"""Profiles against exact SQL on the demo data: exact where the method says exact, within
the stated margin where sampled, and every figure saying how it was obtained."""

from __future__ import annotations

from typing import Any

import pytest

from discovery.kit import DemoSource
from uds.discovery.snapshot import (
    CONSTRAINT,
    ESTIMATE,
    EXACT,
    INDEX,
    PROFILE_FIGURES,
    SAMPLE,
    STATS,
    CatalogSnapshot,
    ColumnSnapshot,
    TableSnapshot,
)

METHODS = {EXACT, STATS, SAMPLE, ESTIMATE, CONSTRAINT, INDEX, "catalog"}


def table(snapshot: CatalogSnapshot, name: str) -> TableSnapshot:
    found = snapshot.table("shop", name)
    assert found is not None, name
    return found


async def exact_figures(demo: DemoSource, t: TableSnapshot, c: ColumnSnapshot) -> dict[str, Any]:
    conn = await demo.connect()
    try:
        col = f'"{c.name}"'
        row = await conn.fetchrow(
            f"select count(*) as n, count({col}) as nn, count(distinct {col}) as d from shop.{t.name}"
        )
        result: dict[str, Any] = {
            "rows": row["n"],
            "null_fraction": 1 - row["nn"] / row["n"],
            "distinct": row["d"],
        }
        if c.family in ("integer", "number", "date", "time", "text"):
            collate = ' collate "C"' if c.family == "text" else ""
            extremes = await conn.fetchrow(
                f"select min({col}{collate})::text as lo, max({col}{collate})::text as hi from shop.{t.name}"
            )
            result["min"], result["max"] = extremes["lo"], extremes["hi"]
        top = await conn.fetch(
            f"select {col}::text as v, count(*)::float8 / $1 as f from shop.{t.name} where {col} is not null "
            f"group by 1 order by 2 desc, 1 limit 3",
            row["n"],
        )
        result["top"] = {r["v"]: r["f"] for r in top}
        return result
    finally:
        await conn.close()


def test_tables_get_the_methods_their_size_and_statistics_call_for(discovered: CatalogSnapshot) -> None:
    # categories, products and customers fit under exact_rows; orders has fresh pg_stats;
    # the big tables are sampled; the view is read from its first rows.
    assert table(discovered, "categories").profile_method == EXACT
    assert table(discovered, "customers").profile_method == EXACT
    assert table(discovered, "orders").profile_method == STATS
    for name in ("events", "order_items", "payments"):
        assert table(discovered, name).profile_method == SAMPLE, name
    assert table(discovered, "customer_order_totals").profile_method == "rows"


def test_every_figure_records_its_method_and_sample_size(discovered: CatalogSnapshot) -> None:
    seen = set()
    for t in discovered.tables:
        for c in t.columns:
            if c.profile is None:
                continue
            for name in PROFILE_FIGURES:
                figure = getattr(c.profile, name)
                if figure is None:
                    continue
                assert figure.method in METHODS, (t.name, c.name, name, figure)
                seen.add(figure.method)
                if figure.method in (EXACT, SAMPLE, ESTIMATE, STATS):
                    assert figure.sample_size and figure.sample_size > 0, (t.name, c.name, name)
    assert {EXACT, SAMPLE, ESTIMATE, STATS, CONSTRAINT} <= seen


@pytest.mark.parametrize("name", ["customers", "categories", "products"])
async def test_exact_figures_equal_sql(demo: DemoSource, discovered: CatalogSnapshot, name: str) -> None:
    t = table(discovered, name)
    assert t.row_estimate is not None and t.row_estimate.method == EXACT
    for c in t.columns:
        truth = await exact_figures(demo, t, c)
        p = c.profile
        assert p is not None and p.method == EXACT
        assert t.row_estimate.value == truth["rows"]
        assert p.null_fraction is not None and p.null_fraction.value == pytest.approx(
            truth["null_fraction"], abs=1e-6
        )
        assert p.distinct_count is not None and p.distinct_count.value == truth["distinct"], c.name
        if "min" in truth and not c.pii:
            assert p.min is not None and p.min.value == truth["min"], c.name
            assert p.max is not None and p.max.value == truth["max"], c.name
        if p.top_values is not None and not c.pii:
            got = dict(p.top_values.value)
            for value, frequency in truth["top"].items():
                if frequency * truth["rows"] < 1.5:
                    continue  # values seen once are not "top" values
                assert got.get(value) == pytest.approx(frequency, abs=1e-6), (c.name, value)


@pytest.mark.parametrize("name", ["events", "order_items", "payments"])
async def test_sampled_figures_are_within_their_stated_margin(
    demo: DemoSource, discovered: CatalogSnapshot, name: str
) -> None:
    t = table(discovered, name)
    for c in t.columns:
        truth = await exact_figures(demo, t, c)
        p = c.profile
        assert p is not None
        # Row estimate: extrapolated from the pages the sample drew.
        assert t.row_estimate is not None
        assert t.row_estimate.value == pytest.approx(truth["rows"], rel=0.1)
        nf = p.null_fraction
        assert nf is not None
        if nf.method == SAMPLE:
            assert nf.margin is not None and nf.sample_size
            assert abs(nf.value - truth["null_fraction"]) <= nf.margin + 0.01, (c.name, nf, truth)
        else:
            assert nf.method == CONSTRAINT and truth["null_fraction"] == 0
        d = p.distinct_count
        assert d is not None
        if truth["distinct"] <= 50 or truth["distinct"] >= 0.9 * truth["rows"] * (1 - truth["null_fraction"]):
            # Low cardinality (every value is seen) and near-unique columns are the
            # estimator's easy cases: held to 15 %.
            assert d.value == pytest.approx(truth["distinct"], rel=0.15), (c.name, d, truth["distinct"])
        else:
            assert truth["distinct"] * 0.4 <= d.value <= truth["distinct"] * 1.6, (
                c.name,
                d,
                truth["distinct"],
            )
        if p.top_values is not None and d.value <= 50 and not c.pii:
            got = dict(p.top_values.value)
            margin = 3 * (0.25 / (p.sample_size or 1)) ** 0.5 + 0.01
            for value, frequency in truth["top"].items():
                assert abs(got.get(value, 0.0) - frequency) <= margin, (c.name, value)


async def test_stats_figures_come_from_pg_stats(demo: DemoSource, discovered: CatalogSnapshot) -> None:
    t = table(discovered, "orders")
    coupon = t.column("coupon_code")
    assert coupon is not None and coupon.profile is not None
    truth = await exact_figures(demo, t, coupon)
    nf = coupon.profile.null_fraction
    assert nf is not None and nf.method == STATS
    # ANALYZE read every row of this 8 000-row table.
    assert nf.value == pytest.approx(truth["null_fraction"], abs=0.01)
    assert (
        coupon.profile.distinct_count is not None and coupon.profile.distinct_count.value == truth["distinct"]
    )
    created = t.column("created_at")
    assert created is not None and created.profile is not None
    # Indexed column: exact extremes from the index, whatever the method of the rest.
    assert created.profile.min is not None and created.profile.min.method == INDEX
    exact = await exact_figures(demo, t, created)
    assert created.profile.min.value == exact["min"] and created.profile.max.value == exact["max"]


def test_histograms_for_numbers_and_timestamps(discovered: CatalogSnapshot) -> None:
    for name, column in [
        ("order_items", "unit_price"),
        ("events", "occurred_at"),
        ("customers", "created_at"),
    ]:
        c = table(discovered, name).column(column)
        assert c is not None and c.profile is not None and c.profile.histogram is not None, (name, column)
        histogram = c.profile.histogram.value
        assert len(histogram["bounds"]) == len(histogram["fractions"]) + 1
        assert sum(histogram["fractions"]) == pytest.approx(1.0, abs=0.01)
    status = table(discovered, "orders").column("status")
    assert status is not None and status.profile is not None and status.profile.histogram is None


def test_constraints_beat_estimates(discovered: CatalogSnapshot) -> None:
    events = table(discovered, "events")
    pk = events.column("id")
    assert pk is not None and pk.profile is not None
    assert pk.profile.distinct_count is not None and pk.profile.distinct_count.method == CONSTRAINT
    assert pk.profile.null_fraction is not None and pk.profile.null_fraction.value == 0.0


def test_second_stage_picks_only_uncertain_mid_cardinality_columns() -> None:
    from uds.discovery.profiles import ColumnValues, _uncertain
    from uds.discovery.snapshot import ColumnProfile, ColumnSnapshot, Figure

    column = ColumnSnapshot(
        name="customer_id", position=1, data_type="bigint", family="integer", nullable=False
    )

    def profile(distinct: float) -> ColumnProfile:
        p = ColumnProfile(method="sample", sample_size=10_000)
        p.null_fraction = Figure(0.0, "sample", 10_000)
        p.distinct_count = Figure(distinct, "estimate", 10_000)
        return p

    seen = ColumnValues(distinct=9_000, non_null=10_000)
    assert _uncertain(column, profile(70_000), seen, 1_000_000)  # mostly unseen, mid-cardinality
    assert not _uncertain(column, profile(990_000), seen, 1_000_000)  # near-unique: settled
    assert not _uncertain(column, profile(9_500), seen, 1_000_000)  # little unseen
    clustered = ColumnValues(distinct=9_000, non_null=10_000, clustered=True)
    assert not _uncertain(column, profile(70_000), clustered, 1_000_000)
    assert not _uncertain(column, profile(70), ColumnValues(distinct=40, non_null=10_000), 1_000_000)
