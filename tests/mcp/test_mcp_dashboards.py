"""Dashboards through MCP: generate (a long job), read, rows capped, a widget's PNG with
the dashboard's URL, the resources, and tenant B kept out."""

from __future__ import annotations

import base64
import json
from typing import Any

import mcp_kit
import pytest
from mcp_kit import World, http_client
from mcp_types import ImageContent

mcp_settings, mcp_server, mcp_worker, shop_db, world, discovered = (
    mcp_kit.mcp_settings,
    mcp_kit.mcp_server,
    mcp_kit.mcp_worker,
    mcp_kit.shop_db,
    mcp_kit.world,
    mcp_kit.discovered,
)
PNG = b"\x89PNG\r\n\x1a\n"


async def test_generate_a_dashboard_and_look_at_it(world: World, discovered: dict[str, Any]) -> None:
    progress: list[float] = []

    async def on_progress(value: float, total: float | None, message: str | None) -> None:
        progress.append(value)

    async with http_client(world) as client:
        generated = await client.call_tool(
            "generate_dashboard",
            {"data_source_id": world.source_id, "goal": "revenue over time by category", "max_widgets": 4},
            progress_callback=on_progress,
        )
        assert not generated.is_error, generated
        followed = generated.structured_content
        assert followed["job"]["status"] == "SUCCEEDED" and progress[-1] == 1.0, followed
        dashboard_id = followed["job"]["result"]["dashboardId"]
        assert "get_dashboard" in followed["next"]

        dashboard = await client.call_tool("get_dashboard", {"id": dashboard_id})
        assert not dashboard.is_error, dashboard
        board = dashboard.structured_content
        assert board["widgets"] and board["url"]
        widget = (
            next(w for w in board["widgets"] if w["kind"] != "kpi")
            if len(board["widgets"]) > 1
            else board["widgets"][0]
        )

        data = await client.call_tool(
            "get_widget_data", {"dashboard_id": dashboard_id, "widget_id": widget["id"], "max_rows": 1}
        )
        rows = data.structured_content
        assert not data.is_error and rows["rowsReturned"] == len(rows["rows"]) <= 1, rows
        assert rows["rowsCapped"] == (rows["rowsAvailable"] > 1)
        if rows["rowsCapped"]:
            assert "max_rows" in rows["note"]

        image = await client.call_tool(
            "get_widget_image", {"dashboard_id": dashboard_id, "widget_id": widget["id"]}
        )
        assert not image.is_error, image
        pictures = [c for c in image.content if isinstance(c, ImageContent)]
        assert len(pictures) == 1 and pictures[0].mime_type == "image/png"
        assert base64.b64decode(pictures[0].data).startswith(PNG)
        # The same page (each link is signed anew, so only the page's path is compared).
        assert image.structured_content["dashboardUrl"].split("?")[0] == board["url"].split("?")[0]
        assert f"/dashboards/{dashboard_id}" in board["url"]

        as_json = json.loads(
            (await client.read_resource(f"uds://dashboards/{dashboard_id}")).contents[0].text
        )
        assert as_json["id"] == dashboard_id
        picture = (await client.read_resource(f"uds://dashboards/{dashboard_id}.png")).contents[0]
        assert picture.mime_type == "image/png" and base64.b64decode(picture.blob).startswith(PNG)

    async with http_client(world, "bo@b", tenant=world.other) as intruder:
        for name, args in [
            ("get_dashboard", {"id": dashboard_id}),
            ("get_widget_data", {"dashboard_id": dashboard_id, "widget_id": widget["id"]}),
            ("get_widget_image", {"dashboard_id": dashboard_id, "widget_id": widget["id"]}),
        ]:
            result = await intruder.call_tool(name, args)
            assert result.is_error and result.structured_content["error"]["code"] == "NOT_FOUND", (
                name,
                result,
            )
        with pytest.raises(Exception, match="NOT_FOUND"):
            await intruder.read_resource(f"uds://dashboards/{dashboard_id}")
        with pytest.raises(Exception, match="NOT_FOUND"):
            await intruder.read_resource(f"uds://dashboards/{dashboard_id}.png")

    async with http_client(world, "vi@a") as viewer:
        refused = await viewer.call_tool(
            "generate_dashboard", {"data_source_id": world.source_id, "goal": "orders"}
        )
        assert refused.is_error and refused.structured_content["error"]["code"] == "FORBIDDEN"
        assert refused.structured_content["error"]["reasons"]
        assert not (await viewer.call_tool("get_dashboard", {"id": dashboard_id})).is_error  # viewers read
