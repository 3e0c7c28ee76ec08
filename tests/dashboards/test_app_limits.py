"""Limits: the row limit (truncated), the statement timeout, and the plan's max_dashboards."""

from __future__ import annotations

import uuid

from conftest import make_tenant
from dashboards.app_kit import GENERATE, UPDATE, WIDGET_DATA, World

TABLE_SPEC = {
    "data": {"name": "table"},
    "mark": "text",
    "encoding": {"text": {"field": "n", "type": "quantitative"}},
}


async def edited(world: World, sql: str) -> tuple[str, str]:
    """A dashboard whose first widget now holds `sql`: (dashboard id, widget id)."""
    d = await world.dashboard("how many orders per status", max_widgets=4)
    w = d["widgets"][0]
    data = await world.ok(
        UPDATE, {"input": {"id": d["id"], "widgets": [{"id": w["id"], "sql": sql, "spec": TABLE_SPEC}]}}
    )
    assert data["updateDashboard"]["__typename"] == "Dashboard", data
    return d["id"], w["id"]


async def test_row_limit_truncates(world: World) -> None:
    assert world.server.settings.widget_row_limit == 1_000
    d, w = await edited(world, "SELECT g AS n FROM generate_series(1, 1500) AS g ORDER BY 1")
    data = await world.widget_data(d, w)
    assert data["truncated"] is True and len(data["rows"]) == 1_000
    assert data["rows"][0] == {"n": 1} and data["rows"][-1] == {"n": 1_000}
    d, w = await edited(world, "SELECT g AS n FROM generate_series(1, 1000) AS g ORDER BY 1")
    data = await world.widget_data(d, w)
    assert data["truncated"] is False and len(data["rows"]) == 1_000


async def test_statement_timeout(world: World) -> None:
    assert world.server.settings.widget_statement_timeout_ms == 3_000
    d, w = await edited(
        world,
        'SELECT count(*) AS n FROM "shop"."order_items" AS a, "shop"."order_items" AS b, "shop"."order_items" AS c',
    )
    status, body = await world.gql(WIDGET_DATA, {"d": d, "w": w, "r": True})
    error = body["errors"][0]
    assert error["extensions"]["code"] == "SOURCE_UNAVAILABLE", body
    assert error["extensions"]["reason"] == "timeout"
    assert "statement timeout" in error["message"]


async def test_max_dashboards(world: World) -> None:
    slug = await make_tenant(world.server, members={"editor@d": "EDITOR"})
    await world.server.admin(
        "mutation($s: String!) { admin { setTenantLimits(slug: $s, limits: {maxDashboards: 0}) { __typename } } }",
        {"s": slug},
    )
    full = World(world.server, slug, "", world.params)
    data = await full.ok(GENERATE, {"input": {"dataSourceId": str(uuid.uuid4())}})
    result = data["generateDashboard"]
    assert result["__typename"] == "NotAllowed", result
    assert any("max_dashboards" in r for r in result["reasons"]), result
