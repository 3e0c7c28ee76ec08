"""A job's events as one ordered stream: stored ones after `after_seq`, then live ones.

Used by the `jobEvents` subscription and by `uds jobs watch`. The order of operations is
what makes it gap-free and duplicate-free: subscribe to the job's channel first (confirmed
by Redis), then replay stored events, then take live events, skipping seqs already sent
and reading any skipped-over seqs from the table. A lost message (Redis reconnect, a
publisher that could not reach Redis) is caught by re-reading the table whenever the
channel has been quiet for `idle_poll` seconds. The stream ends after the terminal event.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import AsyncIterator
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from uds.db import transaction
from uds.errors import NotFound
from uds.jobs.events import EventRecord, events_after, load_state
from uds.jobs.hub import EventHub
from uds.jobs.keys import JobKeys

# Re-read the table after this long without a message (spread out, so a thousand quiet
# subscribers do not poll in step). Only a publish that never reached Redis needs it.
IDLE_POLL_SECONDS = 10.0
_DECODED = "__record__"  # where a hub message (a dict shared by all inboxes) keeps its decoding


async def _read(
    engine: AsyncEngine, tenant: str, job_id: uuid.UUID, after: int, upto: int | None = None
) -> list[EventRecord]:
    async with transaction(engine, tenant) as tx:
        return await events_after(await tx.tenant(), job_id, after, upto=upto)


def _decoded(message: dict[str, Any]) -> EventRecord:
    """The message as an EventRecord, decoded once for all the subscribers that share it."""
    record = message.get(_DECODED)
    if record is None:
        record = message[_DECODED] = EventRecord.from_json(message)
    return record  # type: ignore[no-any-return]


async def job_event_stream(
    *,
    engine: AsyncEngine,
    hub: EventHub,
    keys: JobKeys,
    tenant: str,
    job_id: uuid.UUID,
    after_seq: int = 0,
    idle_poll: float = IDLE_POLL_SECONDS,
) -> AsyncIterator[EventRecord]:
    """Yield the job's events with seq > after_seq, in order, until its terminal event.

    Raises NotFound if the tenant has no such job (a job of another tenant is not found:
    it is in another schema).
    """
    async with hub.subscribe(keys.channel(tenant, job_id)) as inbox:
        async with transaction(engine, tenant) as tx:
            state = await load_state(await tx.tenant(), job_id)
        if state is None:
            raise NotFound("no such job")
        last = after_seq
        while True:  # replay, in pages
            page = await _read(engine, tenant, job_id, last)
            for record in page:
                yield record
                last = record.seq
                if record.terminal:
                    return
            if not page:
                break
        if state.finished:
            return  # the caller has seen everything already (after_seq at or past the end)
        while True:
            message = await inbox.get(idle_poll * random.uniform(0.8, 1.2))
            if message is None or "seq" not in message:  # quiet, or told to resync
                missed = await _read(engine, tenant, job_id, last)
            else:
                seq = int(message["seq"])
                if seq <= last:
                    continue
                missed = await _read(engine, tenant, job_id, last, upto=seq - 1) if seq > last + 1 else []
                missed.append(_decoded(message))
            for record in missed:
                if record.seq <= last:
                    continue
                yield record
                last = record.seq
                if record.terminal:
                    return
