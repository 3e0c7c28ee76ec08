"""jobEvents through a real graphql-transport-ws client: replay, live, late joiners, other servers."""

from __future__ import annotations

import asyncio
from typing import Any

from gql import GraphQLRequest
from redis.asyncio import Redis

from conftest import Server
from jobs.kit import (
    EVENTS,
    events_of,
    redis_proxy,
    running_worker,
    seed_audit,
    start,
    subscribe_all,
    tenant_with,
    wait_for,
    ws_client,
)
from uds.jobs.hub import EventHub
from uds.jobs.keys import JobKeys
from uds.jobs.stream import job_event_stream
from uds.settings import Settings

JOB = "query($id: ID!) { job(id: $id) { id kind status progress attempts result error createdBy } }"
JOBS = "query($s: JobStatus) { jobs(status: $s, first: 50) { nodes { id status } } }"


async def test_a_subscriber_sees_monotonic_progress_to_completion(
    jobs_server: Server, job_settings: Settings
) -> None:
    slug = await tenant_with(jobs_server, ed="EDITOR", vi="VIEWER")
    await seed_audit(jobs_server, slug, 1000)
    job = await start(jobs_server, slug, batch_size=100, step_delay=0.02)
    async with running_worker(job_settings):
        events = await asyncio.wait_for(
            subscribe_all(jobs_server, jobs_server.token("vi@x"), slug, job.id), 30
        )

    seqs = [e["seq"] for e in events]
    assert seqs == list(range(1, len(seqs) + 1)), "every event once, in order, from the first"
    progress = [e["progress"] for e in events]
    assert progress == sorted(progress), "progress never goes down"
    assert [e["type"] for e in events[:2]] == ["queued", "started"]
    assert events[-1]["type"] == "succeeded" and progress[-1] == 1.0
    assert events[-1]["job"]["status"] == "SUCCEEDED"
    assert sum(e["type"] == "progress" for e in events) == 1 + 11  # a first report, then one per range
    assert [e["seq"] for e in await events_of(jobs_server, slug, job.id)] == seqs, "what was stored"

    status, body = await jobs_server.gql(
        JOB, {"id": str(job.id)}, token=jobs_server.token("vi@x"), tenant=slug
    )
    assert status == 200 and "errors" not in body, body
    found = body["data"]["job"]
    assert found["status"] == "SUCCEEDED" and found["attempts"] == 1 and found["createdBy"] == "ed@x"
    # 1000 seeded entries plus the tenant's own audit entries (its members being added).
    assert found["result"]["entries"] >= 1000 and found["result"]["actions"]["seed.0"]["allowed"] > 0


async def test_a_late_subscriber_on_another_server_gets_exactly_the_missing_events(
    jobs_server: Server, second_server: Server, job_settings: Settings
) -> None:
    slug = await tenant_with(jobs_server, ed="EDITOR")
    await seed_audit(jobs_server, slug, 400)
    token = jobs_server.token("ed@x")
    job = await start(jobs_server, slug, batch_size=40, step_delay=0.08)
    early: list[dict[str, Any]] = []
    halfway = asyncio.Event()

    async def follow() -> None:
        async with ws_client(jobs_server, token, slug) as session:
            async for result in session.subscribe(
                GraphQLRequest(EVENTS, variable_values={"id": str(job.id)})
            ):
                early.append(result["jobEvents"])
                if len(early) == 6:
                    halfway.set()

    async with running_worker(job_settings):
        first = asyncio.create_task(follow())
        await asyncio.wait_for(halfway.wait(), 20)
        joined_after = early[-1]["seq"]
        assert not early[-1]["type"] == "succeeded", "joined mid-job"
        late = await asyncio.wait_for(
            subscribe_all(second_server, token, slug, job.id, after=joined_after), 30
        )
        await asyncio.wait_for(first, 30)

    assert [e["seq"] for e in late] == [e["seq"] for e in early if e["seq"] > joined_after]
    assert late == [e for e in early if e["seq"] > joined_after], "the same events, from another API server"
    assert late[-1]["type"] == "succeeded"


async def test_replay_of_a_finished_job_and_an_after_seq_past_the_end(
    jobs_server: Server, job_settings: Settings
) -> None:
    slug = await tenant_with(jobs_server, ed="EDITOR")
    job = await start(jobs_server, slug)
    async with running_worker(job_settings):
        await wait_for(jobs_server, slug, job.id, "SUCCEEDED")
    token = jobs_server.token("ed@x")
    everything = await subscribe_all(jobs_server, token, slug, job.id)
    last = everything[-1]["seq"]
    assert everything[-1]["type"] == "succeeded"
    tail = await subscribe_all(jobs_server, token, slug, job.id, after=last - 2)
    assert [e["seq"] for e in tail] == [last - 1, last]
    assert await subscribe_all(jobs_server, token, slug, job.id, after=last) == [], "nothing left: completes"

    status, body = await jobs_server.gql(JOBS, {"s": "SUCCEEDED"}, token=token, tenant=slug)
    assert status == 200 and [n["id"] for n in body["data"]["jobs"]["nodes"]] == [str(job.id)]
    status, body = await jobs_server.gql(JOBS, {"s": "RUNNING"}, token=token, tenant=slug)
    assert body["data"]["jobs"]["nodes"] == []


async def test_the_stream_loses_nothing_when_its_redis_connection_drops(
    jobs_server: Server, job_settings: Settings
) -> None:
    slug = await tenant_with(jobs_server, ed="EDITOR")
    await seed_audit(jobs_server, slug, 200)
    job = await start(jobs_server, slug, batch_size=20, step_delay=0.1)
    seen: list[int] = []
    started = asyncio.Event()
    async with redis_proxy(job_settings.redis_url or "") as proxy:
        redis = Redis.from_url(proxy.url)
        hub = EventHub(redis)

        async def follow() -> None:
            stream = job_event_stream(
                engine=jobs_server.services.engine,
                hub=hub,
                keys=JobKeys(job_settings.redis_prefix),
                tenant=slug,
                job_id=job.id,
            )
            async for record in stream:
                seen.append(record.seq)
                if len(seen) == 4:
                    started.set()

        try:
            async with running_worker(job_settings):
                follower = asyncio.create_task(follow())
                await asyncio.wait_for(started.wait(), 20)
                await proxy.down()  # the subscriber's Redis goes away for a while
                await asyncio.sleep(0.6)
                await proxy.up()
                await asyncio.wait_for(follower, 30)
        finally:
            await hub.close()
            await redis.aclose()
    stored = [e["seq"] for e in await events_of(jobs_server, slug, job.id)]
    assert seen == stored == list(range(1, len(stored) + 1)), "every event once, in order, none lost"
