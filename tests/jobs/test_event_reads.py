"""Reading a job's stored events while the job ends: a terminal event never comes back
with a state that is still active (what `uds jobs watch` and replays rely on)."""

from __future__ import annotations

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
