"""Helpers for the dashboards app tests: tenants with a discovered source, jobs, GraphQL."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import asyncpg

from conftest import Server, make_tenant
from discovery.kit import connect_args
from uds.datasources.params import ConnectionParams
from uds.settings import Settings
from uds.workers.settings import make_worker, stop_worker

MEMBERS = {"viewer@d": "VIEWER", "editor@d": "EDITOR", "admin@d": "ADMIN"}

REGISTER = """
mutation($input: DataSourceInput!) { registerDataSource(input: $input) {
  __typename ... on DataSource { id } ... on ValidationError { message } } }"""
DISCOVER = """
mutation($id: ID!) { startDiscovery(dataSourceId: $id) { __typename ... on Job { id } } }"""
GENERATE = """
mutation($input: GenerateDashboardInput!) { generateDashboard(input: $input) {
  __typename ... on Job { id kind status } ... on ValidationError { message }
  ... on NotAllowed { message reasons } ... on NotFound { message } } }"""
JOB = "query($id: ID!) { job(id: $id) { id kind status progress phase message error result } }"
DASHBOARD = """
query($id: ID!) { dashboard(id: $id) {
  id title goal version message dataSourceId url createdAt
  widgets { id title kind sql spec score reason insights version sourceColumns position { x y w h } } } }"""
WIDGET_DATA = """
query($d: ID!, $w: ID!, $r: Boolean) { widgetData(dashboardId: $d, widgetId: $w, refresh: $r) {
  columns rows spec cached truncated dataKey insights } }"""
UPDATE = """
mutation($input: UpdateDashboardInput!) { updateDashboard(input: $input) {
  __typename ... on Dashboard { id title version widgets { id title sql version kind position { x y w h } } }
  ... on ValidationError { message code } ... on NotFound { message code } ... on NotAllowed { message reasons code } } }"""
DELETE = """
mutation($id: ID!) { deleteDashboard(id: $id) {
  __typename ... on DashboardDeleted { id } ... on NotFound { message } ... on NotAllowed { message reasons } } }"""


@dataclass
class World:
    server: Server
    slug: str
    source_id: str
    params: ConnectionParams

    async def gql(self, query: str, variables: dict[str, Any] | None = None, *, sub: str = "editor@d") -> Any:
        status, body = await self.server.gql(query, variables, token=self.server.token(sub), tenant=self.slug)
        return status, body

    async def ok(self, query: str, variables: dict[str, Any] | None = None, *, sub: str = "editor@d") -> Any:
        status, body = await self.gql(query, variables, sub=sub)
        assert status == 200 and "errors" not in body, body
        return body["data"]

    async def generate(
        self,
        goal: str | None,
        *,
        tables: list[str] | None = None,
        max_widgets: int | None = None,
        sub: str = "editor@d",
    ) -> dict[str, Any]:
        """Run a generation job to its end; returns the finished job."""
        data = await self.ok(
            GENERATE,
            {
                "input": {
                    "dataSourceId": self.source_id,
                    "goal": goal,
                    "tables": tables,
                    "maxWidgets": max_widgets,
                }
            },
            sub=sub,
        )
        started = data["generateDashboard"]
        assert started["__typename"] == "Job", started
        assert started["kind"] == "dashboard"
        return await wait_job(self, started["id"])

    async def dashboard(self, goal: str | None, **kwargs: Any) -> dict[str, Any]:
        job = await self.generate(goal, **kwargs)
        assert job["status"] == "SUCCEEDED", job
        data = await self.ok(DASHBOARD, {"id": job["result"]["dashboardId"]})
        return data["dashboard"]  # type: ignore[no-any-return]

    async def widget_data(self, dashboard_id: str, widget_id: str, *, refresh: bool = False) -> Any:
        data = await self.ok(WIDGET_DATA, {"d": dashboard_id, "w": widget_id, "r": refresh})
        return data["widgetData"]

    async def direct(self, sql: str) -> list[tuple[Any, ...]]:
        """Independent SQL on the source, as its owner."""
        conn = await asyncpg.connect(**connect_args(self.params), server_settings={"TimeZone": "UTC"})
        try:
            return [tuple(r) for r in await conn.fetch(sql)]
        finally:
            await conn.close()


async def wait_job(world: World, job_id: str, seconds: float = 120.0) -> dict[str, Any]:
    deadline = time.monotonic() + seconds
    while True:
        data = await world.ok(JOB, {"id": job_id})
        job = data["job"]
        if job["status"] in ("SUCCEEDED", "FAILED", "CANCELLED"):
            return job  # type: ignore[no-any-return]
        assert time.monotonic() < deadline, job
        await asyncio.sleep(0.1)


@contextlib.asynccontextmanager
async def running_worker(settings: Settings) -> AsyncIterator[None]:
    worker = make_worker(settings, handle_signals=False)
    task = asyncio.create_task(worker.async_run())
    try:
        yield
    finally:
        # stop_worker, not arq's close(): close() stops at a job task cancelled while arq
        # records its end, and then leaves the worker's pool and Services open.
        await stop_worker(worker)
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def make_world(
    server: Server, params: ConnectionParams, *, source_name: str, schemas: list[str], discover: bool = True
) -> World:
    slug = await make_tenant(server, members=MEMBERS)
    await server.admin(
        "mutation($s: String!) { admin { setTenantLimits(slug: $s, limits: "
        "{maxDashboards: 10000, maxConcurrentJobs: 50}) { __typename } } }",
        {"s": slug},
    )
    world = World(server, slug, "", params)
    data = await world.ok(
        REGISTER,
        {
            "input": {
                "name": source_name,
                "host": params.host,
                "port": params.port,
                "database": params.database,
                "user": params.user,
                "password": params.password,
                "sslmode": "disable",
                "schemas": schemas,
            }
        },
    )
    assert data["registerDataSource"]["__typename"] == "DataSource", data
    world.source_id = data["registerDataSource"]["id"]
    if discover:
        data = await world.ok(DISCOVER, {"id": world.source_id})
        job = await wait_job(world, data["startDiscovery"]["id"])
        assert job["status"] == "SUCCEEDED", job
    return world
