"""The MCP bridge on streamable HTTP (POST /mcp) against a live UDS, with the SDK's client."""

from __future__ import annotations

import json

import mcp_kit
from mcp_kit import World, http_client

# The session's fixtures (tests/mcp has no conftest of its own: a package named `mcp`
# would shadow the SDK).
mcp_settings, mcp_server, mcp_worker, shop_db, world = (
    mcp_kit.mcp_settings,
    mcp_kit.mcp_server,
    mcp_kit.mcp_worker,
    mcp_kit.shop_db,
    mcp_kit.world,
)

TOOL_NAMES = {
    "list_data_sources",
    "register_data_source",
    "test_data_source",
    "start_discovery",
    "get_catalog",
    "get_table",
    "catalog_diff",
    "get_job",
    "cancel_job",
}


async def test_list_tools_have_titles_schemas_and_annotations(world: World) -> None:
    async with http_client(world) as client:
        tools = {t.name: t for t in (await client.list_tools()).tools}
    assert TOOL_NAMES <= set(tools)
    for tool in tools.values():
        assert tool.title and tool.description and tool.input_schema["type"] == "object"
        assert tool.output_schema and tool.annotations is not None
    assert tools["get_catalog"].annotations.read_only_hint is True
    assert tools["cancel_job"].annotations.destructive_hint is True
    assert tools["start_discovery"].annotations.read_only_hint is False
    assert tools["start_discovery"].annotations.destructive_hint is False


async def test_smoke_list_sources(world: World) -> None:
    async with http_client(world) as client:
        result = await client.call_tool("list_data_sources", {})
    assert not result.is_error, result
    ids = [s["id"] for s in result.structured_content["dataSources"]]
    assert ids == [world.source_id]
    assert json.loads(result.content[0].text) == result.structured_content
