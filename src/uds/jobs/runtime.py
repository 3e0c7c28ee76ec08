"""What a job handler sees: `JobContext`, the `job_kind` registry, and JobCancelled.

    @job_kind("discovery", timeout=3600)
    async def discover(job: JobContext) -> dict | None:
        for table in tables:
            async with job.step(f"profile:{table}") as todo:
                if todo:
                    async with job.transaction() as tx:
                        ...  # writes, committed together with the step's record
            await job.progress(done / total, phase="profile", message=table)
        return {"tables": total}  # the job's result

A job runs at least once and may be re-run after its worker died; steps make that safe.
`job.step(key)` yields False for a step completed by an earlier run, and records the step
as done on exit, in the same transaction as the writes the body made through
`job.transaction()`: a step's effects commit exactly once. Progress events are keyed by
the step they follow and their count since it, so a re-run repeating a report appends
nothing. The run with the highest attempt number owns the job: an older run that is still
alive (a paused worker whose lease expired) gets JobSuperseded on its next write.
"""

from __future__ import annotations

import contextlib
import math
import re
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import insert, update

from uds.db import TransactionScope, transaction
from uds.jobs.events import JOBS, DuplicateEvent, EventRecord, emit, publish
from uds.jobs.models import RUNNING, JobStep
from uds.jobs.service import KIND_RE, cancel_requested
from uds.observability import tracing

if TYPE_CHECKING:
    from uds.services import Services

STEPS = JobStep.__table__
STEP_KEY_RE = re.compile(r"\S.{0,119}", re.DOTALL)
# check_cancelled reads the database at most this often (the heartbeat also watches).
CANCEL_CHECK_SECONDS = 0.25

Handler = Callable[["JobContext"], Awaitable[dict[str, Any] | None]]


class JobCancelled(Exception):
    """Raised inside a job (by progress/check_cancelled) once a cancel was requested."""


class JobSuperseded(Exception):
    """This run lost its job to a newer run of it; it must stop without writing more."""


@dataclass(frozen=True, slots=True)
class JobKind:
    name: str
    handler: Handler
    timeout: float


KINDS: dict[str, JobKind] = {}


def job_kind(name: str, *, timeout: float) -> Callable[[Handler], Handler]:
    """Register `async def handler(job: JobContext) -> dict | None` as job kind `name`.

    `timeout` (seconds) bounds one run; a run over it fails the job with a clear error.
    The module must be listed in uds.workers.settings.JOB_MODULES for workers to load it.
    """
    if not KIND_RE.fullmatch(name):
        raise ValueError(f"job kind {name!r} must match {KIND_RE.pattern}")
    if not (isinstance(timeout, int | float) and 0 < timeout < math.inf):
        raise ValueError("job timeout must be a positive number of seconds")

    def register(handler: Handler) -> Handler:
        existing = KINDS.get(name)
        if existing is not None and existing.handler.__qualname__ != handler.__qualname__:
            raise RuntimeError(f"job kind {name!r} is registered twice")
        KINDS[name] = JobKind(name, handler, float(timeout))
        return handler

    return register


