"""The engine on the demo shop, discovered for real: goals, SQL results checked against
independent SQL, every widget's rules, PII, determinism."""

from __future__ import annotations

import copy
import json
import re
from collections import defaultdict
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import pytest

from dashboards.engine_kit import Source, assert_no_pii, check_widget, demo_source, fetch, pii_shown
from uds.dashboards.candidates import MAX_SERIES, find_candidates
from uds.dashboards.draft import DashboardDraft, WidgetDraft
from uds.dashboards.generator import generate_dashboard
from uds.dashboards.goal import read_goal
from uds.dashboards.grafana import grafana_dashboard
from uds.dashboards.grafana_model import Dashboard
from uds.dashboards.insights import compute_insights
from uds.datasources.params import params_from_url
from uds.discovery.snapshot import CatalogSnapshot, Figure, TableSnapshot
from uds.settings import Settings

GOALS = [
    "revenue over time by category",
    "top customers by spend",
    "payment methods",
    "how many orders per status",
    None,
    "average order value by country",
    "distribution of order amounts",
    "weekly events by type as a stacked area chart",
    "unit price against quantity",
    "top 5 products by quantity",
    "share of orders by currency",
    "orders by status as a table",
]
# Goals that ask for personal data: the answer must still never show it.
PII_GOALS = [
    "orders by customer email",
    "top customers by first name and last name",
    "payments by card number",
    "events by ip address",
]


@pytest.fixture(scope="module")
async def demo(base_settings: Settings) -> AsyncIterator[Source]:
    assert base_settings.database_url
    async for source in demo_source(params_from_url(base_settings.database_url, database="postgres")):
        yield source


def widget(
    dashboard: DashboardDraft, *, kind: str, reads: set[str], grouped: set[str] | None = None
) -> WidgetDraft:
    """The first widget of `kind` reading all columns in `reads`."""
    for w in dashboard.widgets:
        if w.kind == kind and reads <= set(w.columns):
            return w
    raise AssertionError(
        f"no {kind} widget reading {reads}: {[(w.kind, w.title) for w in dashboard.widgets]}"
    )


def as_map(columns: list[str], rows: list[tuple[Any, ...]], keys: int) -> dict[tuple[Any, ...], Any]:
    return {tuple(r[:keys]): r[keys] for r in rows}


async def test_revenue_over_time_by_category(demo: Source) -> None:
    d = generate_dashboard(demo.catalog, goal="revenue over time by category")
    assert d.matched
    # The best widget: revenue of order lines per month, split by product category, joined
    # order_items -> orders (time), order_items -> products -> categories (category).
    top = d.widgets[0] if d.widgets[0].kind != "kpi" else next(w for w in d.widgets if w.kind != "kpi")
    assert top.kind == "timeseries"
    assert {
        "shop.order_items.unit_price",
        "shop.order_items.quantity",
        "shop.orders.created_at",
        "shop.categories.name",
    } <= set(top.columns)
    assert top.spec["usermeta"]["uds"]["grain"] == "month"  # 2.5 years of orders
    assert "products.category_id -> categories.id (declared)" in top.reason
    assert "order_items.product_id -> products.id (inferred, confidence 0." in top.reason
    columns, rows = await check_widget(demo, top)
    assert columns == ["time", "category", "sum_unit_price_x_quantity"]
    _, expected = await fetch(
        demo,
        """select date_trunc('month', o.created_at), c.name, sum(oi.unit_price * oi.quantity)
           from shop.order_items oi
           join shop.orders o on o.id = oi.order_id
           join shop.products p on p.id = oi.product_id
           join shop.categories c on c.id = p.category_id
           group by 1, 2""",
    )
    totals: dict[str, Decimal] = defaultdict(Decimal)
    for _, name, value in expected:
        totals[name] += value
    keep = set(sorted(totals, key=lambda n: (-totals[n], n))[:MAX_SERIES])
    folded: dict[tuple[Any, str], Decimal] = defaultdict(Decimal)
    for month, name, value in expected:
        folded[(month, name if name in keep else "(other)")] += value
    assert as_map(columns, rows, 2) == dict(folded)
    # The same breakdown without time: top categories by line value.
    bar = widget(d, kind="bar", reads={"shop.categories.name", "shop.order_items.unit_price"})
    columns, rows = await check_widget(demo, bar)
    assert [r[0] for r in rows] == sorted(totals, key=lambda n: (-totals[n], n))[:10]
    assert [r[1] for r in rows] == [totals[r[0]] for r in rows]


