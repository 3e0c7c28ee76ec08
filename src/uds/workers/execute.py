"""The arq function every job runs through: `run_job(ctx, tenant, job_id)`.

One run: take the tenant slot (uds.jobs.queue), wait until the job's creating transaction
has ended, then in one transaction check the job (still active, not cancelled, under its
attempt limit, known kind, `job.start` allowed for its creator) and mark it RUNNING with
`attempts + 1` and a `started` event. The handler then runs under its kind's timeout
while a heartbeat renews the run's leases every HEARTBEAT seconds and watches for a
cancel. The outcome (SUCCEEDED with the result, FAILED with the error, CANCELLED) is
written with the terminal event, the slot is released and the tenant's next job admitted.

arq re-runs a job when this function is cancelled (worker shutdown) or its worker died
(the in-progress key expires with the lease): the new run resumes after the last
completed step (uds.jobs.runtime). Bookkeeping that fails (database unreachable) raises
Retry, so the job is re-run later instead of being dropped.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
import uuid
from dataclasses import dataclass
from typing import Any

from arq import Retry
from redis.exceptions import RedisError
from sqlalchemy import func, select
from sqlalchemy.exc import DBAPIError, OperationalError

from uds.auth.principal import Principal
from uds.db import transaction
from uds.errors import PolicyUnavailable, UdsError
from uds.jobs.events import JOBS, EventRecord, emit, load_state, publish
from uds.jobs.models import ACTIVE, CANCELLED, FAILED, RUNNING, SUCCEEDED, JobState, JobStep
from uds.jobs.runtime import KINDS, JobCancelled, JobContext, JobKind, JobSuperseded
from uds.jobs.service import cancel_requested, fail_lost, finish, wait_for_creation
from uds.observability import metrics, tracing
from uds.observability.activity import CURRENT, Activity, current
from uds.policies import PolicyInput, TenantFacts
from uds.services import Services
from uds.tenants.plans import effective
from uds.tenants.registry import TenantRecord

log = logging.getLogger(__name__)

HEARTBEAT = 0.5  # seconds between lease renewals and cancel checks of a running job
DB_CANCEL_CHECK_EVERY = 10  # heartbeats; the database is the truth if Redis lost the flag
RETRY_WHEN_FULL = 1.0  # seconds; a run that found its tenant's slots taken tries again
RETRY_AFTER_ERROR = 5.0  # seconds; after the database or Redis failed our bookkeeping
GATE_TIMEOUT = 30.0  # seconds to wait for the transaction that created the job
STEPS = JobStep.__table__


@dataclass(slots=True)
class Watch:
    """What the heartbeat watches: the run's handler, once it has one."""

    job: JobContext | None = None
    task: asyncio.Task[Any] | None = None


@dataclass(frozen=True, slots=True)
class Claim:
    state: JobState
    kind: JobKind
    params: dict[str, Any]
    done_steps: dict[str, dict[str, Any]]


async def run_job(ctx: dict[str, Any], tenant: str, job_id: str, meta: dict[str, Any] | None = None) -> None:
    """One run of a job. `meta` (uds.observability.activity.job_meta) carries the id and
    trace context of the request that started it, for the run's log lines and spans."""
    meta = meta if isinstance(meta, dict) else {}
    request_id, kind = meta.get("request_id"), meta.get("kind")
    activity = Activity(request_id if isinstance(request_id, str) else "", tenant=tenant, job_id=job_id)
    activity.operation = kind if isinstance(kind, str) else "job"  # the row's kind, once read
    token = CURRENT.set(activity)
    try:
        trace_carrier = meta.get("trace")
        carrier = trace_carrier if isinstance(trace_carrier, dict) else None
        with tracing.job_span(carrier, **{"uds.job_id": job_id, "uds.tenant": tenant}):
            await _run_job(ctx, tenant, job_id)
    finally:
        CURRENT.reset(token)


