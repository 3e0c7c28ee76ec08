"""Fixtures for discovery tests: a small demo shop database on the test server.

The demo source is a database of its own on the same PostgreSQL server as the test UDS
database (named uniquely, dropped at the end). Autovacuum is off on its tables, so which
tables have fresh statistics (only shop.orders, analyzed here) does not change under us.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator

import asyncpg
import pytest

from discovery.kit import (
    DEMO_ROWS,
    OPEN,
    TEST_OPTIONS,
    DemoSource,
    connect_args,
    create_database,
    drop_database,
)
from uds.datasources.params import ConnectionParams, params_from_url
from uds.demo import build_demo_database
from uds.discovery.budget import Budget
from uds.discovery.engine import discover
from uds.discovery.snapshot import CatalogSnapshot
from uds.settings import Settings


@pytest.fixture(scope="session")
def admin_params(base_settings: Settings) -> ConnectionParams:
    assert base_settings.database_url
    return params_from_url(base_settings.database_url, database="postgres")


@pytest.fixture(scope="session")
def demo(admin_params: ConnectionParams) -> Iterator[DemoSource]:
    name = f"uds_demo_test_{uuid.uuid4().hex[:8]}"
    scale = asyncio.run(build_demo_database(admin_params, rows=DEMO_ROWS, database=name))
    params = admin_params.with_database(name)

    async def settle() -> None:
        conn = await asyncpg.connect(**connect_args(params))
        try:
            tables = await conn.fetch(
                "select relname from pg_class where relnamespace = 'shop'::regnamespace and relkind = 'r'"
            )
            for t in tables:
                await conn.execute(f'alter table shop."{t[0]}" set (autovacuum_enabled = false)')
            await conn.execute("analyze shop.orders")
        finally:
            await conn.close()

    asyncio.run(settle())
    try:
        yield DemoSource(admin_params, params, scale)
    finally:
        asyncio.run(drop_database(admin_params, name))


@pytest.fixture(scope="session")
async def discovered(demo: DemoSource) -> CatalogSnapshot:
    """One discovery of the demo database, shared by the read-only assertions."""
    return await discover(demo.params, budget=Budget(rows=10_000_000), guard=OPEN, options=TEST_OPTIONS)


@pytest.fixture
async def scratch(admin_params: ConnectionParams) -> AsyncIterator[ConnectionParams]:
    """An empty database of this test's own, dropped afterwards."""
    name = f"uds_scratch_{uuid.uuid4().hex[:8]}"
    await create_database(admin_params, name)
    try:
        yield admin_params.with_database(name)
    finally:
        await drop_database(admin_params, name)


@pytest.fixture(scope="session")
def logistics(admin_params: ConnectionParams) -> Iterator[ConnectionParams]:
    """The logistics database (tests/discovery/logistics.py), built once per session."""
    from discovery import logistics as logi

    name = f"uds_logi_test_{uuid.uuid4().hex[:8]}"
    params = admin_params.with_database(name)

    async def build() -> None:
        await create_database(admin_params, name)
        conn = await asyncpg.connect(**connect_args(params))
        try:
            await conn.execute(logi.SQL)
            tables = await conn.fetch(
                "select format('%I.%I', n.nspname, c.relname) from pg_class c "
                "join pg_namespace n on n.oid = c.relnamespace where n.nspname = $1 and c.relkind in ('r', 'm')",
                logi.SCHEMA,
            )
            for statement in logi.settle_sql([t[0] for t in tables]):
                await conn.execute(statement)
            await conn.execute("analyze")
            await conn.execute(logi.BLOAT)
        finally:
            await conn.close()
        # The statistics collector shows the dead rows once the session has ended.
        conn = await asyncpg.connect(**connect_args(params))
        try:
            for _ in range(100):
                dead = await conn.fetchval(
                    "select n_dead_tup from pg_stat_user_tables where relid = 'logi.tracking_events'::regclass"
                )
                if dead:
                    break
                await asyncio.sleep(0.1)
        finally:
            await conn.close()

    asyncio.run(build())
    try:
        yield params
    finally:
        asyncio.run(drop_database(admin_params, name))


@pytest.fixture(scope="session")
async def logistics_discovered(logistics: ConnectionParams) -> CatalogSnapshot:
    return await discover(logistics, budget=Budget(rows=10_000_000), guard=OPEN, options=TEST_OPTIONS)
