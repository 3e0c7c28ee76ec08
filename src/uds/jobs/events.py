"""Job events: the one path that appends them, publishes them, and reads them back.

An event is appended in the same transaction that changes its job's row: `emit` locks the
row, takes `last_seq + 1` as the event's seq and inserts the event. Seqs are therefore
dense and commit in order. Each event has a `key` naming what it stands for; emitting an
existing key again (a retried run repeating a progress report) inserts nothing. After
the commit the writer PUBLISHes the event on the job's channel (`publish`); subscribers
replay what they missed from the table (`events_after`).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, func, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from uds.jobs.hub import EventHub
from uds.jobs.keys import JobKeys
from uds.jobs.models import JOB_COLUMNS, Job, JobEvent, JobState
from uds.observability.metrics import redis_error

log = logging.getLogger(__name__)

JOBS = Job.__table__
EVENTS = JobEvent.__table__
TERMINAL_TYPES = frozenset({"succeeded", "failed", "cancelled"})
MAX_MESSAGE = 2000


class DuplicateEvent(Exception):
    """An event with this key exists already; the caller rolls back its transaction."""


@dataclass(frozen=True, slots=True)
class EventRecord:
    """One job event, with the state of its job (at the event, or when it was read back)."""

    seq: int
    at: datetime
    type: str
    progress: float
    phase: str | None
    message: str | None
    job: JobState
    data: dict[str, Any] = field(default_factory=dict)

    @property
    def terminal(self) -> bool:
        return self.type in TERMINAL_TYPES

    def to_json(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "at": self.at.isoformat(),
            "type": self.type,
            "progress": self.progress,
            "phase": self.phase,
            "message": self.message,
            "data": self.data,
            "job": self.job.to_json(),
        }

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> EventRecord:
        return cls(
            seq=int(raw["seq"]),
            at=datetime.fromisoformat(raw["at"]),
            type=str(raw["type"]),
            progress=float(raw["progress"]),
            phase=raw.get("phase"),
            message=raw.get("message"),
            data=dict(raw.get("data") or {}),
            job=JobState.from_json(raw["job"]),
        )


async def emit(
    session: AsyncSession,
    job_id: uuid.UUID,
    *,
    key: str,
    type: str,
    where: Sequence[ColumnElement[bool]] = (),
    values: dict[str, Any] | None = None,
    progress: float | None = None,
    phase: str | None = None,
    message: str | None = None,
    data: dict[str, Any] | None = None,
) -> EventRecord | None:
    """Apply `values` to the job row and append one event, in the caller's transaction.

    Returns None (and changes nothing) when the row does not match `where` (e.g. the run
    was superseded, or the job already ended). The event's progress is the job's, which
    never decreases. Raises DuplicateEvent if an event with `key` exists.
    """
    changes: dict[str, Any] = dict(values or {})
    changes["last_seq"] = JOBS.c.last_seq + 1
    if progress is not None:
        changes["progress"] = func.greatest(JOBS.c.progress, progress)
    if phase is not None:
        changes["phase"] = phase[:80]
    if message is not None:
        message = message[:MAX_MESSAGE]
        changes["message"] = message
    row = (
        await session.execute(
            update(JOBS)
            .where(JOBS.c.id == job_id, *where)
            .values(**changes)
            .returning(*JOB_COLUMNS, JOBS.c.last_seq)
        )
    ).first()
    if row is None:
        return None
    state = JobState.from_row(row)
    at = await session.scalar(
        insert(EVENTS)
        .values(
            job_id=job_id,
            seq=row.last_seq,
            key=key[:200],
            type=type,
            progress=state.progress,
            phase=state.phase,
            message=message,
            data=data or {},
        )
        .on_conflict_do_nothing(constraint="uq_job_events_job_id_key")
        .returning(EVENTS.c.at)
    )
    if at is None:
        raise DuplicateEvent(key)
    return EventRecord(
        seq=row.last_seq,
        at=at,
        type=type,
        progress=state.progress,
        phase=state.phase,
        message=message,
        data=data or {},
        job=state,
    )


async def publish(hub: EventHub, keys: JobKeys, tenant: str, record: EventRecord) -> None:
    """PUBLISH a committed event; a failure only delays subscribers (they poll the table)."""
    try:
        await hub.publish(keys.channel(tenant, record.job.id), record.to_json())
    except Exception:
        redis_error("job_events")
        log.warning("could not publish event %s of job %s", record.seq, record.job.id, exc_info=True)


async def load_state(session: AsyncSession, job_id: uuid.UUID, *, lock: bool = False) -> JobState | None:
    query = select(*JOB_COLUMNS).where(JOBS.c.id == job_id)
    if lock:
        # NO KEY UPDATE: a running step's inserts hold KEY SHARE on the row (foreign keys),
        # which this does not wait for; FOR UPDATE would wait for the whole step.
        query = query.with_for_update(key_share=True)  # FOR NO KEY UPDATE
    row = (await session.execute(query)).first()
    return JobState.from_row(row) if row is not None else None


async def events_after(
    session: AsyncSession, job_id: uuid.UUID, after_seq: int, *, upto: int | None = None, limit: int = 500
) -> list[EventRecord]:
    """Stored events with seq > after_seq (and <= upto), oldest first, with the job's state now."""
    return (await events_and_state(session, job_id, after_seq, upto=upto, limit=limit))[1]


async def events_and_state(
    session: AsyncSession, job_id: uuid.UUID, after_seq: int, *, upto: int | None = None, limit: int = 500
) -> tuple[JobState | None, list[EventRecord]]:
    """The job's state (None: no such job) and its stored events after `after_seq`.

    The events are read before the state: each statement sees what was committed when it
    started (READ COMMITTED, or autocommit), and a job's terminal event commits with its
    final state, so the state read second is at least as new as the last event. The other
    way round, a job finishing in between gave its "succeeded" event with a state still
    RUNNING.
    """
    query = (
        select(EVENTS.c.seq, EVENTS.c.at, EVENTS.c.type, EVENTS.c.progress, EVENTS.c.phase)
        .add_columns(EVENTS.c.message, EVENTS.c.data)
        .where(EVENTS.c.job_id == job_id, EVENTS.c.seq > after_seq)
        .order_by(EVENTS.c.seq)
        .limit(limit)
    )
    if upto is not None:
        query = query.where(EVENTS.c.seq <= upto)
    rows = (await session.execute(query)).all()
    state = await load_state(session, job_id)
    if state is None:
        return None, []
    return state, [
        EventRecord(
            seq=r.seq,
            at=r.at,
            type=r.type,
            progress=r.progress,
            phase=r.phase,
            message=r.message,
            data=r.data or {},
            job=state,
        )
        for r in rows
    ]