async def test_top_customers_by_spend(demo: Source) -> None:
    d = generate_dashboard(demo.catalog, goal="top customers by spend")
    top = d.widgets[0]
    assert top.kind == "bar" and top.title.startswith("Top 10 customers by")
    assert {"shop.orders.customer_id", "shop.orders.total_amount"} <= set(top.columns)
    # Customers have no name that is not personal: they are shown by id, never by name.
    assert "customers has no non-personal name column" in top.reason
    columns, rows = await check_widget(demo, top)
    _, expected = await fetch(
        demo,
        "select customer_id::text, sum(total_amount) from shop.orders group by 1 order by 2 desc, 1 limit 10",
    )
    assert rows == expected
    # Spend also reaches customers through payments -> orders (an inferred join).
    other = widget(d, kind="bar", reads={"shop.payments.amount", "shop.orders.customer_id"})
    columns, rows = await check_widget(demo, other)
    _, expected = await fetch(
        demo,
        """select o.customer_id::text, sum(p.amount) from shop.payments p join shop.orders o on o.id = p.order_id
           group by 1 order by 2 desc, 1 limit 10""",
    )
    assert rows == expected


async def test_payment_methods(demo: Source) -> None:
    d = generate_dashboard(demo.catalog, goal="payment methods")
    first = d.widgets[0]
    assert first.kind in ("bar", "pie") and set(first.columns) >= {"shop.payments.method"}
    assert "payments.method has 4 values" in first.reason
    columns, rows = await check_widget(demo, first)
    _, expected = await fetch(
        demo, "select method, count(*) from shop.payments group by 1 order by 2 desc, 1"
    )
    assert rows == expected
    assert all("shop.payments.method" in w.columns for w in d.widgets)
    split = widget(d, kind="timeseries", reads={"shop.payments.method", "shop.payments.paid_at"})
    columns, rows = await check_widget(demo, split)
    _, expected = await fetch(
        demo,
        f"select date_trunc('{split.spec['usermeta']['uds']['grain']}', paid_at), method, count(*) "
        "from shop.payments group by 1, 2",
    )
    assert as_map(columns, rows, 2) == as_map(columns, expected, 2)


async def test_how_many_orders_per_status(demo: Source) -> None:
    d = generate_dashboard(demo.catalog, goal="how many orders per status")
    first = d.widgets[0]
    assert first.kind == "bar" and first.title == "Number of orders by status"
    assert "orders.status has 6 values" in first.reason
    columns, rows = await check_widget(demo, first)
    assert columns == ["status", "count"]
    _, expected = await fetch(demo, "select status, count(*) from shop.orders group by 1 order by 2 desc, 1")
    assert rows == expected


@pytest.mark.parametrize("goal", GOALS)
async def test_every_widget_keeps_the_rules(demo: Source, goal: str | None) -> None:
    d = generate_dashboard(demo.catalog, goal=goal)
    assert 4 <= len(d.widgets) <= 8
    assert len({w.key for w in d.widgets}) == len(d.widgets)
    results = {}
    for w in d.widgets:
        columns, rows = await check_widget(demo, w)
        results[w.key] = rows
        assert w.reason and w.reason.endswith(".") and len(w.reason) > 40
        compute_insights(w.spec, columns, rows)
    assert_no_pii(demo, d, results)
    json.dumps(d.to_dict())


async def test_pii_is_never_grouped_labelled_or_listed(demo: Source) -> None:
    for goal in PII_GOALS:
        d = generate_dashboard(demo.catalog, goal=goal, max_widgets=12)
        results = {w.key: (await check_widget(demo, w))[1] for w in d.widgets}
        assert_no_pii(demo, d, results)
    # Nor anywhere among all candidates the catalog allows.
    reading = read_goal("customer email phone name card ip", demo.catalog)
    candidates = find_candidates(demo.catalog, reading)
    assert len(candidates) > 100
    for c in candidates:
        assert not pii_shown(demo, c.sql), (c.title, pii_shown(demo, c.sql))
    # The check itself finds PII where it is shown.
    assert pii_shown(demo, "select c.email, count(*) from shop.customers c group by 1 limit 5") == [
        "customers.email"
    ]
    assert pii_shown(demo, "select count(distinct c.email) from shop.customers c limit 1") == []


async def test_deterministic(demo: Source) -> None:
    for goal in ("revenue over time by category", None, "payment methods"):
        first = generate_dashboard(demo.catalog, goal=goal).to_dict()
        assert generate_dashboard(demo.catalog, goal=goal).to_dict() == first
        # The same catalog with every list in another order gives the same dashboard.
        shuffled = copy.deepcopy(demo.catalog)
        shuffled.tables.reverse()
        for t in shuffled.tables:
            t.columns.reverse()
        shuffled.relationships.reverse()
        assert generate_dashboard(shuffled, goal=goal).to_dict() == first
        # Byte for byte, once serialised.
        assert json.dumps(first) == json.dumps(generate_dashboard(shuffled, goal=goal).to_dict())


