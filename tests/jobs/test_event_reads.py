"""Reading a job's stored events while the job ends: a terminal event never comes back
with a state that is still active (what `uds jobs watch` and replays rely on)."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import event
from sqlalchemy.util import await_only

from conftest import Server
from jobs.kit import start, tenant_with
from uds.db import TransactionScope, transaction
from uds.jobs import service
from uds.jobs.events import events_after
from uds.jobs.models import SUCCEEDED


async def test_a_job_ending_between_two_reads_is_seen_consistently(jobs_server: Server) -> None:
    slug = await tenant_with(jobs_server, ed="EDITOR")
    job = await start(jobs_server, slug)  # no worker runs here: it stays QUEUED
    engine = jobs_server.services.engine

    # The job's end, written but not committed yet.
    finisher = TransactionScope(engine, slug)
    ended = await service.finish(await finisher.tenant(), job.id, status=SUCCEEDED)
    assert ended is not None

    # Commit it right after the reader's first statement, so that its second statement
    # (READ COMMITTED: a new snapshot) sees the end while the first did not.
    statements = 0

    def commit_after_first(*_: Any) -> None:
        nonlocal statements
        statements += 1
        if statements == 1:
            await_only(finisher.commit())

    event.listen(engine.sync_engine, "after_cursor_execute", commit_after_first)
    try:
        async with transaction(engine, slug) as reader:
            records = await events_after(await reader.tenant(), job.id, 0)
    finally:
        event.remove(engine.sync_engine, "after_cursor_execute", commit_after_first)
        await finisher.close()
    assert statements >= 2
    for record in records:
        if record.terminal:
            assert record.job.finished, (record.type, record.job.status)

    # Read again: the end is there, with its final state.
    async with transaction(engine, slug) as reader:
        records = await events_after(await reader.tenant(), job.id, 0)
    assert records[-1].terminal and records[-1].job.status == SUCCEEDED


async def test_shared_replay_reads_return_what_the_orm_reads(jobs_server: Server) -> None:
    """EventReads' one prepared statement gives the records events_and_state gives,
    for every page shape: from the start, from the middle, up to a seq, the state alone,
    a job of another tenant and no job at all."""
    from uds.jobs.events import emit, events_and_state
    from uds.jobs.replay import PAST_THE_END, EventReads

    slug = await tenant_with(jobs_server, ed="EDITOR")
    other = await tenant_with(jobs_server, ed="EDITOR")
    job = await start(jobs_server, slug)
    engine = jobs_server.services.engine
    async with transaction(engine, slug) as tx:
        session = await tx.tenant()
        await emit(session, job.id, key="a", type="progress", progress=0.25, phase="p\u00e9", message='x"y')
        await emit(session, job.id, key="b", type="progress", data={"n": [1, 2.5, None], "s": "\u2603"})
    async with transaction(engine, slug) as tx:
        await service.finish(await tx.tenant(), job.id, status=SUCCEEDED, result={"rows": 3, "big": 2**70})

    reads = EventReads(jobs_server.services.read_engine)
    for after, upto in ((0, None), (1, None), (0, 2), (2, 2), (PAST_THE_END, None)):
        async with transaction(engine, slug) as tx:
            expected = await events_and_state(await tx.tenant(), job.id, after, upto=upto)
        got = await reads.after(slug, job.id, after, upto=upto)
        assert got == expected, (after, upto)
    state, records = await reads.after(slug, job.id, 0)
    assert state is not None and state.result == {"rows": 3, "big": 2**70}
    assert [r.seq for r in records] == [1, 2, 3, 4] and records[-1].terminal
    assert await reads.exists(slug, job.id)
    assert await reads.after(other, job.id, 0) == (None, [])  # another tenant's job: not there
    assert not await reads.exists(other, job.id)
    assert await reads.after(slug, uuid.uuid4(), 0) == (None, [])


async def test_reads_one_after_another_hand_out_the_same_records(jobs_server: Server) -> None:
    """Two reads that do not overlap return the same record objects while the job's state
    is the same (so a replayed event is executed once for all its subscribers); once the
    state changes, the records carry the new state."""
    from uds.jobs.events import emit
    from uds.jobs.replay import EventReads

    slug = await tenant_with(jobs_server, ed="EDITOR")
    job = await start(jobs_server, slug)
    engine = jobs_server.services.engine
    async with transaction(engine, slug) as tx:
        await emit(await tx.tenant(), job.id, key="a", type="progress", progress=0.5, data={"n": 1})

    reads = EventReads(jobs_server.services.read_engine)
    state, first = await reads.after(slug, job.id, 0)
    again_state, again = await reads.after(slug, job.id, 0)
    assert reads.queries == 2  # two reads, not one shared
    assert again_state == state and [r.seq for r in again] == [1, 2]
    assert all(a is b for a, b in zip(first, again, strict=True))
    _, tail = await reads.after(slug, job.id, 1)  # another page: the same record for seq 2
    assert tail[0] is first[1]

    async with transaction(engine, slug) as tx:
        await service.finish(await tx.tenant(), job.id, status=SUCCEEDED)
    state, ended = await reads.after(slug, job.id, 0)
    assert state is not None and state.finished
    assert [r.seq for r in ended] == [1, 2, 3] and ended[-1].terminal
    assert all(r.job == state for r in ended)  # nothing of the old state is handed out
    assert ended[0] is not first[0]


async def test_a_replay_shorter_than_a_page_is_one_read(jobs_server: Server) -> None:
    """The stream takes a page shorter than PAGE as all there was (its read began after
    the channel's subscription, so later events come from the channel): one read for the
    replay, not a second one that finds nothing; the live event after it still comes."""
    from uds.jobs.events import emit, publish
    from uds.jobs.replay import EventReads
    from uds.jobs.stream import job_event_stream

    slug = await tenant_with(jobs_server, ed="EDITOR")
    job = await start(jobs_server, slug)
    services = jobs_server.services
    async with transaction(services.engine, slug) as tx:
        await emit(await tx.tenant(), job.id, key="a", type="progress", progress=0.5)
    reads = EventReads(services.read_engine)
    stream = job_event_stream(
        engine=services.read_engine,
        hub=services.events,
        keys=services.queue.keys,
        tenant=slug,
        job_id=job.id,
        reads=reads,
    )
    seen = [(await anext(stream)).seq, (await anext(stream)).seq]
    async with transaction(services.engine, slug) as tx:
        ended = await service.finish(await tx.tenant(), job.id, status=SUCCEEDED)
    assert ended is not None
    await publish(services.events, services.queue.keys, slug, ended)
    seen += [record.seq async for record in stream]
    assert seen == [1, 2, 3]
    assert reads.queries == 1
