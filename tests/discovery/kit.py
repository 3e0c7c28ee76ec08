"""Helpers for discovery and data source tests: the demo source, scratch databases."""

from __future__ import annotations

from dataclasses import dataclass, replace

import asyncpg

from uds.datasources.guard import NetworkGuard
from uds.datasources.params import ConnectionParams
from uds.demo import DemoScale
from uds.discovery.engine import DiscoveryOptions
from uds.discovery.profiles import ProfileOptions

DEMO_ROWS = 40_000
# Small enough that several tables are sampled at this scale, and one is exact.
TEST_OPTIONS = DiscoveryOptions(profile=ProfileOptions(sample_rows=4_000, exact_rows=5_000))
OPEN = NetworkGuard(enforce=False)


@dataclass(frozen=True)
class DemoSource:
    admin: ConnectionParams  # superuser on the server, database "postgres"
    params: ConnectionParams  # the demo database, as the same superuser
    scale: DemoScale

    async def connect(self) -> asyncpg.Connection:
        return await asyncpg.connect(**connect_args(self.params))


def connect_args(params: ConnectionParams) -> dict[str, object]:
    """Test connections never negotiate TLS with the local server."""
    return replace(params, sslmode="disable").asyncpg_kwargs()


async def create_database(admin: ConnectionParams, name: str) -> None:
    conn = await asyncpg.connect(**connect_args(admin))
    try:
        await conn.execute(f'create database "{name}"')
    finally:
        await conn.close()


async def drop_database(admin: ConnectionParams, name: str) -> None:
    conn = await asyncpg.connect(**connect_args(admin))
    try:
        await conn.execute(f'drop database if exists "{name}" with (force)')
    finally:
        await conn.close()


async def execute(params: ConnectionParams, *statements: str) -> None:
    """Run statements on `params`' database, one after the other, on a connection of their own."""
    conn = await asyncpg.connect(**connect_args(params))
    try:
        for statement in statements:
            await conn.execute(statement)
    finally:
        await conn.close()