async def _run_job(ctx: dict[str, Any], tenant: str, job_id: str) -> None:
    services: Services = ctx["services"]
    queue = services.queue
    jid = uuid.UUID(job_id)
    record = await services.registry.get(tenant)
    if record is None:  # the tenant was deleted, and its jobs with it
        await queue.release(tenant, jid)
        return
    cap = effective(record.plan, record.limits)[1]["max_concurrent_jobs"]
    if not await queue.acquire(tenant, jid, cap=cap):
        raise Retry(defer=RETRY_WHEN_FULL)
    watch = Watch()
    heartbeat = asyncio.create_task(_heartbeat(services, tenant, jid, watch), name=f"heartbeat {jid}")
    try:
        claim = await _claim(services, record, jid)
        if claim is not None:
            await _run(services, tenant, claim, watch)
    except JobSuperseded:
        return  # a newer run owns the job (and the slot, which has the job's id)
    except (DBAPIError, OperationalError, OSError, PolicyUnavailable) as exc:
        log.warning("job %s of %s: bookkeeping failed (%s); will retry", job_id, tenant, exc)
        raise Retry(defer=RETRY_AFTER_ERROR) from exc
    except Exception as exc:
        # A bug in this runner: record it on the job rather than let arq drop the job.
        log.exception("job %s of %s: the job runner failed", job_id, tenant)
        try:
            async with transaction(services.engine, tenant) as tx:
                event = await finish(
                    await tx.tenant(), jid, status=FAILED, error=f"internal error in the job runner: {exc!r}"
                )
        except Exception:
            raise Retry(defer=RETRY_AFTER_ERROR) from exc
        if event is not None:
            await publish(services.events, queue.keys, tenant, event)
    finally:
        heartbeat.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await heartbeat
    admission = await queue.release(tenant, jid)
    if admission.lost:
        async with transaction(services.engine, tenant) as tx:
            await fail_lost(await tx.tenant(), admission.lost)


async def _claim(services: Services, record: TenantRecord, job_id: uuid.UUID) -> Claim | None:
    """Check the job and mark this run RUNNING; None if it must not run (then it has ended)."""
    settings = services.settings
    events: list[EventRecord] = []
    claim: Claim | None = None
    async with transaction(services.engine, record.slug) as tx:
        session = await tx.tenant()
        await wait_for_creation(session, job_id, timeout_s=GATE_TIMEOUT)
        state = await load_state(session, job_id, lock=True)
        if state is None or state.finished:
            return None  # never committed (its request rolled back), or over already
        kind = KINDS.get(state.kind)
        refusal: tuple[str, str] | None = None
        if state.cancel_requested:
            refusal = (CANCELLED, "")
        elif state.attempts >= settings.job_max_attempts:
            refusal = (
                FAILED,
                f"gave up after {state.attempts} runs: the worker running it stopped each time "
                "(killed, or lost its lease)",
            )
        elif kind is None:
            refusal = (FAILED, f"unknown job kind {state.kind!r} (is its module in JOB_MODULES?)")
        else:
            allowed, reasons = await _may_start(services, record, state)
            if not allowed:
                refusal = (FAILED, f"not allowed: job.start ({'; '.join(reasons)})")
        _note_job(state.kind, state.created_by)
        if refusal is not None:
            status, error = refusal
            event = await finish(session, job_id, status=status, error=error or None)
            events.extend([event] if event else [])
            if event is not None:
                metrics.job_ended(state.kind, record.slug, status)
        else:
            assert kind is not None
            attempt = state.attempts + 1
            started = await emit(
                session,
                job_id,
                # A run interrupted by a worker shutdown gives its attempt back, so the
                # number can repeat: the key names this claim, not the number.
                key=f"start:{attempt}:{uuid.uuid4().hex[:8]}",
                type="started",
                where=[JOBS.c.status.in_(ACTIVE)],
                values={
                    "status": RUNNING,
                    "attempts": attempt,
                    "started_at": func.coalesce(JOBS.c.started_at, func.now()),
                },
                message=f"started (run {attempt})" if attempt > 1 else "started",
            )
            assert started is not None
            events.append(started)
            params = await session.scalar(select(JOBS.c.params).where(JOBS.c.id == job_id))
            steps = (
                await session.execute(select(STEPS.c.step, STEPS.c.state).where(STEPS.c.job_id == job_id))
            ).all()
            claim = Claim(started.job, kind, dict(params or {}), {s.step: dict(s.state or {}) for s in steps})
            if attempt == 1 and started.job.started_at is not None:
                wait = (started.job.started_at - started.job.created_at).total_seconds()
                metrics.job_admitted(record.plan, wait)
    for event in events:
        await publish(services.events, services.queue.keys, record.slug, event)
    return claim


