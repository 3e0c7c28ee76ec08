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
from typing import Any, Literal

import httpx2
import pytest
from mcp.client.extension import ClaimContext, ClientExtension, ResultClaim
from mcp.client.streamable_http import streamable_http_client
from mcp_types import CallToolResult, Request, RequestParams, Result
from pydantic import Field, TypeAdapter

from conftest import Server, make_tenant, start_server
from discovery.kit import create_database, drop_database, execute
from mcp import Client, StdioServerParameters
from uds.datasources.params import ConnectionParams, params_from_url
from uds.demo import build_demo_database
from uds.settings import Settings
from uds.workers.settings import make_worker, stop_worker

ROOT = Path(__file__).resolve().parents[2]
WAIT = 0.1  # the bounded wait of long-job calls without a progress token, in these tests

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
        source_connect_timeout=5.0,
        db_pool_size=4,  # the machine's PostgreSQL is shared: keep this session's footprint small
        worker_concurrency=4,
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


# -- the tasks extension, client side (the SDK has none): claim `resultType: "task"` ------

TASKS = "io.modelcontextprotocol/tasks"


class CreateTaskResult(Result):
    result_type: Literal["task"] = Field(alias="resultType")
    task_id: str = Field(alias="taskId")
    status: str
    status_message: str | None = Field(default=None, alias="statusMessage")
    poll_interval_milliseconds: int | None = Field(default=None, alias="pollIntervalMilliseconds")


class TaskIdParams(RequestParams):
    task_id: str = Field(alias="taskId")


class GetTaskRequest(Request[TaskIdParams, Literal["tasks/get"]]):
    method: Literal["tasks/get"] = "tasks/get"
    name_param = "taskId"


class CancelTaskRequest(Request[TaskIdParams, Literal["tasks/cancel"]]):
    method: Literal["tasks/cancel"] = "tasks/cancel"
    name_param = "taskId"


ANY = TypeAdapter(dict[str, Any])


async def get_task(session: Any, task_id: str) -> dict[str, Any]:
    return await session.send_request(GetTaskRequest(params=TaskIdParams(task_id=task_id)), ANY)  # type: ignore[no-any-return]


async def cancel_task(session: Any, task_id: str) -> dict[str, Any]:
    return await session.send_request(CancelTaskRequest(params=TaskIdParams(task_id=task_id)), ANY)  # type: ignore[no-any-return]


async def poll_task(session: Any, task_id: str, *, within: float = 60) -> tuple[dict[str, Any], list[str]]:
    """tasks/get until the task ends: its last state and the status messages seen."""
    messages: list[str] = []
    deadline = time.monotonic() + within
    while True:
        task = await get_task(session, task_id)
        messages.append(task.get("statusMessage") or "")
        if task["status"] in ("completed", "failed", "cancelled"):
            return task, messages
        assert time.monotonic() < deadline, task
        await asyncio.sleep(0.1)


class TasksClient(ClientExtension):
    """Declares the extension; finishes a task handle by polling tasks/get."""

    identifier = TASKS

    def claims(self) -> list[ResultClaim[Any]]:
        async def resolve(result: CreateTaskResult, ctx: ClaimContext) -> CallToolResult:
            task, _ = await poll_task(ctx.session, result.task_id)
            return CallToolResult.model_validate(task["result"])

        return [ResultClaim(result_type="task", model=CreateTaskResult, resolve=resolve)]


# -- a TCP server that records what it receives and never answers ---------------------


class Recorder:
    """Stands in for a data source that hangs: records every byte a connection sends."""

    def __init__(self) -> None:
        self.received = bytearray()
        self.connections = 0
        self.server: asyncio.Server | None = None

    async def start(self) -> int:
        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            self.connections += 1
            with contextlib.suppress(Exception):
                while chunk := await reader.read(65536):
                    self.received.extend(chunk)
                    if b"closes" in chunk:  # a source of that name fails at once
                        break
            writer.close()

        self.server = await asyncio.start_server(handle, "127.0.0.1", 0)
        return int(self.server.sockets[0].getsockname()[1])

    def close(self) -> None:
        if self.server is not None:
            self.server.close()


