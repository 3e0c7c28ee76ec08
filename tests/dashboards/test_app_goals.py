"""Goals through the whole stack: generateDashboard (a job), dashboard, widgetData, each
checked against independent SQL on the source; every widget's rules; PII; determinism.

Two sources: the demo shop, and a SaaS billing database of our own (engine_kit.SAAS_SQL).
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import AsyncIterator
from dataclasses import replace
from decimal import Decimal
from typing import Any

import pytest

from conftest import Server
from dashboards.app_kit import World, make_world
from dashboards.engine_kit import CARD, EMAIL, PHONE, SAAS_SQL, Source, encoding_fields, pii_shown
from discovery.kit import create_database, drop_database, execute
from uds.dashboards.candidates import MAX_SERIES
from uds.dashboards.sqlcheck import check_widget_sql
from uds.dashboards.vegalite import json_value, validate_spec
from uds.datasources.params import ConnectionParams
from uds.db import transaction
from uds.discovery import service as discovery

GOALS = [
    "revenue over time by category",
    "top customers by spend",
    "payment methods",
    "how many orders per status",
]


@pytest.fixture(scope="module")
async def made(world: World) -> dict[str | None, dict[str, Any]]:
    """One dashboard per goal (and the overview), generated once for this module."""
    return {goal: await world.dashboard(goal) for goal in [*GOALS, None]}


async def stored_catalog(world: World) -> Source:
    """The catalog discovery stored for the world's source (for the PII checks)."""
    async with transaction(world.server.services.engine, world.slug) as tx:
        found = await discovery.latest_catalog(await tx.tenant(), data_source_id=uuid.UUID(world.source_id))
    assert found is not None
    return Source(world.params, found.snapshot, frozenset(t.schema for t in found.snapshot.tables), None)  # type: ignore[arg-type]


def first_chart(d: dict[str, Any]) -> dict[str, Any]:
    return next(w for w in d["widgets"] if w["kind"] != "kpi")


def find(d: dict[str, Any], *, kind: str, reads: set[str]) -> dict[str, Any]:
    for w in d["widgets"]:
        if w["kind"] == kind and reads <= set(w["sourceColumns"]):
            return w
    raise AssertionError(
        f"no {kind} widget reading {reads}: {[(w['kind'], w['title']) for w in d['widgets']]}"
    )


def as_json(rows: list[tuple[Any, ...]]) -> list[list[Any]]:
    return [[json_value(v) for v in r] for r in rows]


def table(data: dict[str, Any]) -> list[list[Any]]:
    return [[row[c] for c in data["columns"]] for row in data["rows"]]


async def test_revenue_over_time_by_category(world: World, made: dict[str | None, dict[str, Any]]) -> None:
    d = made["revenue over time by category"]
    top = first_chart(d)
    assert top["kind"] == "timeseries"
    assert {"shop.order_items.unit_price", "shop.orders.created_at", "shop.categories.name"} <= set(
        top["sourceColumns"]
    )
    assert "products.category_id -> categories.id (declared)" in top["reason"]
    data = await world.widget_data(d["id"], top["id"])
    assert data["columns"] == ["time", "category", "sum_unit_price_x_quantity"]
    expected = await world.direct(
        """select date_trunc('month', o.created_at), c.name, sum(oi.unit_price * oi.quantity)
           from shop.order_items oi join shop.orders o on o.id = oi.order_id
           join shop.products p on p.id = oi.product_id join shop.categories c on c.id = p.category_id
           group by 1, 2"""
    )
    totals: dict[str, Decimal] = defaultdict(Decimal)
    for _, name, value in expected:
        totals[name] += value
    keep = set(sorted(totals, key=lambda n: (-totals[n], n))[:MAX_SERIES])
    folded: dict[tuple[Any, str], Decimal] = defaultdict(Decimal)
    for month, name, value in expected:
        folded[(json_value(month), name if name in keep else "(other)")] += value
    got = {(r[0], r[1]): r[2] for r in table(data)}
    assert got.keys() == folded.keys()
    assert all(abs(got[k] - float(v)) < 0.005 for k, v in folded.items())
    assert data["insights"] and data["spec"]["data"]["values"] == data["rows"]


async def test_top_customers_by_spend(world: World, made: dict[str | None, dict[str, Any]]) -> None:
    d = made["top customers by spend"]
    top = d["widgets"][0]
    assert top["kind"] == "bar" and top["title"].startswith("Top 10 customers by"), top["title"]
    data = await world.widget_data(d["id"], top["id"])
    expected = await world.direct(
        "select customer_id::text, sum(total_amount) from shop.orders group by 1 order by 2 desc, 1 limit 10"
    )
    assert table(data) == as_json(expected)