class JobContext:
    """One run of one job: its identity, parameters, and the ways to report and persist."""

    def __init__(
        self,
        *,
        services: Services,
        tenant: str,
        job_id: uuid.UUID,
        kind: str,
        params: dict[str, Any],
        attempt: int,
        created_by: str,
        done_steps: dict[str, dict[str, Any]],
    ) -> None:
        self.services = services
        self.tenant = tenant
        self.job_id = job_id
        self.kind = kind
        self.params = params
        self.attempt = attempt
        self.created_by = created_by
        self.cancel_seen = False  # set by the worker's heartbeat when a cancel is requested
        # The job's message once it SUCCEEDED (default "succeeded"), e.g. a summary.
        self.final_message: str | None = None
        self._done = dict(done_steps)
        self._scope = ""  # the step last entered: progress keys count from it
        self._reports = 0
        self._step: str | None = None
        self._step_tx: TransactionScope | None = None
        self._step_state: dict[str, Any] = {}
        self._last_cancel_check = 0.0

    async def progress(
        self,
        fraction: float,
        *,
        phase: str | None = None,
        message: str | None = None,
        data: dict[str, Any] | None = None,
    ) -> None:
        """Report progress (0..1; the job's progress never goes down) as an event.

        Appends a job event and updates the job row in one short transaction, publishes
        the event, then raises JobCancelled if a cancel was requested.
        """
        if not isinstance(fraction, int | float) or not 0.0 <= fraction <= 1.0:
            raise ValueError("progress fraction must be a number from 0 to 1")
        self._reports += 1
        key = f"{self._scope}#{self._reports}"
        record: EventRecord | None = None
        try:
            async with transaction(self.services.engine, self.tenant) as tx:
                record = await emit(
                    await tx.tenant(),
                    self.job_id,
                    key=key,
                    type="progress",
                    where=self._owned(),
                    progress=float(fraction),
                    phase=phase,
                    message=message,
                    data=data,
                )
                if record is None:
                    raise JobSuperseded(f"run {self.attempt} of job {self.job_id} was superseded")
        except DuplicateEvent:
            # A re-run repeating a report it made before: nothing new to say.
            await self.check_cancelled(force=True)
            return
        await publish(self.services.events, self.services.queue.keys, self.tenant, record)
        if record.job.cancel_requested or self.cancel_seen:
            self.cancel_seen = True
            raise JobCancelled("cancel requested")

    async def check_cancelled(self, *, force: bool = False) -> None:
        """Raise JobCancelled if a cancel was requested; cheap enough for a tight loop."""
        if self.cancel_seen:
            raise JobCancelled("cancel requested")
        now = time.monotonic()
        if not force and now - self._last_cancel_check < CANCEL_CHECK_SECONDS:
            return
        self._last_cancel_check = now
        async with transaction(self.services.engine, self.tenant) as tx:
            flagged = await cancel_requested(await tx.tenant(), self.job_id)
        if flagged:
            self.cancel_seen = True
            raise JobCancelled("cancel requested")

    @contextlib.asynccontextmanager
    async def step(self, key: str) -> AsyncIterator[bool]:
        """A resumable unit of work; yields False if an earlier run completed it.

        On a clean exit the step is recorded (job_steps) in the same transaction as the
        writes made through `job.transaction()` inside it, and that transaction commits.
        If the body raises, those writes roll back and the step stays to do.
        """
        if not isinstance(key, str) or not STEP_KEY_RE.fullmatch(key):
            raise ValueError("a step key is 1-120 characters and does not start with a space")
        if self._step is not None:
            raise RuntimeError("job steps do not nest")
        self._scope, self._reports = key, 0
        if key in self._done:
            yield False
            return
        self._step, self._step_tx, self._step_state = key, None, {}
        try:
            with tracing.span("job.step", **{"uds.step": key}):
                yield True
                await self._record_step(key)
        except BaseException:
            if self._step_tx is not None:
                await self._step_tx.rollback()
            raise
        finally:
            if self._step_tx is not None:
                await self._step_tx.close()
            self._step, self._step_tx = None, None

    async def _record_step(self, key: str) -> None:
        tx = self._step_tx or TransactionScope(self.services.engine, self.tenant)
        self._step_tx = tx
        session = await tx.tenant()
        owned = await session.scalar(
            update(JOBS)
            .where(JOBS.c.id == self.job_id, *self._owned())
            .values(status=RUNNING)
            .returning(JOBS.c.id)
        )
        if owned is None:
            raise JobSuperseded(f"run {self.attempt} of job {self.job_id} was superseded")
        state = dict(self._step_state)
        await session.execute(insert(STEPS).values(job_id=self.job_id, step=key, state=state))
        await tx.commit()
        self._done[key] = state

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[TransactionScope]:
        """A tenant-scoped TransactionScope (uds.db).

        Inside a step it is the step's transaction (committed when the step ends, with the
        step's record); elsewhere it commits when the block ends.
        """
        if self._step is not None:
            if self._step_tx is None:
                self._step_tx = TransactionScope(self.services.engine, self.tenant)
            yield self._step_tx
            return
        async with transaction(self.services.engine, self.tenant) as tx:
            yield tx

    def save_state(self, state: dict[str, Any]) -> None:
        """Inside a step: JSON to record with it, readable later through step_state(key)."""
        if self._step is None:
            raise RuntimeError("save_state belongs inside a step")
        self._step_state = dict(state)

    def step_state(self, key: str) -> dict[str, Any] | None:
        """What a completed step saved (this run or an earlier one); None if not completed."""
        return self._done.get(key)

    def _owned(self) -> list[Any]:
        return [JOBS.c.status == RUNNING, JOBS.c.attempts == self.attempt]
