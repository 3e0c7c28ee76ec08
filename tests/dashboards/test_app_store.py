"""Dashboards are data: list, read, edit (versions), delete; who may do what; tenants apart;
the widget data cache; audit and domain events; Grafana export and the page URL."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import text

from conftest import make_tenant
from dashboards.app_kit import DASHBOARD, DELETE, DISCOVER, GENERATE, UPDATE, WIDGET_DATA, World, wait_job
from uds.dashboards.grafana_model import Dashboard as GrafanaDashboard
from uds.tenants.slugs import tenant_schema

LIST = """
query($first: Int, $after: String) { dashboards(first: $first, after: $after) {
  edges { cursor node { id title version widgets { id } } } pageInfo { hasNextPage endCursor } } }"""
AUDIT = "{ auditLog(first: 100) { edges { node { actor action target allowed } } } }"
GRAFANA = "query($id: ID!) { dashboard(id: $id) { grafanaJson } }"


def code(body: dict[str, Any]) -> str:
    assert body.get("errors"), body
    return str(body["errors"][0]["extensions"]["code"])


async def test_edit_widgets_and_title(world: World) -> None:
    d = await world.dashboard("how many orders per status")
    first, second = d["widgets"][0], d["widgets"][1]
    before = await world.widget_data(d["id"], first["id"])
    assert before["cached"] is False
    sql = (
        'SELECT "t0"."status" AS "status", sum("t0"."total_amount") AS "total" FROM "shop"."orders" AS "t0" '
        "GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT 10"
    )
    spec = {
        "$schema": "https://vega.github.io/schema/vega-lite/v6.json",
        "data": {"name": "table"},
        "mark": "bar",
        "encoding": {
            "x": {"field": "total", "type": "quantitative"},
            "y": {"field": "status", "type": "nominal", "sort": "-x"},
        },
    }
    data = await world.ok(
        UPDATE,
        {
            "input": {
                "id": d["id"],
                "title": "Orders, edited",
                "widgets": [
                    {"id": first["id"], "sql": sql, "spec": spec, "title": "Total by status"},
                    {"id": second["id"], "position": {"x": 0, "y": 20, "w": 12, "h": 3}},
                    {
                        "title": "Payments by method",
                        "sql": 'SELECT "p"."method" AS "method", count(*) AS "count" '
                        'FROM "shop"."payments" AS "p" GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT 10',
                        "spec": spec,
                    },
                ],
                "removeWidgetIds": [d["widgets"][2]["id"]],
            }
        },
    )
    out = data["updateDashboard"]
    assert out["__typename"] == "Dashboard", out
    assert out["title"] == "Orders, edited" and out["version"] == 2
    widgets = {w["id"]: w for w in out["widgets"]}
    assert len(widgets) == len(d["widgets"])  # one removed, one added
    assert d["widgets"][2]["id"] not in widgets
    edited = widgets[first["id"]]
    assert edited["version"] == 2 and edited["title"] == "Total by status" and edited["kind"] == "bar"
    assert edited["sql"] == sql  # stored as written (what runs is checked again, and printed back)
    assert widgets[second["id"]]["position"] == {"x": 0, "y": 20, "w": 12, "h": 3}
    added = next(w for w in out["widgets"] if w["title"] == "Payments by method")
    assert added["version"] == 1
    # The edited widget's data is fetched anew (its version is part of the cache key).
    after = await world.widget_data(d["id"], first["id"])
    assert after["cached"] is False and after["columns"] == ["status", "total"]
    expected = await world.direct(
        "select status, sum(total_amount) from shop.orders group by 1 order by 2 desc, 1 limit 10"
    )
    assert [(r["status"], r["total"]) for r in after["rows"]] == [(s, float(t)) for s, t in expected]
    payments = await world.widget_data(d["id"], added["id"])
    assert payments["columns"] == ["method", "count"] and payments["rows"]
    # No change, no new version.
    data = await world.ok(UPDATE, {"input": {"id": d["id"], "title": "Orders, edited"}})
    assert data["updateDashboard"]["version"] == 2
    # Audited, and announced as a domain event.
    entries = (await world.ok(AUDIT, sub="admin@d"))["auditLog"]["edges"]
    assert {
        "actor": "editor@d",
        "action": "dashboard.update",
        "target": f"id={d['id']}",
        "allowed": True,
    } in [e["node"] for e in entries]
    assert await event_seen(world, "dashboard.updated", f"dashboard/{d['id']}", {"version": 2})


async def event_seen(world: World, type_: str, subject: str, data: dict[str, Any]) -> bool:
    """The domain event is in the outbox (tests do not relay it to the stream)."""
    async with world.server.services.engine.connect() as conn:
        rows = (
            await conn.execute(
                text("select data from uds.event_outbox where type = :t and subject = :s and tenant = :slug"),
                {"t": type_, "s": subject, "slug": world.slug},
            )
        ).all()
    assert len(rows) == 1, rows
    assert rows[0][0]["actor"] == "editor@d"
    return all(rows[0][0][k] == v for k, v in data.items())


async def test_list_page_and_delete(world: World) -> None:
    made = [await world.dashboard(g, max_widgets=4) for g in ("payment methods", "orders by country")]
    data = await world.ok(LIST, {"first": 1})
    page = data["dashboards"]
    assert page["pageInfo"]["hasNextPage"] and page["edges"][0]["node"]["id"] == made[1]["id"]  # newest first
    data = await world.ok(LIST, {"first": 1, "after": page["pageInfo"]["endCursor"]})
    assert data["dashboards"]["edges"][0]["node"]["id"] == made[0]["id"]
    status, body = await world.gql(LIST, {"first": 1, "after": "bogus"})
    assert code(body) == "BAD_USER_INPUT"
    gone = made[0]["id"]
    data = await world.ok(DELETE, {"id": gone})
    assert data["deleteDashboard"] == {"__typename": "DashboardDeleted", "id": gone}
    assert (await world.ok(DASHBOARD, {"id": gone}))["dashboard"] is None
    status, body = await world.gql(WIDGET_DATA, {"d": gone, "w": made[0]["widgets"][0]["id"]})
    assert code(body) == "NOT_FOUND"
    data = await world.ok(DELETE, {"id": gone})
    assert data["deleteDashboard"]["__typename"] == "NotFound"
    async with world.server.services.engine.connect() as conn:
        left = await conn.scalar(
            text(f'select count(*) from "{tenant_schema(world.slug)}".widgets where dashboard_id = :d'),
            {"d": gone},
        )
    assert left == 0  # its widgets went with it
    entries = (await world.ok(AUDIT, sub="admin@d"))["auditLog"]["edges"]
    actions = [(e["node"]["action"], e["node"]["target"]) for e in entries]
    assert ("dashboard.delete", f"id={gone}") in actions
    assert any(a == "dashboard.generate" for a, _ in actions)


async def test_viewer_reads_but_does_not_write(world: World) -> None:
    d = await world.dashboard("payment methods", max_widgets=4)
    w = d["widgets"][0]
    assert (await world.ok(DASHBOARD, {"id": d["id"]}, sub="viewer@d"))["dashboard"]["id"] == d["id"]
    assert (await world.ok(WIDGET_DATA, {"d": d["id"], "w": w["id"]}, sub="viewer@d"))["widgetData"]["rows"]
    assert (await world.ok(LIST, {"first": 5}, sub="viewer@d"))["dashboards"]["edges"]
    for query, variables in (
        (UPDATE, {"input": {"id": d["id"], "title": "mine"}}),
        (DELETE, {"id": d["id"]}),
        (GENERATE, {"input": {"dataSourceId": world.source_id}}),
    ):
        data = await world.ok(query, variables, sub="viewer@d")
        result = next(iter(data.values()))
        assert (
            result["__typename"] == "NotAllowed" and "role EDITOR or higher required" in result["reasons"]
        ), result
    assert (await world.ok(DASHBOARD, {"id": d["id"]}))["dashboard"]["version"] == 1


async def test_tenants_do_not_see_each_others_dashboards(world: World) -> None:
    d = await world.dashboard("payment methods", max_widgets=4)
    other = await make_tenant(world.server, members={"editor@d": "ADMIN"})
    stranger = World(world.server, other, "", world.params)
    assert (await stranger.ok(DASHBOARD, {"id": d["id"]}))["dashboard"] is None
    assert (await stranger.ok(LIST, {"first": 50}))["dashboards"]["edges"] == []
    status, body = await stranger.gql(WIDGET_DATA, {"d": d["id"], "w": d["widgets"][0]["id"]})
    assert code(body) == "NOT_FOUND"
    for query, variables in ((UPDATE, {"input": {"id": d["id"], "title": "x"}}), (DELETE, {"id": d["id"]})):
        data = await stranger.ok(query, variables)
        assert next(iter(data.values()))["__typename"] == "NotFound"
    # Nor with its own data source id put in.
    data = await stranger.ok(GENERATE, {"input": {"dataSourceId": world.source_id}})
    assert data["generateDashboard"]["__typename"] == "NotFound"
    # A stranger to both tenants is refused outright.
    status, body = await world.gql(DASHBOARD, {"id": d["id"]}, sub="nobody@d")
    assert code(body) == "FORBIDDEN"


async def test_cache_hit_then_miss_on_a_new_source_version(world: World) -> None:
    d = await world.dashboard("payment methods", max_widgets=4)
    w = d["widgets"][0]
    first = await world.widget_data(d["id"], w["id"])
    second = await world.widget_data(d["id"], w["id"])
    assert (first["cached"], second["cached"]) == (False, True)
    assert second["rows"] == first["rows"] and second["insights"] == first["insights"]
    refreshed = await world.widget_data(d["id"], w["id"], refresh=True)
    assert refreshed["cached"] is False
    # Insights were computed on the first fetch and stored with the widget.
    stored = (await world.ok(DASHBOARD, {"id": d["id"]}))["dashboard"]["widgets"][0]["insights"]
    assert stored == first["insights"] and stored
    # The data source's connection changed: its version goes up, the cache misses.
    async with world.server.services.engine.begin() as conn:
        await conn.execute(
            text(
                f'update "{tenant_schema(world.slug)}".data_sources set version = version + 1 where id = :id'
            ),
            {"id": world.source_id},
        )
    assert (await world.widget_data(d["id"], w["id"]))["cached"] is False
    assert (await world.widget_data(d["id"], w["id"]))["cached"] is True
    # A new discovery of the source misses too.
    job = await wait_job(world, (await world.ok(DISCOVER, {"id": world.source_id}))["startDiscovery"]["id"])
    assert job["status"] == "SUCCEEDED"
    assert (await world.widget_data(d["id"], w["id"]))["cached"] is False


async def test_grafana_export_and_url(world: World) -> None:
    d = await world.dashboard("revenue over time by category", max_widgets=6)
    # The page link is signed for the caller; a browser opens it without headers.
    assert d["url"].startswith(f"/dashboards/{d['id']}?sig=")
    page = await world.server.http.get(world.server.url + d["url"])
    assert page.status_code == 200 and d["title"] in page.text
    assert (await world.server.http.get(f"{world.server.url}/dashboards/{d['id']}")).status_code == 401
    # The free plan has no grafana_export: refused with the policy's reason.
    status, body = await world.gql(GRAFANA, {"id": d["id"]})
    assert code(body) == "FORBIDDEN", body
    await world.server.admin(
        "mutation($s: String!) { admin { setTenantLimits(slug: $s, limits: "
        '{features: ["discovery", "dashboards", "grafana_export"]}) { __typename } } }',
        {"s": world.slug},
    )
    model = (await world.ok(GRAFANA, {"id": d["id"]}, sub="viewer@d"))["dashboard"]["grafanaJson"]
    GrafanaDashboard.model_validate(model)
    assert model["title"] == d["title"] and len(model["panels"]) == len(d["widgets"])
    for panel, widget in zip(model["panels"], d["widgets"], strict=True):
        assert panel["title"] == widget["title"]
        assert panel["gridPos"]["w"] == widget["position"]["w"] * 2
        assert panel["targets"][0]["rawSql"]
    assert {p["type"] for p in model["panels"]} >= {"timeseries"}


async def test_unknown_ids(world: World) -> None:
    assert (await world.ok(DASHBOARD, {"id": "not-a-uuid"}))["dashboard"] is None
    assert (await world.ok(DASHBOARD, {"id": str(uuid.uuid4())}))["dashboard"] is None
    d = await world.dashboard("payment methods", max_widgets=4)
    status, body = await world.gql(WIDGET_DATA, {"d": d["id"], "w": str(uuid.uuid4())})
    assert code(body) == "NOT_FOUND" and "no such widget" in body["errors"][0]["message"]
