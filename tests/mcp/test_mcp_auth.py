"""POST /mcp as an OAuth resource server: 401 with resource metadata for bad, expired or
wrong-audience tokens, RFC 9728 metadata, Host checks, and no token passed onward."""

from __future__ import annotations

import time

import httpx
import httpx2
import mcp_kit
import pytest
from mcp.client.streamable_http import streamable_http_client
from mcp_kit import Recorder, World, http_client

from mcp import Client

mcp_settings, mcp_server, mcp_worker, shop_db, world, recorder, closing_source = (
    mcp_kit.mcp_settings,
    mcp_kit.mcp_server,
    mcp_kit.mcp_worker,
    mcp_kit.shop_db,
    mcp_kit.world,
    mcp_kit.recorder,
    mcp_kit.closing_source,
)

LIST = {"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {}}
ACCEPT = {"accept": "application/json, text/event-stream", "content-type": "application/json"}


def bad_tokens(world: World) -> dict[str, str]:
    key, settings = world.server.key, world.server.settings
    return {
        "garbage": "not-a-jwt",
        "expired": key.issue(
            "ed@a", issuer=settings.own_issuer, audience=settings.audience, ttl=60, now=time.time() - 600
        ),
        "wrong audience": key.issue("ed@a", issuer=settings.own_issuer, audience="some-other-api", ttl=600),
        "wrong issuer": key.issue("ed@a", issuer="someone-else", audience=settings.audience, ttl=600),
    }


async def test_missing_or_bad_tokens_get_401_with_resource_metadata(world: World) -> None:
    async with httpx.AsyncClient() as http:
        cases = {"missing": None, **bad_tokens(world)}
        for case, token in cases.items():
            headers = {**ACCEPT, "x-tenant-id": world.slug}
            if token is not None:
                headers["authorization"] = f"Bearer {token}"
            response = await http.post(world.mcp_url, json=LIST, headers=headers)
            assert response.status_code == 401, (case, response.text)
            challenge = response.headers["www-authenticate"]
            assert challenge.startswith("Bearer ") and 'error="invalid_token"' in challenge, case
            metadata_url = challenge.split('resource_metadata="')[1].split('"')[0]
            assert metadata_url == f"{world.server.url}/.well-known/oauth-protected-resource/mcp"
        metadata = (await http.get(metadata_url)).json()
        assert metadata["resource"] == world.mcp_url
        assert metadata["authorization_servers"] and metadata["bearer_methods_supported"] == ["header"]
        # A good token reaches the MCP transport (which wants an initialize first: no session).
        good = {**ACCEPT, "x-tenant-id": world.slug, "authorization": f"Bearer {world.token('ed@a')}"}
        reached = await http.post(world.mcp_url, json=LIST, headers=good)
        assert reached.status_code == 400 and "session" in reached.text.lower(), reached.text
        # Host names not allowed are refused (DNS rebinding).
        rebound = await http.post(world.mcp_url, json=LIST, headers={**good, "host": "evil.example"})
        assert rebound.status_code in (400, 403, 421), rebound.status_code
        # Without a tenant (header or tenant-bound token): TENANT_REQUIRED.
        no_tenant = {k: v for k, v in good.items() if k != "x-tenant-id"}
        response = await http.post(world.mcp_url, json=LIST, headers=no_tenant)
        assert (
            response.status_code == 400
            and response.json()["errors"][0]["extensions"]["code"] == "TENANT_REQUIRED"
        )


async def test_a_tenant_bound_service_token_needs_no_header(world: World) -> None:
    data = await world.server.admin(
        'mutation($s: String!) { admin { createServiceClient(slug: $s, name: "bot", role: VIEWER) {'
        " __typename ... on ServiceClient { clientId clientSecret } } } }",
        {"s": world.other},
    )
    made = data["admin"]["createServiceClient"]
    async with httpx.AsyncClient() as http:
        answer = await http.post(
            f"{world.server.url}/oauth/token",
            data={"grant_type": "client_credentials"},
            auth=(made["clientId"], made["clientSecret"]),
        )
        token = answer.json()["access_token"]
        # Bound to tenant B by its claim: naming tenant A is refused...
        headers = {**ACCEPT, "authorization": f"Bearer {token}", "x-tenant-id": world.slug}
        assert (await http.post(world.mcp_url, json=LIST, headers=headers)).status_code == 403
    # ... and without a header it works in B.
    async with (
        httpx2.AsyncClient(headers={"authorization": f"Bearer {token}"}) as http2,
        Client(streamable_http_client(world.mcp_url, http_client=http2)) as client,  # type: ignore[arg-type]
    ):
        listed = await client.call_tool("list_data_sources", {})
        assert [s["id"] for s in listed.structured_content["dataSources"]] == [world.other_source_id]


async def test_no_request_from_the_bridge_carries_the_callers_token(
    world: World, closing_source: str, recorder: Recorder
) -> None:
    token = world.token("ed@a")
    before = recorder.connections
    async with http_client(world) as client:
        result = await client.call_tool("test_data_source", {"id": closing_source})
    assert not result.is_error and result.structured_content["ok"] is False, result
    assert recorder.connections > before and recorder.received  # the bridge's call did go out
    assert token.encode() not in recorder.received
    assert token.split(".")[1].encode() not in recorder.received  # not even the claims part


@pytest.mark.parametrize("mode", ["legacy", "auto"])
async def test_old_and_new_style_clients_are_both_served(world: World, mode: str) -> None:
    async with http_client(world, mode=mode) as client:
        assert (mode == "legacy") == client.protocol_version.startswith("2025"), client.protocol_version
        tools = (await client.list_tools()).tools
        assert any(t.name == "get_catalog" for t in tools)
        result = await client.call_tool("list_data_sources", {})
        assert not result.is_error and result.structured_content["dataSources"]
        if mode == "legacy":  # progress on the 2025 path too (a session's SSE response stream)
            seen: list[float] = []

            async def on_progress(value: float, total: float | None, message: str | None) -> None:
                seen.append(value)

            done = await client.call_tool(
                "start_discovery", {"data_source_id": world.source_id}, progress_callback=on_progress
            )
            assert done.structured_content["job"]["status"] == "SUCCEEDED", done
            assert seen and seen[-1] == 1.0 and seen == sorted(set(seen)), seen
