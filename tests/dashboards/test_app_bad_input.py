"""Bad input, each with a clear answer: no catalog, an empty catalog, a goal that matches
nothing, a source changed or dropped since discovery, hostile widget SQL (refused with
BAD_USER_INPUT, and nothing runs), bad specs and positions."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any

import pytest
from sqlalchemy import text

from conftest import Server
from dashboards.app_kit import DASHBOARD, GENERATE, UPDATE, WIDGET_DATA, World, make_world
from discovery.kit import create_database, drop_database, execute
from uds.datasources.params import ConnectionParams
from uds.tenants.slugs import tenant_schema

SMALL_SQL = """
create schema s;
create table s.orders (id bigint primary key, status text not null, amount numeric(10,2) not null,
                       created_at timestamptz not null);
insert into s.orders
select g, (array['new','paid','shipped','cancelled'])[1 + g % 4], (g % 97) + 0.5,
       timestamptz '2024-01-01' + g * interval '3 hours'
from generate_series(1, 400) g;
analyze s.orders;
"""


@pytest.fixture(scope="module")
async def small(dash_server: Server, dash_admin: ConnectionParams) -> AsyncIterator[World]:
    """A tenant whose one source is a small database of this module (changed, then dropped)."""
    name = f"uds_dash_small_{uuid.uuid4().hex[:8]}"
    await create_database(dash_admin, name)
    params = replace(dash_admin.with_database(name), sslmode="disable")
    try:
        await execute(params, SMALL_SQL)
        yield await make_world(dash_server, params, source_name="small", schemas=["s"])
    finally:
        await drop_database(dash_admin, name)


def error_code(body: dict[str, Any]) -> str:
    assert body.get("errors"), body
    return str(body["errors"][0]["extensions"]["code"])


async def test_no_discovery_yet(dash_server: Server, dash_admin: ConnectionParams) -> None:
    w = await make_world(
        dash_server, replace(dash_admin, database="nowhere"), source_name="fresh", schemas=[], discover=False
    )
    data = await w.ok(GENERATE, {"input": {"dataSourceId": w.source_id, "goal": "orders"}})
    assert data["generateDashboard"] == {
        "__typename": "ValidationError",
        "message": "data source 'fresh' has no catalog yet: run discovery first (startDiscovery)",
    }


async def test_empty_catalog(dash_server: Server, dash_admin: ConnectionParams) -> None:
    name = f"uds_dash_empty_{uuid.uuid4().hex[:8]}"
    await create_database(dash_admin, name)
    params = replace(dash_admin.with_database(name), sslmode="disable")
    try:
        await execute(params, "create schema nothing_here")
        w = await make_world(dash_server, params, source_name="empty", schemas=["nothing_here"])
        data = await w.ok(GENERATE, {"input": {"dataSourceId": w.source_id}})
        result = data["generateDashboard"]
        assert result["__typename"] == "ValidationError"
        assert "is empty (discovery found no tables)" in result["message"]
    finally:
        await drop_database(dash_admin, name)


async def test_bad_generation_input(world: World) -> None:
    for bad, message in (
        ({"maxWidgets": 13}, "maxWidgets must be between 1 and 12"),
        ({"maxWidgets": 0}, "maxWidgets must be between 1 and 12"),
        ({"goal": "x" * 501}, "goal must be at most 500 characters"),
    ):
        data = await world.ok(GENERATE, {"input": {"dataSourceId": world.source_id, **bad}})
        assert data["generateDashboard"] == {"__typename": "ValidationError", "message": message}
    data = await world.ok(GENERATE, {"input": {"dataSourceId": str(uuid.uuid4())}})
    assert data["generateDashboard"]["__typename"] == "NotFound"
    # A table not in the catalog: the job fails and says why.
    job = await world.generate("orders", tables=["no_such_table"])
    assert job["status"] == "FAILED" and "no_such_table" in job["error"], job


async def test_goal_that_matches_nothing(world: World) -> None:
    job = await world.generate("zebra migration")
    assert job["status"] == "SUCCEEDED", job
    assert job["message"].startswith("Nothing in the catalog matches the goal ('zebra', 'migration')"), job
    d = (await world.ok(DASHBOARD, {"id": job["result"]["dashboardId"]}))["dashboard"]
    assert d["message"] == job["message"]
    overview = await world.dashboard(None)
    assert [w["sql"] for w in d["widgets"]] == [w["sql"] for w in overview["widgets"]]


async def test_source_changed_then_dropped(small: World, dash_admin: ConnectionParams) -> None:
    d = await small.dashboard("orders by status")
    by_status = next(
        w for w in d["widgets"] if "s.orders.status" in w["sourceColumns"] and w["kind"] != "kpi"
    )
    other = next(w for w in d["widgets"] if "s.orders.status" not in w["sourceColumns"])
    assert (await small.widget_data(d["id"], by_status["id"]))["rows"]
    await execute(small.params, "alter table s.orders drop column status")
    status, body = await small.gql(WIDGET_DATA, {"d": d["id"], "w": by_status["id"], "r": True})
    assert error_code(body) == "SOURCE_CHANGED", body
    assert "column t0.status does not exist" in body["errors"][0]["message"]
    # Widgets that do not read the dropped column still work, from the same pool.
    assert (await small.widget_data(d["id"], other["id"], refresh=True))["rows"]
    await drop_database(dash_admin, small.params.database)
    status, body = await small.gql(WIDGET_DATA, {"d": d["id"], "w": other["id"], "r": True})
    assert error_code(body) == "SOURCE_UNAVAILABLE", body
    assert body["errors"][0]["extensions"]["reason"] == "unreachable"
    assert "does not exist" in body["errors"][0]["message"]


async def test_hostile_widget_sql_is_refused_and_nothing_runs(world: World, dash_server: Server) -> None:
    d = await world.dashboard("how many orders per status")
    w = d["widgets"][0]
    other = await make_world_slug(dash_server)
    orders = (await world.direct("select count(*) from shop.orders"))[0][0]
    hostile = {
        "a write": "DELETE FROM shop.orders",
        "a write in a WITH": "WITH x AS (DELETE FROM shop.orders RETURNING 1) SELECT count(*) FROM x",
        "two statements": 'SELECT 1 FROM "shop"."orders" LIMIT 1; DELETE FROM shop.orders',
        "pg_sleep": 'SELECT pg_sleep(30), count(*) FROM "shop"."orders"',
        "COPY": "COPY shop.orders TO '/tmp/uds-orders.csv'",
        "another tenant's schema": f'SELECT count(*) FROM "{tenant_schema(other)}"."dashboards"',
        "the platform's schema": "SELECT slug, count(*) FROM uds.tenants GROUP BY 1",
        "the catalog": "SELECT relname FROM pg_catalog.pg_class",
        "set_config": "SELECT set_config('statement_timeout', '0', false)",
    }
    for what, sql in hostile.items():
        data = await world.ok(UPDATE, {"input": {"id": d["id"], "widgets": [{"id": w["id"], "sql": sql}]}})
        assert data["updateDashboard"]["__typename"] == "ValidationError", (what, data)
        assert data["updateDashboard"]["code"] == "BAD_USER_INPUT", (what, data)
        assert "widget SQL" in data["updateDashboard"]["message"], (what, data)
    after = (await world.ok(DASHBOARD, {"id": d["id"]}))["dashboard"]
    assert after["version"] == d["version"] and after["widgets"][0]["sql"] == w["sql"]
    # Written straight into the table (bypassing updateDashboard), it is refused before
    # anything is sent to the source: BAD_USER_INPUT at once, not a timeout, not a write.
    for what, sql in hostile.items():
        async with dash_server.services.engine.begin() as conn:
            await conn.execute(
                text(
                    f'update "{tenant_schema(world.slug)}".widgets set sql = :sql, version = version + 1 where id = :id'
                ),
                {"sql": sql, "id": w["id"]},
            )
        status, body = await world.gql(WIDGET_DATA, {"d": d["id"], "w": w["id"], "r": True})
        assert error_code(body) == "BAD_USER_INPUT", (what, body)
    assert (await world.direct("select count(*) from shop.orders"))[0][0] == orders


async def make_world_slug(server: Server) -> str:
    from conftest import make_tenant

    return await make_tenant(server)


async def test_bad_edits(world: World) -> None:
    d = await world.dashboard("payment methods")
    w = d["widgets"][0]
    cases = [
        (
            {
                "widgets": [
                    {"id": w["id"], "spec": {"mark": "bar", "data": {"url": "http://example.com/x.csv"}}}
                ]
            },
            "would load or link to a URL",
        ),
        ({"widgets": [{"id": w["id"], "spec": {"mark": "nonsense"}}]}, "not valid Vega-Lite"),
        ({"widgets": [{"id": w["id"], "position": {"x": 8, "y": 0, "w": 6, "h": 4}}]}, "12-column grid"),
        ({"widgets": [{"id": w["id"], "position": {"x": 0, "y": 0, "w": 6, "h": 0}}]}, "h between 1 and"),
        ({"widgets": [{"title": "new", "sql": 'SELECT 1 AS "x"'}]}, "a new widget needs sql and spec"),
        ({"widgets": [{"id": w["id"], "title": ""}]}, "title must be"),
        ({"title": "  "}, "title must be"),
    ]
    for change, message in cases:
        data = await world.ok(UPDATE, {"input": {"id": d["id"], **change}})
        result = data["updateDashboard"]
        assert result["__typename"] == "ValidationError" and message in result["message"], (change, result)
    missing = str(uuid.uuid4())
    for change in ({"widgets": [{"id": missing, "title": "x"}]}, {"removeWidgetIds": [missing]}):
        data = await world.ok(UPDATE, {"input": {"id": d["id"], **change}})
        assert data["updateDashboard"]["__typename"] == "NotFound", data
    after = (await world.ok(DASHBOARD, {"id": d["id"]}))["dashboard"]
    assert after["version"] == d["version"] == 1
