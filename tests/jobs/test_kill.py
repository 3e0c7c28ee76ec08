"""kill -9 of the worker in the middle of a job: another worker finishes it, exactly once."""

from __future__ import annotations

import asyncio
import os
import signal
import time

from sqlalchemy import text

from conftest import Server
from jobs.kit import events_of, job_row, seed_audit, start, tenant_with, wait_for, worker_process
from uds.settings import Settings
from uds.tenants.slugs import tenant_schema


async def test_a_killed_worker_is_replaced_and_the_job_completes_once(
    jobs_server: Server, job_settings: Settings
) -> None:
    slug = await tenant_with(jobs_server, ed="EDITOR")
    await seed_audit(jobs_server, slug, 320)
    async with jobs_server.services.engine.connect() as conn:
        entries = int(await conn.scalar(text(f'select count(*) from "{tenant_schema(slug)}".audit_log')))
    ranges = -(-entries // 20)
    # Each step holds its transaction open for 0.15 s, so a kill most likely lands inside one.
    job = await start(jobs_server, slug, batch_size=20, step_delay=0.15)

    with worker_process(job_settings) as first:
        deadline = time.monotonic() + 30
        while sum(e["type"] == "progress" for e in await events_of(jobs_server, slug, job.id)) < 5:
            assert first.poll() is None, "the worker exited"
            assert time.monotonic() < deadline, "the first worker made no progress"
            await asyncio.sleep(0.02)
        os.kill(first.pid, signal.SIGKILL)
        first.wait(timeout=10)
    killed = await job_row(jobs_server, slug, job.id)
    assert killed.status == "RUNNING" and killed.attempts == 1

    with worker_process(job_settings):
        done = await wait_for(jobs_server, slug, job.id, "SUCCEEDED", "FAILED", "CANCELLED", within=40)
    assert done.status == "SUCCEEDED", done.error
    assert done.attempts == 2, "run again once, after the lost worker's lease ran out"

    events = await events_of(jobs_server, slug, job.id)
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1)), "no gaps, no repeated seq"
    assert len({e["key"] for e in events}) == len(events), "no event emitted twice"
    types = [e["type"] for e in events]
    assert types.count("started") == 2 and types.count("succeeded") == 1 and types[-1] == "succeeded"
    assert types.count("progress") == 1 + ranges, "each range reported once across both runs"
    progress = [e["progress"] for e in events]
    assert progress == sorted(progress)

    schema = tenant_schema(slug)
    async with jobs_server.services.engine.connect() as conn:
        counted = await conn.scalar(
            text(
                f'select sum((c ->> 2)::bigint) from "{schema}".job_steps s, '
                "jsonb_array_elements(s.state -> 'counts') c where s.job_id = :id"
            ),
            {"id": job.id},
        )
        steps = await conn.scalar(
            text(f'select count(*) from "{schema}".job_steps where job_id = :id'), {"id": job.id}
        )
    assert counted == entries == done.result["entries"], "every audit entry counted exactly once"
    assert steps == 1 + ranges, "every step recorded once (the plan, then one per range)"
