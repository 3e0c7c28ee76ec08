"""How a run ends: success, failure, timeout, cancel (running and queued), refusal at start,
worker shutdown, and enqueueing while Redis is down."""

from __future__ import annotations

import asyncio
import time
import types
import uuid
from dataclasses import replace
from typing import Any

from sqlalchemy import text

from conftest import Server
from jobs.kit import events_of, redis_proxy, running_worker, seed_audit, start, tenant_with, wait_for
from uds.jobs.keys import JobKeys
from uds.jobs.queue import JobQueue
from uds.jobs.runtime import JobContext, job_kind
from uds.settings import Settings
from uds.tenants.slugs import tenant_schema

CANCEL = """
mutation($id: ID!) { cancelJob(id: $id) {
  __typename ... on Job { status cancelRequested } ... on NotAllowed { reasons } ... on Conflict { message } } }"""
SUSPEND = "mutation($s: String!) { admin { suspendTenant(slug: $s) { __typename } } }"


@job_kind("test.sleepy", timeout=1)
async def sleepy(job: JobContext) -> dict[str, Any]:
    await job.progress(0.5, phase="sleeping")
    await asyncio.sleep(30)
    return {}


def assert_unique(events: list[dict[str, Any]]) -> None:
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    assert len({e["key"] for e in events}) == len(events)
    assert sum(e["type"] in ("succeeded", "failed", "cancelled") for e in events) == 1
    assert events[-1]["type"] in ("succeeded", "failed", "cancelled")


async def steps_done(server: Server, slug: str, job_id: uuid.UUID) -> list[str]:
    async with server.services.engine.connect() as conn:
        rows = await conn.scalars(
            text(f'select step from "{tenant_schema(slug)}".job_steps where job_id = :id order by step'),
            {"id": job_id},
        )
        return list(rows)


async def test_a_failing_step_fails_the_job_with_its_error(
    jobs_server: Server, job_settings: Settings
) -> None:
    slug = await tenant_with(jobs_server, ed="EDITOR")
    await seed_audit(jobs_server, slug, 30)
    job = await start(jobs_server, slug, batch_size=10, fail_at_step=1)
    async with running_worker(job_settings):
        done = await wait_for(jobs_server, slug, job.id, "FAILED")
    assert done.error == "RuntimeError: failing at step 1, as asked (fail_at_step)"
    assert done.attempts == 1, "a handler's error is final; only lost workers cause re-runs"
    events = await events_of(jobs_server, slug, job.id)
    assert_unique(events)
    assert events[-1]["type"] == "failed"


async def test_a_job_over_its_timeout_fails_clearly(jobs_server: Server, job_settings: Settings) -> None:
    slug = await tenant_with(jobs_server, ed="EDITOR")
    job = await start(jobs_server, slug, kind="test.sleepy")
    async with running_worker(job_settings):
        done = await wait_for(jobs_server, slug, job.id, "FAILED")
    assert done.error == "timed out after 1s"
    assert_unique(await events_of(jobs_server, slug, job.id))


async def test_cancel_stops_a_running_job_within_a_second_of_work(
    jobs_server: Server, job_settings: Settings
) -> None:
    slug = await tenant_with(jobs_server, ed="EDITOR")
    await seed_audit(jobs_server, slug, 10)
    # One step that would take 60 s and never reports: only the worker's heartbeat can stop it.
    job = await start(jobs_server, slug, step_delay=60)
    async with running_worker(job_settings):
        await wait_for(jobs_server, slug, job.id, "RUNNING")
        await asyncio.sleep(0.3)
        asked = time.monotonic()
        status, body = await jobs_server.gql(
            CANCEL, {"id": str(job.id)}, token=jobs_server.token("ed@x"), tenant=slug
        )
        assert body["data"]["cancelJob"] == {
            "__typename": "Job",
            "status": "RUNNING",
            "cancelRequested": True,
        }
        done = await wait_for(jobs_server, slug, job.id, "CANCELLED", "FAILED", "SUCCEEDED")
        took = time.monotonic() - asked
    assert done.status == "CANCELLED", done
    assert took < 5, f"cancelled after {took:.1f}s of a 60 s step"
    assert await steps_done(jobs_server, slug, job.id) == ["plan"], "the interrupted step was not recorded"
    events = await events_of(jobs_server, slug, job.id)
    assert_unique(events)
    assert events[-1]["type"] == "cancelled"
    status, body = await jobs_server.gql(
        CANCEL, {"id": str(job.id)}, token=jobs_server.token("ed@x"), tenant=slug
    )
    assert body["data"]["cancelJob"]["__typename"] == "Conflict"


