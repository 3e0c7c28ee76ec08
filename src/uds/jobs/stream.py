"""A job's events as one ordered stream: stored ones after `after_seq`, then live ones.

Used by the `jobEvents` subscription and by `uds jobs watch`. The order of operations is
what makes it gap-free and duplicate-free: subscribe to the job's channel first (confirmed
by Redis), then replay stored events, then take live events, skipping seqs already sent
and reading any skipped-over seqs from the table. A lost message (Redis reconnect, a
publisher that could not reach Redis) is caught by re-reading the table whenever the
channel has been quiet for `idle_poll` seconds. The stream ends after the terminal event.
"""

from __future__ import annotations

import functools
import random
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from uds.errors import NotFound
from uds.jobs.events import TERMINAL_TYPES, EventRecord
from uds.jobs.hub import EventHub
from uds.jobs.keys import JobKeys
from uds.jobs.replay import PAGE, EventReads

# Re-read the table after this long without a message (spread out, so a thousand quiet
# subscribers do not poll in step). Only a publish that never reached Redis needs it.
IDLE_POLL_SECONDS = 10.0
_DECODED = "__record__"  # where a hub message (a dict shared by all inboxes) keeps its decoding


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
    reads: EventReads | None = None,
    live: Callable[[EventRecord], bool] | None = None,
) -> AsyncIterator[EventRecord]:
    """Yield the job's events with seq > after_seq, in order, until its terminal event.

    Raises NotFound if the tenant has no such job (a job of another tenant is not found:
    it is in another schema). `reads` shares the replay's queries between subscribers
    (the API process has one); without it the stream reads `engine` on its own.

    `live`, once the replay is done, is offered each live event that is the next one the
    subscriber needs, while the stream is not in the middle of yielding one: if it
    delivers the event itself (True), the stream does not yield it and counts it as
    sent (and ends after a terminal one). Anything else (a gap, a resync, an event `live`
    declines) takes the path above, in order.
    """
    reads = reads or EventReads(engine)
    async with hub.subscribe(keys.channel(tenant, job_id)) as inbox:
        last = after_seq
        ended = False
        first = True
        while True:  # replay, in pages
            state, page = await reads.after(tenant, job_id, last)
            if state is None and first:
                raise NotFound("no such job")
            first = False
            for record in page:
                if record.seq <= last:
                    continue
                yield record
                last = record.seq
                if record.terminal:
                    return
            if page and (len(page) >= PAGE or state is None or state.finished):
                continue  # maybe more stored events, or the terminal one still to find
            if state is None or not state.finished:
                # A short page is all that was stored when the read began, after the
                # channel's subscription: anything later comes through the inbox.
                break
            # Events are read before the state: a job that ended between the two reads
            # has its terminal event committed by now; one more read finds it, or proves
            # the caller has seen everything already (after_seq at or past the end).
            if ended:
                return
            ended = True
        position = _Position(last)
        if live is not None:
            inbox.sink = functools.partial(_offer, position, live)
        while True:
            message = await inbox.get(idle_poll * random.uniform(0.8, 1.2))
            last = position.last  # `live` may have sent some
            if message is None or "seq" not in message:  # quiet, or told to resync
                state, missed = await reads.after(tenant, job_id, last)
                if not missed and (state is None or state.finished):
                    return  # it ended at or before after_seq (or is gone)
            else:
                seq = int(message["seq"])
                if seq <= last:
                    if message.get("type") in TERMINAL_TYPES:
                        return  # the job ended before the seq the caller asked to start after
                    continue
                missed = []
                if seq > last + 1:  # a copy: pages are shared with the subscribers that read them
                    missed = list((await reads.after(tenant, job_id, last, upto=seq - 1))[1])
                missed.append(_decoded(message))
            for record in missed:
                if record.seq <= position.last:  # sent by `live` while the gap was read
                    continue
                position.busy = True
                try:
                    yield record
                finally:
                    position.busy = False
                position.last = record.seq
                if record.terminal:
                    return


class _Position:
    """The last seq sent to a subscriber, and whether the stream is yielding one now."""

    __slots__ = ("busy", "last")

    def __init__(self, last: int) -> None:
        self.last = last
        self.busy = False


def _offer(position: _Position, live: Callable[[EventRecord], bool], message: dict[str, Any]) -> bool:
    """The inbox's sink: the next event, sent by `live` unless the stream is sending one.

    The terminal event, once sent, is queued all the same (False): the stream wakes up,
    finds it sent already, and ends.
    """
    seq = message.get("seq")
    if position.busy or seq != position.last + 1 or not live(_decoded(message)):
        return False
    position.last = seq
    return message.get("type") not in TERMINAL_TYPES