async def test_goal_that_matches_nothing_gives_the_overview(demo: Source) -> None:
    d = generate_dashboard(demo.catalog, goal="zebra migration patterns")
    overview = generate_dashboard(demo.catalog, goal=None)
    assert not d.matched
    assert "'zebra'" in d.message and "overview" in d.message
    assert [w.key for w in d.widgets] == [w.key for w in overview.widgets]
    assert overview.matched and overview.message.startswith("No goal given")
    vague = generate_dashboard(demo.catalog, goal="show me a dashboard")
    assert vague.matched and [w.key for w in vague.widgets] == [w.key for w in overview.widgets]
    # The overview leads with the big tables: events (the largest) and orders.
    bases = {c.split(".")[1] for w in overview.widgets for c in w.columns}
    assert {"orders", "events"} <= bases


async def test_without_semantic_types(demo: Source) -> None:
    """A catalog with no semantic types at all (a detector that knows nothing): data types,
    profiles and column names still give a dashboard, and PII is still kept out by name."""
    bare = copy.deepcopy(demo.catalog)
    for t in bare.tables:
        for c in t.columns:
            c.semantic_type, c.pii = None, False
    for goal in (
        "revenue over time by category",
        "orders by customer email",
        "how many orders per status",
        None,
    ):
        d = generate_dashboard(bare, goal=goal)
        results = {w.key: (await check_widget(demo, w))[1] for w in d.widgets}
        assert_no_pii(demo, d, results)
    d = generate_dashboard(bare, goal="how many orders per status")
    assert d.widgets[0].title == "Number of orders by status"


async def test_with_the_new_semantic_families(demo: Source) -> None:
    """The families discovery is adding (quantity, event_time, label, city, ...) are used."""
    rich = copy.deepcopy(demo.catalog)
    kinds = {
        ("order_items", "quantity"): "quantity",
        ("orders", "shipped_at"): "event_time",
        ("payments", "paid_at"): "event_time",
        ("products", "name"): "label",
        ("customers", "city"): "city",
        ("events", "occurred_at"): "event_time",
    }
    for t in rich.tables:
        for c in t.columns:
            c.semantic_type = kinds.get((t.name, c.name), c.semantic_type)
    d = generate_dashboard(rich, goal="top 5 products by quantity")
    first = max(d.widgets, key=lambda w: w.score)
    assert first.title == "Top 5 products by total quantity of order items"
    columns, rows = await check_widget(demo, first)
    _, expected = await fetch(
        demo,
        """select p.name || ' #' || p.id, sum(oi.quantity) from shop.order_items oi
           join shop.products p on p.id = oi.product_id group by p.id, 1 order by 2 desc, 1 limit 5""",
    )
    assert rows == expected
    d = generate_dashboard(rich, goal="revenue by city")
    assert any("shop.customers.city" in w.columns for w in d.widgets)


def test_tables_filter_and_bad_input(demo: Source) -> None:
    from uds.errors import BadUserInput

    d = generate_dashboard(demo.catalog, goal=None, tables=["payments"])
    assert all('FROM "shop"."payments" AS "t0"' in w.sql for w in d.widgets)
    with pytest.raises(BadUserInput, match="not in the catalog"):
        generate_dashboard(demo.catalog, goal=None, tables=["nope"])
    with pytest.raises(BadUserInput, match="no tables"):
        generate_dashboard(CatalogSnapshot(database="x", server_version="16"), goal="anything")
    with pytest.raises(BadUserInput, match="maxWidgets"):
        generate_dashboard(demo.catalog, goal=None, max_widgets=13)
    empty = CatalogSnapshot(
        "x", "16", tables=[TableSnapshot(schema="s", name="t", kind="table", row_estimate=Figure(0, "exact"))]
    )
    with pytest.raises(BadUserInput, match=r"nothing|no table"):
        generate_dashboard(empty, goal=None)


async def test_grafana_export_runs_on_the_source(demo: Source) -> None:
    """Each panel's SQL, with the time filter expanded the way Grafana does over the
    dashboard's time range, returns what the widget returns, under Grafana's names."""
    for goal in (
        "revenue over time by category",
        None,
        "distribution of order amounts and unit price vs quantity",
    ):
        d = generate_dashboard(demo.catalog, goal=goal, max_widgets=12)
        out = grafana_dashboard(uid="demo", title=d.title, widgets=d.widgets)
        Dashboard.model_validate(out)
        start, end = out["time"]["from"], out["time"]["to"]
        for panel, w in zip(out["panels"], d.widgets, strict=True):
            sql = re.sub(
                r"\$__timeFilter\(([^)]*)\)",
                rf"\1 BETWEEN '{start}' AND '{end}'",
                panel["targets"][0]["rawSql"],
            )
            columns, rows = await fetch(demo, sql)
            _, expected = await fetch(demo, w.sql)
            assert sorted(rows) == sorted(expected), w.title
            if panel["type"] == "timeseries":
                assert columns[0] == "time" and panel["targets"][0]["format"] == "time_series"
                assert columns[1:2] == ["metric"] or len(columns) == 2
            if panel["type"] == "histogram":
                assert columns[:2] == ["xMin", "xMax"]
