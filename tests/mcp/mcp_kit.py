"""Fixtures for the MCP tests: a live UDS with a worker, a demo shop database registered
in a tenant, and MCP clients (the SDK's own) on streamable HTTP and stdio."""

from __future__ import annotations

import asyncio
import contextlib
import sys
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import httpx2
import pytest
from mcp.client.streamable_http import streamable_http_client

from conftest import Server, make_tenant, start_server
from discovery.kit import drop_database
from mcp import Client, StdioServerParameters
from uds.datasources.params import ConnectionParams, params_from_url
from uds.demo import build_demo_database
from uds.settings import Settings
from uds.workers.settings import make_worker, stop_worker

ROOT = Path(__file__).resolve().parents[2]
WAIT = 1.0  # the bounded wait of long-job calls without a progress token, in these tests

REGISTER = """
mutation($input: DataSourceInput!) { registerDataSource(input: $input) {
  __typename ... on DataSource { id } ... on ValidationError { message } ... on NotAllowed { message } } }"""


@dataclass
class World:
    server: Server
    slug: str  # tenant A: ed@a EDITOR, vi@a VIEWER
    other: str  # tenant B: bo@b EDITOR
    source_id: str  # the demo shop, registered in A
    other_source_id: str  # the same database, registered in B
    shop: ConnectionParams

    def token(self, sub: str, **kw: Any) -> str:
        return self.server.token(sub, **kw)

    @property
    def mcp_url(self) -> str:
        return f"{self.server.url}/mcp"


@pytest.fixture(scope="session")
def mcp_settings(migrated: Settings) -> Settings:
    return replace(
        migrated,
        redis_prefix=f"uds-test-mcp-{uuid.uuid4().hex[:8]}:",
        job_lease_seconds=3.0,
        mcp_wait_seconds=WAIT,
        mcp_progress_wait_seconds=90.0,
    )


@pytest.fixture(scope="session")
async def mcp_server(mcp_settings: Settings) -> AsyncIterator[Server]:
    async for s in start_server(mcp_settings):
        yield s


@pytest.fixture(scope="session")
async def mcp_worker(mcp_settings: Settings) -> AsyncIterator[None]:
    worker = make_worker(mcp_settings, handle_signals=False)
    task = asyncio.create_task(worker.async_run())
    deadline = time.monotonic() + 10
    while "sweeper" not in worker.ctx:
        if task.done():
            task.result()
        assert time.monotonic() < deadline, "worker did not start"
        await asyncio.sleep(0.02)
    yield
    await stop_worker(worker)
    with contextlib.suppress(asyncio.CancelledError):
        await task


@pytest.fixture(scope="session")
async def shop_db(base_settings: Settings) -> AsyncIterator[ConnectionParams]:
    assert base_settings.database_url
    admin = params_from_url(base_settings.database_url, database="postgres")
    name = f"uds_mcp_shop_{uuid.uuid4().hex[:8]}"
    await build_demo_database(admin, rows=3_000, database=name)
    try:
        yield admin.with_database(name)
    finally:
        await drop_database(admin, name)


def source_input(params: ConnectionParams, name: str = "shop") -> dict[str, Any]:
    return {
        "name": name,
        "host": params.host,
        "port": params.port,
        "database": params.database,
        "user": params.user,
        "password": params.password or "",
        "sslmode": "disable",
        "schemas": ["shop"],
    }


async def register(server: Server, slug: str, sub: str, params: ConnectionParams) -> str:
    status, body = await server.gql(
        REGISTER, {"input": source_input(params)}, token=server.token(sub), tenant=slug
    )
    assert status == 200 and body["data"]["registerDataSource"]["__typename"] == "DataSource", body
    return body["data"]["registerDataSource"]["id"]  # type: ignore[no-any-return]


@pytest.fixture(scope="session")
async def world(mcp_server: Server, mcp_worker: None, shop_db: ConnectionParams) -> World:
    slug = await make_tenant(mcp_server, members={"ed@a": "EDITOR", "vi@a": "VIEWER", "ad@a": "ADMIN"})
    other = await make_tenant(mcp_server, members={"bo@b": "EDITOR"})
    source = await register(mcp_server, slug, "ed@a", shop_db)
    other_source = await register(mcp_server, other, "bo@b", shop_db)
    return World(mcp_server, slug, other, source, other_source, shop_db)


@contextlib.asynccontextmanager
async def http_client(
    world: World, sub: str = "ed@a", *, tenant: str | None = None, mode: str = "auto", **kw: Any
) -> AsyncIterator[Client]:
    headers = {"authorization": f"Bearer {world.token(sub)}", "x-tenant-id": tenant or world.slug}
    async with httpx2.AsyncClient(headers=headers, timeout=httpx2.Timeout(60, read=120)) as http:
        transport = streamable_http_client(world.mcp_url, http_client=http)
        async with Client(transport, mode=mode, **kw) as client:  # type: ignore[arg-type]
            yield client


def stdio_params(world: World, sub: str = "ed@a", tenant: str | None = None) -> StdioServerParameters:
    import os

    env = dict(os.environ)
    env.update(
        UDS_URL=world.server.url,
        UDS_TOKEN=world.token(sub),
        UDS_TENANT=tenant or world.slug,
        UDS_MCP_WAIT_SECONDS=str(WAIT),
    )
    return StdioServerParameters(
        command=sys.executable, args=["-m", "uds.cli", "mcp", "--transport", "stdio"], env=env, cwd=str(ROOT)
    )
