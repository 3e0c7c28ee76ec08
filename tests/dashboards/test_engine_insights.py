"""compute_insights: plain statistics on rows, as short factual sentences."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from uds.dashboards import vegalite as vl
from uds.dashboards.insights import compute_insights

MONTHS = [dt.datetime(2024, m, 1, tzinfo=dt.UTC) for m in range(1, 13)]
SERIES_SPEC = vl.timeseries_spec(
    "Orders per month", time="time", grain="month", value="count", value_title="Orders", fmt=",d"
)


def test_trend_change_and_peak() -> None:
    rows = [(t, 100 + 10 * i) for i, t in enumerate(MONTHS)]
    out = compute_insights(SERIES_SPEC, ["time", "count"], rows)
    assert out == [
        "Orders went from 100 in Jan 2024 to 210 in Dec 2024 (+110.0%).",
        "Over 12 periods the trend is upward, about 10 per month more.",
        "The highest was Dec 2024 with 210.",
    ]


def test_flat_series_with_an_outlier() -> None:
    values = [50, 51, 49, 50, 52, 48, 50, 140, 51, 49, 50, 50]
    out = compute_insights(SERIES_SPEC, ["time", "count"], list(zip(MONTHS, values, strict=True)))
    assert "Over 12 periods the trend is flat." in out or any("upward" in s for s in out)
    assert "1 period stands out: Aug 2024 (140)." in out
    assert "The highest was Aug 2024 with 140." in out


def test_kind_only_and_json_rows_give_the_same_numbers() -> None:
    rows = [(t, Decimal(100 + i)) for i, t in enumerate(MONTHS)]
    json_rows = [(t.isoformat(), float(v)) for t, v in rows]
    assert compute_insights(SERIES_SPEC, ["time", "count"], rows) == compute_insights(
        SERIES_SPEC, ["time", "count"], json_rows
    )
    by_kind = compute_insights("timeseries", ["time", "count"], rows)
    assert by_kind[0] == "Count went from 100 in 2024-01-01 to 111 in 2024-12-01 (+11.0%)."


def test_series_share() -> None:
    spec = vl.timeseries_spec(
        "Revenue by category",
        time="time",
        grain="month",
        value="v",
        value_title="Revenue",
        fmt=",.2f",
        series="cat",
        series_title="Category",
    )
    rows = [(t, c, v) for t in MONTHS[:3] for c, v in (("books", 30), ("toys", 10))]
    out = compute_insights(spec, ["time", "cat", "v"], rows)
    assert "The largest series is books with 75.0% of the total." in out
    assert out[0] == "Revenue went from 40 in Jan 2024 to 40 in Mar 2024 (+0.0%)."


def test_breakdown_shares_concentration_and_outliers() -> None:
    spec = vl.bar_spec(
        "Orders by status",
        category="status",
        category_title="Status",
        value="n",
        value_title="Orders",
        fmt=",d",
    )
    rows = [("a", 10), ("b", 12), ("c", 11), ("d", 9), ("e", 95), ("f", 13)]
    out = compute_insights(spec, ["status", "n"], rows)
    assert out == [
        "The largest is e with 95, 63.3% of the 6 shown.",
        "The top 3 hold 80.0% of the total.",
        "The smallest is d with 9.",
        "Standing out above the rest (over 16.50): e.",
    ]
    # Ties go by label, so the sentences never depend on row order.
    tied = [("b", 5), ("a", 5)]
    assert compute_insights(spec, ["status", "n"], tied) == compute_insights(
        spec, ["status", "n"], tied[::-1]
    )
    assert (
        compute_insights(spec, ["status", "n"], tied)[0] == "The largest is a with 5, 50.0% of the 2 shown."
    )


def test_pie_and_stacked() -> None:
    pie = vl.pie_spec(
        "Methods", category="method", category_title="Method", value="n", value_title="Payments", fmt=",d"
    )
    assert compute_insights(pie, ["method", "n"], [("card", 30), ("cash", 10)])[0] == (
        "The largest is card with 30, 75.0% of the 2 shown."
    )
    stacked = vl.bar_spec(
        "Status and currency",
        category="status",
        category_title="Status",
        value="n",
        value_title="Orders",
        fmt=",d",
        split="cur",
        split_title="Currency",
    )
    rows = [("paid", "EUR", 5), ("paid", "USD", 15), ("new", "USD", 4)]
    out = compute_insights(stacked, ["status", "cur", "n"], rows)
    assert out[0] == "The largest is paid with 20, 83.3% of the 2 shown."
    assert out[-1] == "Across all bars, USD is the largest part with 79.2%."


def test_histogram() -> None:
    spec = vl.histogram_spec("Amounts", start="s", end="e", count="n", measure_title="Amount", fmt=",.2f")
    rows = [(0, 10, 50), (10, 20, 30), (20, 30, 10), (30, 40, 5), (90, 100, 5)]
    out = compute_insights(spec, ["s", "e", "n"], rows)
    assert out == [
        "The most rows (50.0%) are between 0 and 10.",
        "Half of the rows are below 10.",
        "The values have a long tail towards the high end.",
    ]


def test_scatter_correlation() -> None:
    spec = vl.scatter_spec(
        "y vs x", x="x", x_title="Price", y="y", y_title="Quantity", size="n", x_fmt=",", y_fmt=","
    )
    up = [(i, 2 * i + 1, 1) for i in range(10)]
    assert compute_insights(spec, ["x", "y", "n"], up) == [
        "Quantity and price are strongly positively correlated (r = 1.00)."
    ]
    down = [(i, 100 - i * i, 2) for i in range(10)]
    assert "strongly negatively" in compute_insights(spec, ["x", "y", "n"], down)[0]
    noise = [(0, 0, 1), (0, 1, 1), (1, 0, 1), (1, 1, 1)]
    assert compute_insights(spec, ["x", "y", "n"], noise) == [
        "Quantity and price are not correlated (r = 0.00)."
    ]


def test_nothing_to_say() -> None:
    assert compute_insights("bar", ["a", "n"], []) == ["No rows."]
    assert compute_insights("kpi", ["count"], [(5,)]) == []
    # Rows that do not fit the spec (an edited widget) give no insight, not an error.
    assert compute_insights(SERIES_SPEC, ["x", "y"], [("a", "b")]) == []
    assert compute_insights("histogram", ["s", "e", "n"], [("x", None, "y")]) == []