@pytest.fixture(scope="session")
async def recorder() -> AsyncIterator[Recorder]:
    rec = Recorder()
    await rec.start()
    yield rec
    rec.close()


async def recorded_source(world: World, recorder: Recorder, database: str) -> str:
    assert recorder.server is not None
    port = recorder.server.sockets[0].getsockname()[1]
    params = replace(world.shop, host="127.0.0.1", port=port, database=database, password="pw-not-the-token")
    status, body = await world.server.gql(
        REGISTER, {"input": source_input(params, name=database)}, token=world.token("ed@a"), tenant=world.slug
    )
    assert body["data"]["registerDataSource"]["__typename"] == "DataSource", body
    return body["data"]["registerDataSource"]["id"]  # type: ignore[no-any-return]


@pytest.fixture(scope="session")
async def slow_source(world: World, recorder: Recorder) -> str:
    """A data source in tenant A whose server accepts and never answers (discovery hangs)."""
    return await recorded_source(world, recorder, "hangs")


@pytest.fixture(scope="session")
async def closing_source(world: World, recorder: Recorder) -> str:
    """A data source in tenant A whose server reads the startup message and hangs up."""
    return await recorded_source(world, recorder, "closes")


@pytest.fixture(scope="session")
async def discovered(world: World) -> dict[str, Any]:
    """One discovery of the demo shop through MCP, with a progress callback."""
    seen: list[tuple[float, float | None, str | None]] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        seen.append((progress, total, message))

    async with http_client(world) as client:
        result = await client.call_tool(
            "start_discovery", {"data_source_id": world.source_id}, progress_callback=on_progress
        )
    assert not result.is_error, result
    return {"result": result.structured_content, "progress": seen}


# -- a wide source: 300 generated tables, a mixed-case one, a name in two schemas, a dotted name --

WIDE_TABLES = 300


@pytest.fixture(scope="session")
async def wide_db(base_settings: Settings) -> AsyncIterator[ConnectionParams]:
    assert base_settings.database_url
    admin = params_from_url(base_settings.database_url, database="postgres")
    name = f"uds_mcp_wide_{uuid.uuid4().hex[:8]}"
    await create_database(admin, name)
    params = admin.with_database(name)
    try:
        await execute(
            params,
            "create schema wide",
            'create schema "Sales"',
            f"""do $$ begin for i in 1..{WIDE_TABLES} loop
                execute format('create table wide.w%s (id int primary key, parent_id int%s, note text)',
                    lpad(i::text, 3, '0'),
                    case when i > 1 then format(' references wide.w%s(id)', lpad((i - 1)::text, 3, '0')) end);
            end loop; end $$""",
            'create table "Sales"."OrderItems" (id int primary key, "Qty" int, email text)',
            """insert into "Sales"."OrderItems" select g, g % 7, format('buyer%s@example.com', g)
               from generate_series(1, 200) g""",
            "create table wide.dup (id int primary key)",
            'create table wide."v1.2" (id int primary key)',
            'create table "Sales".dup (id int primary key)',
        )
        yield params
    finally:
        await drop_database(admin, name)


@dataclass
class Wide:
    slug: str  # a tenant of its own (tenant A's plan allows few data sources): ed@w, vi@w
    source_id: str


@pytest.fixture(scope="session")
async def wide_source(world: World, wide_db: ConnectionParams) -> Wide:
    """The wide database registered in a tenant of its own and discovered (through MCP)."""
    slug = await make_tenant(world.server, members={"ed@w": "EDITOR", "vi@w": "VIEWER"})
    status, body = await world.server.gql(
        REGISTER,
        {"input": {**source_input(wide_db, name="wide"), "schemas": ["wide", "Sales"]}},
        token=world.token("ed@w"),
        tenant=slug,
    )
    assert body["data"]["registerDataSource"]["__typename"] == "DataSource", body
    source = body["data"]["registerDataSource"]["id"]

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        pass

    async with http_client(world, "ed@w", tenant=slug) as client:
        result = await client.call_tool(
            "start_discovery", {"data_source_id": source}, progress_callback=on_progress
        )
    assert result.structured_content["job"]["status"] == "SUCCEEDED", result
    return Wide(slug, source)
