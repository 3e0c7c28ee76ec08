"""Reads of a job's stored events, shared by the subscribers that ask for the same at once.

When a thousand clients subscribe to one job at the same moment, each needs the job's
state (is there such a job?) and the events stored so far. `EventReads` runs one query
for all the subscribers asking for the same (tenant, job, after, upto) while it is in
flight, and hands each of them the same records; the next ones to arrive start the next
query. Reads go to the engine it is given: the read-only one in the API process.

A read is one prepared statement sent on the pooled asyncpg connection itself (no ORM
session, no SQLAlchemy compile): the job's row joined with the page of its events. One
statement is one snapshot, so the state always agrees with the events read with it (a
job's terminal event commits with its final state).

`exists` answers "is there such a job?" from the reads of the last few seconds: a
thousand subscribers arriving one after another cost one read for that check, not a
thousand. Only a found job is remembered, and the stream re-reads the job itself after
subscribing (uds.jobs.stream raises NotFound when it is gone by then).

Reads that do not overlap still hand out the same objects when they can: a read whose job
state equals the one of the job's previous read (within SEEN_SECONDS) returns the record
objects that read returned for the same seqs (a stored event never changes, and its
record carries that equal state). The subscribers of a job arriving one after another
then get the same records, so the API executes each replayed event once for all of them
(uds.api.jobs shares an event's result by its record), not once per read.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from dataclasses import replace
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from uds.db import TransactionScope
from uds.jobs.events import EventRecord
from uds.jobs.models import JobState
from uds.tenants.slugs import tenant_schema

Key = tuple[str, uuid.UUID, int, int | None]
PAST_THE_END = 2**31 - 1  # an after_seq beyond any event: a read of the state alone
PAGE = 500
SEEN_SECONDS = 5.0  # how long a found job counts as existing for `exists`
SEEN_MAX = 10_000
RECENT_MAX = 256  # jobs whose last read's records are kept for the next reads to reuse
RECENT_RECORDS = 64  # at most this many records kept per job

_STATE_FIELDS = JobState.__slots__
_JSON_FIELDS = frozenset({"result"})
_EVENT_COLUMNS = ("seq", "at", "type", "progress", "phase", "message", "data")


def _statement(tenant: str) -> str:
    """The replay statement of a tenant: its schema is quoted into the text (no search_path)."""
    schema = '"' + tenant_schema(tenant) + '"'
    state = ", ".join(f"j.{name}::text" if name in _JSON_FIELDS else f"j.{name}" for name in _STATE_FIELDS)
    events = ", ".join(f"e.{name}::text" if name == "data" else f"e.{name}" for name in _EVENT_COLUMNS)
    return (
        f"SELECT {state}, {events} FROM {schema}.jobs AS j LEFT JOIN LATERAL ("
        f"SELECT {', '.join(_EVENT_COLUMNS)} FROM {schema}.job_events"
        " WHERE job_id = j.id AND seq > $2 AND seq <= $3 ORDER BY seq LIMIT $4"
        ") AS e ON true WHERE j.id = $1 ORDER BY e.seq"
    )


_STATEMENTS: dict[str, str] = {}
_N_STATE = len(_STATE_FIELDS)
_RESULT_AT = _STATE_FIELDS.index("result")


def _records(rows: list[Any]) -> tuple[JobState | None, list[EventRecord]]:
    if not rows:
        return None, []
    first = list(rows[0][:_N_STATE])
    if first[_RESULT_AT] is not None:
        first[_RESULT_AT] = json.loads(first[_RESULT_AT])
    state = JobState(*first)
    n = _N_STATE
    return state, [
        EventRecord(
            seq=row[n],
            at=row[n + 1],
            type=row[n + 2],
            progress=row[n + 3],
            phase=row[n + 4],
            message=row[n + 5],
            data=json.loads(row[n + 6]) if row[n + 6] is not None else {},
            job=state,
        )
        for row in rows
        if row[n] is not None  # the job without events: one row of NULLs on the event side
    ]


class EventReads:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._pending: dict[Key, asyncio.Future[tuple[JobState | None, list[EventRecord]]]] = {}
        self._seen: dict[tuple[str, uuid.UUID], float] = {}  # found jobs, when
        # Per job: when it was last read, the state read, and records by seq (see the top).
        self._recent: dict[tuple[str, uuid.UUID], tuple[float, JobState, dict[int, EventRecord]]] = {}
        self.queries = 0  # reads that went to the database (the others shared one)

    async def after(
        self, tenant: str, job_id: uuid.UUID, after_seq: int, *, upto: int | None = None
    ) -> tuple[JobState | None, list[EventRecord]]:
        """The job's state (None: no such job) and its events after `after_seq` (a page)."""
        key = (tenant, job_id, after_seq, upto)
        pending = self._pending.get(key)
        if pending is not None:
            # Shielded: one waiter going away must not cancel the others' read.
            return await asyncio.shield(pending)
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending[key] = future
        try:
            self.queries += 1
            result = await self._read(tenant, job_id, after_seq, upto)
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved: those who wait on it get it, nobody else must
            raise
        finally:
            del self._pending[key]
        if result[0] is not None:
            self._remember(tenant, job_id)
            result = self._reuse(tenant, job_id, result[0], result[1])
        future.set_result(result)
        return result

    async def _read(
        self, tenant: str, job_id: uuid.UUID, after_seq: int, upto: int | None
    ) -> tuple[JobState | None, list[EventRecord]]:
        sql = _STATEMENTS.get(tenant)
        if sql is None:
            sql = _STATEMENTS[tenant] = _statement(tenant)
        scope = TransactionScope(self._engine, tenant, read_engine=self._engine)
        scope.read_only()
        try:
            rows = await scope.fetch(sql, job_id, after_seq, PAST_THE_END if upto is None else upto, PAGE)
        finally:
            await scope.close()
        return _records(rows)

    def _reuse(
        self, tenant: str, job_id: uuid.UUID, state: JobState, records: list[EventRecord]
    ) -> tuple[JobState, list[EventRecord]]:
        """The records of the job's previous read in place of equal ones (see the top)."""
        key, now = (tenant, job_id), time.monotonic()
        recent = self._recent.get(key)
        if recent is None or now - recent[0] >= SEEN_SECONDS or recent[1] != state:
            if len(self._recent) >= RECENT_MAX:
                self._recent.clear()
            known = {r.seq: r for r in records[:RECENT_RECORDS]}
            self._recent[key] = (now, state, known)
            return state, records
        known = recent[2]
        self._recent[key] = (now, recent[1], known)
        shared = []
        for record in records:
            old = known.get(record.seq)
            if old is None:
                if len(known) < RECENT_RECORDS:
                    # Not yet kept: keep this one, with the kept state (equal to its own).
                    old = known[record.seq] = replace(record, job=recent[1])
                else:
                    old = record
            shared.append(old)
        return recent[1], shared

    def _remember(self, tenant: str, job_id: uuid.UUID) -> None:
        if len(self._seen) >= SEEN_MAX:
            self._seen.clear()
        self._seen[(tenant, job_id)] = time.monotonic()

    async def state(self, tenant: str, job_id: uuid.UUID) -> JobState | None:
        return (await self.after(tenant, job_id, PAST_THE_END))[0]

    async def exists(self, tenant: str, job_id: uuid.UUID) -> bool:
        """Whether the tenant has the job: found by a read of the last SEEN_SECONDS, or now."""
        seen = self._seen.get((tenant, job_id))
        if seen is not None and time.monotonic() - seen < SEEN_SECONDS:
            return True
        return await self.state(tenant, job_id) is not None
