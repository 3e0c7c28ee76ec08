"""Fixtures for the dashboards app tests (test_app_*.py): a server with a worker, the demo
shop registered and discovered through GraphQL, and ways to generate dashboards.

Engine tests (test_engine_*.py) use none of these: they build catalogs themselves.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import replace

import pytest

from conftest import Server, start_server
from dashboards.app_kit import World, make_world, running_worker
from discovery.kit import drop_database
from uds.datasources.params import ConnectionParams, params_from_url
from uds.demo import build_demo_database
from uds.settings import Settings


@pytest.fixture(scope="session")
async def dash_server(migrated: Settings) -> AsyncIterator[Server]:
    """A server (and worker) on a Redis namespace of its own, so only our worker runs our jobs."""
    settings = replace(
        migrated,
        redis_prefix=f"uds-test-dash-{uuid.uuid4().hex[:8]}:",
        job_lease_seconds=3.0,
        # Small enough for test_app_limits to reach quickly; above every generated widget's rows.
        widget_row_limit=1_000,
        widget_statement_timeout_ms=3_000,
    )
    async for s in start_server(settings):
        async with running_worker(settings):
            yield s
        doomed = [k async for k in s.services.redis.scan_iter(match=f"{settings.redis_prefix}*")]
        if doomed:
            await s.services.redis.delete(*doomed)


@pytest.fixture(scope="session")
def dash_admin(base_settings: Settings) -> ConnectionParams:
    assert base_settings.database_url
    return params_from_url(base_settings.database_url, database="postgres")


@pytest.fixture(scope="session")
async def shop_db(dash_admin: ConnectionParams) -> AsyncIterator[ConnectionParams]:
    """The demo shop, a database of its own on the test server."""
    name = f"uds_dash_shop_{uuid.uuid4().hex[:8]}"
    await build_demo_database(dash_admin, rows=3_000, database=name)
    try:
        yield dash_admin.with_database(name)
    finally:
        await drop_database(dash_admin, name)


@pytest.fixture(scope="session")
async def world(dash_server: Server, shop_db: ConnectionParams) -> World:
    """A tenant with a viewer, an editor and an admin, and the demo shop discovered."""
    return await make_world(dash_server, shop_db, source_name="demo-shop", schemas=["shop"])
