"""Fixtures for the observability tests: a server on a Redis namespace of its own.

Metrics are per process, and the test session is one process: tests read counters
before and after what they do and compare the differences, on label values (operation
names, tenants) that only they use.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, replace

import pytest

from conftest import Server, start_server
from discovery.kit import create_database, drop_database, execute
from jobs.conftest import _clean_redis
from uds.datasources.params import ConnectionParams, params_from_url
from uds.settings import Settings


@pytest.fixture(scope="session")
def obs_settings(migrated: Settings) -> Settings:
    return replace(
        migrated,
        redis_prefix=f"uds-test-{uuid.uuid4().hex[:10]}:",
        job_lease_seconds=2.0,
        metrics_max_tenants=1000,  # tenants as label values, so tests can tell theirs apart
    )


@pytest.fixture(scope="session")
async def obs_server(obs_settings: Settings) -> AsyncIterator[Server]:
    async for s in start_server(obs_settings):
        yield s
    await _clean_redis(obs_settings)


@dataclass(frozen=True)
class Source:
    """A small data source of the tests' own (a lending library), not the demo shop."""

    params: ConnectionParams
    password: str

    def register_input(self, name: str = "library") -> dict[str, object]:
        return {
            "name": name,
            "host": self.params.host,
            "port": self.params.port,
            "database": self.params.database,
            "user": self.params.user,
            "password": self.password,
            "sslmode": "disable",
            "schemas": ["lending"],
        }


@pytest.fixture(scope="session")
def library(base_settings: Settings) -> Iterator[Source]:
    assert base_settings.database_url
    admin = params_from_url(base_settings.database_url, database="postgres")
    name = f"uds_library_{uuid.uuid4().hex[:8]}"
    params = admin.with_database(name)
    asyncio.run(create_database(admin, name))
    asyncio.run(
        execute(
            params,
            "create schema lending",
            "create table lending.members (id serial primary key, email text not null, joined date)",
            "create table lending.loans (id serial primary key,"
            " member_id int not null references lending.members, title text, due date)",
            "insert into lending.members (email, joined) select 'm' || n || '@lib.test',"
            " date '2024-01-01' + n from generate_series(1, 40) n",
            "insert into lending.loans (member_id, title, due) select 1 + n % 40, 'book ' || n,"
            " date '2024-06-01' + n % 30 from generate_series(1, 200) n",
        )
    )
    try:
        # Local connections are trusted here, so any password is accepted: it is only
        # something that must never show up in a log line.
        yield Source(params, f"lib-pw-{uuid.uuid4().hex}")
    finally:
        asyncio.run(drop_database(admin, name))