async def test_cancel_of_a_queued_job_ends_it_at_once_and_it_never_runs(
    jobs_server: Server, job_settings: Settings
) -> None:
    slug = await tenant_with(jobs_server, ed="EDITOR", other="EDITOR", vi="VIEWER", boss="ADMIN")
    job = await start(jobs_server, slug)
    for who in ("vi@x", "other@x"):  # a viewer, and an editor who did not start it
        status, body = await jobs_server.gql(
            CANCEL, {"id": str(job.id)}, token=jobs_server.token(who), tenant=slug
        )
        assert body["data"]["cancelJob"]["__typename"] == "NotAllowed", (who, body)
    status, body = await jobs_server.gql(
        CANCEL, {"id": str(job.id)}, token=jobs_server.token("boss@x"), tenant=slug
    )
    assert body["data"]["cancelJob"] == {"__typename": "Job", "status": "CANCELLED", "cancelRequested": False}
    async with running_worker(job_settings):
        await asyncio.sleep(0.5)
    assert (await wait_for(jobs_server, slug, job.id, "CANCELLED")).attempts == 0, "it never ran"
    events = await events_of(jobs_server, slug, job.id)
    assert [e["type"] for e in events] == ["queued", "cancelled"]
    status, body = await jobs_server.gql(
        CANCEL, {"id": str(uuid.uuid4())}, token=jobs_server.token("boss@x"), tenant=slug
    )
    assert body["data"]["cancelJob"]["__typename"] == "NotFound"


async def test_a_job_its_creator_may_not_start_fails_at_start(
    jobs_server: Server, job_settings: Settings
) -> None:
    slug = await tenant_with(jobs_server, ed="EDITOR", vi="VIEWER")
    by_viewer = await start(jobs_server, slug, by="vi@x")
    by_stranger = await start(jobs_server, slug, by="stranger@x")
    unknown = await start(jobs_server, slug, kind="no.such-kind")
    async with running_worker(job_settings):
        refused = await wait_for(jobs_server, slug, by_viewer.id, "FAILED")
        assert refused.error == "not allowed: job.start (role EDITOR or higher required)"
        assert (await wait_for(jobs_server, slug, by_stranger.id, "FAILED")).error.startswith("not allowed")
        unknown_done = await wait_for(jobs_server, slug, unknown.id, "FAILED")
        assert "unknown job kind 'no.such-kind'" in (unknown_done.error or "")
        # A suspended tenant is read-only: its queued jobs do not start.
        await jobs_server.admin(SUSPEND, {"s": slug})
        late = await start(jobs_server, slug)
        assert (await wait_for(jobs_server, slug, late.id, "FAILED")).error == (
            "not allowed: job.start (tenant is suspended: read-only)"
        )
    for job in (by_viewer, by_stranger, unknown, late):
        assert (await wait_for(jobs_server, slug, job.id, "FAILED")).attempts == 0


async def test_a_worker_shutdown_hands_the_job_to_the_next_worker(
    jobs_server: Server, job_settings: Settings
) -> None:
    slug = await tenant_with(jobs_server, ed="EDITOR")
    await seed_audit(jobs_server, slug, 100)
    job = await start(jobs_server, slug, batch_size=10, step_delay=0.15)
    async with running_worker(job_settings):
        deadline = time.monotonic() + 10
        while sum(e["type"] == "progress" for e in await events_of(jobs_server, slug, job.id)) < 4:
            assert time.monotonic() < deadline
            await asyncio.sleep(0.05)
    interrupted = await wait_for(jobs_server, slug, job.id, "RUNNING")
    assert interrupted.attempts == 0, "a shutdown does not use up an attempt"
    async with running_worker(job_settings):
        done = await wait_for(jobs_server, slug, job.id, "SUCCEEDED")
    events = await events_of(jobs_server, slug, job.id)
    assert_unique(events)
    assert [e["type"] for e in events].count("interrupted") == 1
    assert [e["type"] for e in events].count("started") == 2
    assert sum(e["type"] == "progress" for e in events) == 1 + 11, "no report repeated by the second run"
    assert done.result is not None and done.result["entries"] >= 100


async def test_enqueue_while_redis_is_down_fails_the_job_clearly(
    jobs_server: Server, job_settings: Settings
) -> None:
    slug = await tenant_with(jobs_server, ed="EDITOR")
    async with redis_proxy(job_settings.redis_url or "") as proxy:
        queue = JobQueue(replace(job_settings, redis_url=proxy.url))
        services = types.SimpleNamespace(
            engine=jobs_server.services.engine, registry=jobs_server.services.registry, queue=queue
        )
        try:
            await proxy.down()
            failed = await start(types.SimpleNamespace(services=services), slug)  # type: ignore[arg-type]
            assert failed.status == "FAILED"
            assert failed.error is not None
            assert failed.error.startswith("could not enqueue the job: the job queue (Redis) is unavailable")
            events = await events_of(jobs_server, slug, failed.id)
            assert [e["type"] for e in events] == ["queued", "failed"]
            # Redis is back: the same queue (and pool) works again.
            await proxy.up()
            queued = await start(types.SimpleNamespace(services=services), slug)  # type: ignore[arg-type]
            assert queued.status == "QUEUED"
        finally:
            await queue.close()
    async with running_worker(job_settings):
        assert (await wait_for(jobs_server, slug, queued.id, "SUCCEEDED")).attempts == 1
    assert (await wait_for(jobs_server, slug, failed.id, "FAILED")).attempts == 0
    assert JobKeys(job_settings.redis_prefix).queue.startswith(job_settings.redis_prefix)