async def test_payment_methods(world: World, made: dict[str | None, dict[str, Any]]) -> None:
    d = made["payment methods"]
    first = d["widgets"][0]
    assert first["kind"] in ("bar", "pie") and "shop.payments.method" in first["sourceColumns"]
    data = await world.widget_data(d["id"], first["id"])
    expected = await world.direct("select method, count(*) from shop.payments group by 1 order by 2 desc, 1")
    assert table(data) == as_json(expected)
    split = find(d, kind="timeseries", reads={"shop.payments.method", "shop.payments.paid_at"})
    data = await world.widget_data(d["id"], split["id"])
    grain = split["spec"]["usermeta"]["uds"]["grain"]
    expected = await world.direct(
        f"select date_trunc('{grain}', paid_at), method, count(*) from shop.payments group by 1, 2"
    )
    assert {(r[0], r[1]): r[2] for r in table(data)} == {(json_value(t), m): n for t, m, n in expected}


async def test_how_many_orders_per_status(world: World, made: dict[str | None, dict[str, Any]]) -> None:
    d = made["how many orders per status"]
    first = d["widgets"][0]
    assert first["kind"] == "bar" and first["title"] == "Number of orders by status"
    data = await world.widget_data(d["id"], first["id"])
    expected = await world.direct("select status, count(*) from shop.orders group by 1 order by 2 desc, 1")
    assert data["columns"] == ["status", "count"] and table(data) == as_json(expected)


async def check_every_widget(world: World, dashboards: list[dict[str, Any]], source: Source) -> None:
    """SQL passes the checker and returns rows; the spec is valid Vega-Lite (with and
    without data) and reads only result columns; no PII grouped, labelled or shown."""
    for d in dashboards:
        assert 4 <= len(d["widgets"]) <= 8, d["title"]
        for w in d["widgets"]:
            check_widget_sql(w["sql"], allowed_schemas=source.schemas)
            validate_spec(w["spec"])
            data = await world.widget_data(d["id"], w["id"], refresh=True)
            assert data["rows"], (w["title"], w["sql"])
            assert data["cached"] is False
            validate_spec(data["spec"])
            assert encoding_fields(w["spec"]) <= set(data["columns"]), w["title"]
            assert not pii_shown(source, w["sql"]), (w["title"], pii_shown(source, w["sql"]))
            for row in data["rows"]:
                for value in row.values():
                    if isinstance(value, str):
                        assert not EMAIL.search(value) and not PHONE.match(value) and not CARD.match(value), (
                            w["title"],
                            value,
                        )


async def test_every_widget_on_the_demo(world: World, made: dict[str | None, dict[str, Any]]) -> None:
    pii = [await world.dashboard(g) for g in ("orders by customer email", "top customers by first name")]
    await check_every_widget(world, [*made.values(), *pii], await stored_catalog(world))


@pytest.fixture(scope="module")
async def billing(dash_server: Server, dash_admin: ConnectionParams) -> AsyncIterator[World]:
    name = f"uds_dash_saas_{uuid.uuid4().hex[:8]}"
    await create_database(dash_admin, name)
    params = replace(dash_admin.with_database(name), sslmode="disable")
    try:
        await execute(params, SAAS_SQL)
        yield await make_world(dash_server, params, source_name="billing", schemas=["billing"])
    finally:
        await drop_database(dash_admin, name)


async def test_every_widget_on_a_billing_database(billing: World) -> None:
    made = [
        await billing.dashboard(g) for g in (None, "monthly revenue by plan", "accounts by contact email")
    ]
    assert any("billing.invoices" in c for w in made[1]["widgets"] for c in w["sourceColumns"])
    await check_every_widget(billing, made, await stored_catalog(billing))


async def test_generating_twice_gives_identical_widgets(
    world: World, made: dict[str | None, dict[str, Any]]
) -> None:
    again = await world.dashboard("revenue over time by category")
    first = made["revenue over time by category"]
    assert again["id"] != first["id"]

    def content(d: dict[str, Any]) -> list[dict[str, Any]]:
        return [{k: v for k, v in w.items() if k not in ("id", "insights")} for w in d["widgets"]]

    assert content(again) == content(first)
    assert (again["title"], again["message"]) == (first["title"], first["message"])
