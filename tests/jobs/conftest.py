"""Fixtures for the job tests: servers on a Redis namespace of this session.

Redis is shared with other test sessions, so everything here uses a `redis_prefix` unique
to the session (queue, tenant slots, channels, flags); its keys are deleted at the end.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import replace

import pytest
from redis.asyncio import Redis

from conftest import Server, start_server
from uds.jobs.keys import JobKeys
from uds.settings import Settings

LEASE_SECONDS = 2.0


@pytest.fixture(scope="session")
def job_settings(migrated: Settings) -> Settings:
    return replace(
        migrated, redis_prefix=f"uds-test-{uuid.uuid4().hex[:10]}:", job_lease_seconds=LEASE_SECONDS
    )


@pytest.fixture(scope="session")
async def jobs_server(job_settings: Settings) -> AsyncIterator[Server]:
    async for s in start_server(job_settings):
        yield s
    await _clean_redis(job_settings)


@pytest.fixture(scope="session")
async def second_server(job_settings: Settings, jobs_server: Server) -> AsyncIterator[Server]:
    """Another API server (own Services, own Redis connections) on the same servers."""
    async for s in start_server(job_settings):
        yield s


async def _clean_redis(settings: Settings) -> None:
    keys = JobKeys(settings.redis_prefix)
    redis = Redis.from_url(settings.redis_url or "")
    try:
        ids = [i.decode() for i in await redis.zrange(keys.queue, 0, -1)]
        doomed = [k for i in ids for k in (JobKeys.arq_job(i), JobKeys.arq_in_progress(i), f"arq:retry:{i}")]
        doomed += [k async for k in redis.scan_iter(match=f"{settings.redis_prefix}*")]
        for start in range(0, len(doomed), 500):
            await redis.delete(*doomed[start : start + 500])
    finally:
        await redis.aclose()