async def _may_start(
    services: Services, record: TenantRecord, state: JobState
) -> tuple[bool, tuple[str, ...]]:
    """The `job.start` policy for the job's creator, as a user, in the job's tenant."""
    role = await services.registry.role_of(record, state.created_by)
    decision = await services.policy.decide(
        PolicyInput(
            principal=Principal(subject=state.created_by, issuer=services.settings.own_issuer, kind="user"),
            action="job.start",
            tenant_role=role,
            tenant=TenantFacts.from_record(record),
            resource={"id": str(state.id), "kind": state.kind, "owner": state.created_by},
        )
    )
    return decision.allow, decision.reasons


async def _run(services: Services, tenant: str, claim: Claim, watch: Watch) -> None:
    state = claim.state
    job = JobContext(
        services=services,
        tenant=tenant,
        job_id=state.id,
        kind=state.kind,
        params=claim.params,
        attempt=state.attempts,
        created_by=state.created_by,
        done_steps=claim.done_steps,
    )
    task = asyncio.create_task(claim.kind.handler(job), name=f"job {state.id}")
    watch.job, watch.task = job, task
    status, error, result = FAILED, "", None
    started = time.monotonic()
    running = metrics.job_running(state.kind)
    try:
        async with asyncio.timeout(claim.kind.timeout) as deadline:
            try:
                result = await task
            except asyncio.CancelledError:
                if deadline.expired():
                    raise
                if asyncio.current_task().cancelling():  # type: ignore[union-attr]
                    # The worker is shutting down: arq runs the job again elsewhere.
                    await asyncio.shield(_interrupted(services, tenant, job))
                    raise
                status = CANCELLED  # the heartbeat stopped it for a cancel request
            else:
                status = SUCCEEDED
    except TimeoutError:
        if not deadline.expired():
            status, error = FAILED, "TimeoutError: " + _describe(task)
        else:
            status, error = FAILED, f"timed out after {claim.kind.timeout:g}s"
    except JobCancelled:
        status = CANCELLED
    except JobSuperseded:
        log.warning("job %s: run %s was superseded by a newer run", state.id, state.attempts)
        raise
    except UdsError as exc:
        status, error = FAILED, exc.message
    except Exception as exc:
        log.exception("job %s (%s) failed", state.id, state.kind)
        status, error = FAILED, f"{type(exc).__name__}: {exc}"
    finally:
        watch.task = None
        running.dec()
    if status == SUCCEEDED:
        result, error = _checked_result(result)
        if error:
            status = FAILED
    await _finish(services, tenant, job, status=status, error=error or None, result=result)
    metrics.job_ended(state.kind, tenant, status, time.monotonic() - started)


def _note_job(kind: str, created_by: str) -> None:
    """The run's log lines and span name its kind and the subject that started it."""
    activity = current()
    if activity is not None:
        activity.operation, activity.subject = kind, created_by
    if tracing.enabled():
        tracing.rename_span(f"job {kind}", **{"uds.job_kind": kind})


