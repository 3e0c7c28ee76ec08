"""Fixtures for the observability tests: a server on a Redis namespace of its own.

Metrics are per process, and the test session is one process: tests read counters
before and after what they do and compare the differences, on label values (operation
names, tenants) that only they use.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import replace

import pytest

from conftest import Server, start_server
from jobs.conftest import _clean_redis
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
