"""`uds mcp --transport stdio` as a subprocess, driven by the SDK's client: the same tools,
as a GraphQL-over-HTTP and graphql-transport-ws client of a running UDS."""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
from typing import Any

import mcp_kit
from mcp_kit import ROOT, World, stdio_params

from mcp import Client

mcp_settings, mcp_server, mcp_worker, shop_db, world = (
    mcp_kit.mcp_settings,
    mcp_kit.mcp_server,
    mcp_kit.mcp_worker,
    mcp_kit.shop_db,
    mcp_kit.world,
)


async def test_stdio_serves_the_same_tools_with_progress_and_rights(world: World) -> None:
    seen: list[float] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        seen.append(progress)

    async with Client(stdio_params(world)) as client:
        tools = {t.name for t in (await client.list_tools()).tools}
        assert {"start_discovery", "get_catalog", "get_job"} <= tools
        listed = await client.call_tool("list_data_sources", {})
        assert [s["id"] for s in listed.structured_content["dataSources"]][:1] == [world.source_id]
        result = await client.call_tool(
            "start_discovery", {"data_source_id": world.source_id}, progress_callback=on_progress
        )
        assert not result.is_error, result
        assert result.structured_content["job"]["status"] == "SUCCEEDED"
        assert seen and seen[-1] == 1.0 and all(b > a for a, b in itertools.pairwise(seen)), seen
        page = await client.call_tool("get_catalog", {"data_source_id": world.source_id, "max_chars": 2000})
        assert not page.is_error and page.structured_content["tables"]
        unknown = await client.call_tool("no_such_tool", {})
        assert unknown.is_error
    async with Client(stdio_params(world, "vi@a")) as viewer:
        refused = await viewer.call_tool("start_discovery", {"data_source_id": world.source_id})
        error: dict[str, Any] = refused.structured_content["error"]
        assert refused.is_error and error["code"] == "FORBIDDEN" and error["reasons"], refused


def test_stdio_without_a_token_says_what_is_missing(world: World) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("UDS_")}
    env.update(UDS_URL=world.server.url, UDS_TENANT=world.slug)
    done = subprocess.run(
        [sys.executable, "-m", "uds.cli", "mcp", "--transport", "stdio"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )
    assert done.returncode == 1 and "UDS_TOKEN" in done.stderr, done
    assert done.stdout == ""  # stdout is for MCP messages only