async def _interrupted(services: Services, tenant: str, job: JobContext) -> None:
    """Record a run stopped by a worker shutdown; it does not count as an attempt.

    job_max_attempts is there to stop a job that kills its worker every time, not to fail
    long jobs across a few rolling restarts.
    """
    try:
        async with transaction(services.engine, tenant) as tx:
            event = await emit(
                await tx.tenant(),
                job.job_id,
                key=f"interrupted:{uuid.uuid4().hex[:8]}",
                type="interrupted",
                where=[JOBS.c.status == RUNNING, JOBS.c.attempts == job.attempt],
                values={"attempts": JOBS.c.attempts - 1},
                message="the worker stopped; the job resumes on another run",
            )
        if event is not None:
            await publish(services.events, services.queue.keys, tenant, event)
    except Exception:
        log.warning("job %s: could not record the interruption", job.job_id, exc_info=True)


def _describe(task: asyncio.Task[Any]) -> str:
    if task.done() and not task.cancelled() and task.exception() is not None:
        return str(task.exception())
    return "timed out"


def _checked_result(result: Any) -> tuple[dict[str, Any] | None, str]:
    if result is None:
        return None, ""
    if not isinstance(result, dict):
        return None, f"the job returned {type(result).__name__}, not a dict"
    try:
        json.dumps(result)
    except (TypeError, ValueError) as exc:
        return None, f"the job's result is not JSON: {exc}"
    return result, ""


async def _finish(
    services: Services, tenant: str, job: JobContext, *, status: str, error: str | None, result: Any
) -> None:
    async with transaction(services.engine, tenant) as tx:
        event = await finish(
            await tx.tenant(),
            job.job_id,
            status=status,
            error=error,
            result=result,
            attempt=job.attempt,
            message=job.final_message if status == SUCCEEDED else None,
        )
    if event is None:
        raise JobSuperseded(f"run {job.attempt} of job {job.job_id} ended after it was superseded")
    await publish(services.events, services.queue.keys, tenant, event)
    if status == CANCELLED:
        with contextlib.suppress(Exception):
            await services.queue.redis.delete(services.queue.keys.cancel_flag(tenant, job.job_id))


async def _heartbeat(services: Services, tenant: str, job_id: uuid.UUID, watch: Watch) -> None:
    """Renew the run's leases from its start (claim included) to its end; while the handler
    runs, stop it within a heartbeat of a cancel request.
    """
    beats = 0
    while True:
        await asyncio.sleep(HEARTBEAT)
        beats += 1
        flagged = False
        try:
            flagged = await services.queue.heartbeat(tenant, job_id)
        except Exception:
            metrics.redis_error("job_heartbeat")
            log.warning("job %s: heartbeat could not reach Redis", job_id, exc_info=True)
        job, task = watch.job, watch.task
        if job is None or task is None or job.cancel_seen or (not flagged and beats % DB_CANCEL_CHECK_EVERY):
            continue
        try:
            async with transaction(services.engine, tenant) as tx:
                confirmed = await cancel_requested(await tx.tenant(), job_id)
        except Exception:
            log.warning("job %s: could not read its cancel flag", job_id, exc_info=True)
            continue
        if confirmed and watch.task is task and not task.done():
            job.cancel_seen = True
            task.cancel()


async def sweep(services: Services, *, every: float = 1.0) -> None:
    """Admit waiting jobs of every tenant (covers slots freed by expired leases), forever."""
    while True:
        try:
            depth: dict[str, int] = {}
            for tenant in await services.queue.waiting_tenants():
                admission = await services.queue.admit(tenant)
                if admission.lost:
                    async with transaction(services.engine, tenant) as tx:
                        await fail_lost(await tx.tenant(), admission.lost)
                record = await services.registry.get(tenant)
                if record is not None:
                    waiting = await services.queue.waiting_count(tenant)
                    depth[record.plan] = depth.get(record.plan, 0) + waiting
            metrics.queue_depth(depth)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            if isinstance(exc, RedisError | OSError):
                metrics.redis_error("job_sweep")
            log.warning("admission sweep failed; retrying", exc_info=True)
        await asyncio.sleep(every)
