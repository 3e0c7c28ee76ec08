"""The product flow through GraphQL: generateDashboard as a job, dashboard, widgetData."""

from __future__ import annotations

from dashboards.app_kit import World


async def test_generate_then_read_widget_data(world: World) -> None:
    d = await world.dashboard("how many orders per status")
    assert d["goal"] == "how many orders per status"
    assert 4 <= len(d["widgets"]) <= 8
    first = d["widgets"][0]
    assert first["title"] == "Number of orders by status", [w["title"] for w in d["widgets"]]
    data = await world.widget_data(d["id"], first["id"])
    assert data["columns"] == ["status", "count"]
    expected = await world.direct("select status, count(*) from shop.orders group by 1 order by 2 desc, 1")
    assert [(r["status"], r["count"]) for r in data["rows"]] == expected
    assert data["cached"] is False
    again = await world.widget_data(d["id"], first["id"])
    assert again["cached"] is True and again["rows"] == data["rows"]
    assert again["dataKey"] == data["dataKey"]
