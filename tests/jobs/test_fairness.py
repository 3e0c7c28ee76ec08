"""Fairness: a tenant's running jobs are capped, and its burst does not hold up other tenants."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from conftest import Server
from jobs.kit import job_row, running_worker, start, tenant_with, wait_for
from uds.jobs.models import JobState
from uds.settings import Settings

CANCEL = "mutation($id: ID!) { cancelJob(id: $id) { __typename } }"


def most_at_once(jobs: list[JobState]) -> int:
    """The largest number of these jobs that were running at the same moment."""
    now = datetime.now(UTC)
    edges = []
    for job in jobs:
        if job.started_at is not None:
            edges += [(job.started_at, 1), (job.finished_at or now, -1)]
    running = peak = 0
    for _, step in sorted(edges, key=lambda e: (e[0], e[1])):
        running += step
        peak = max(peak, running)
    return peak


async def test_a_burst_of_100_jobs_does_not_delay_another_tenants_job(
    jobs_server: Server, job_settings: Settings
) -> None:
    busy = await tenant_with(jobs_server, ed="EDITOR")  # free plan: 2 jobs at once
    quiet = await tenant_with(jobs_server, ed="EDITOR")
    burst = [await start(jobs_server, busy, step_delay=0.2) for _ in range(100)]
    single = await start(jobs_server, quiet, step_delay=0.2)
    peak_running = 0

    async def watch_busy() -> None:
        nonlocal peak_running
        while True:
            states = await asyncio.gather(*(job_row(jobs_server, busy, j.id) for j in burst[:12]))
            peak_running = max(peak_running, sum(s.status == "RUNNING" for s in states))
            await asyncio.sleep(0.05)

    async with running_worker(job_settings, concurrency=4), running_worker(job_settings, concurrency=4):
        watcher = asyncio.create_task(watch_busy())
        done = await wait_for(jobs_server, quiet, single.id, "SUCCEEDED", within=20)
        busy_states = [await job_row(jobs_server, busy, j.id) for j in burst]
        watcher.cancel()
        for job in busy_states:  # leave nothing behind for later tests' workers
            if not job.finished:
                await jobs_server.gql(
                    CANCEL, {"id": str(job.id)}, token=jobs_server.token("ed@x"), tenant=busy
                )

    finished = sum(s.status == "SUCCEEDED" for s in busy_states)
    assert finished <= 20, f"the quiet tenant's job waited for {finished} of the burst"
    assert done.started_at is not None and (done.started_at - done.created_at).total_seconds() < 5
    assert most_at_once(busy_states) <= 2, "the busy tenant never ran more than its cap (2) at once"
    assert peak_running <= 2
    assert most_at_once(busy_states) == 2, "and it did use both of its slots"
