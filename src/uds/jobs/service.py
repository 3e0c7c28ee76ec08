"""Starting, reading and cancelling jobs. Session first, keyword-only after; never commits.

`start_job` is what every feature calls (discovery, dashboards, migrations):

    job = await start_job(session, services=ctx.services, kind="discovery",
                          params={"data_source_id": str(ds.id)}, created_by=principal.subject)

The tenant is the one the session is bound to. The job row and its `queued` event are
written in the caller's transaction, and the job is handed to Redis at once, but no
worker can run it before that transaction commits: start_job holds a transaction-scoped
advisory lock on the job id, which the worker takes before it reads the row (a job whose
transaction rolled back is then simply not found, and dropped). If Redis is unreachable
the job is marked FAILED with the reason, in the same transaction: never left QUEUED.
"""

from __future__ import annotations

import json
import logging
import re
import uuid
from datetime import datetime
from typing import TYPE_CHECKING, Any

from redis.exceptions import RedisError
from sqlalchemy import ColumnElement, and_, func, insert, or_, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from uds.errors import BadUserInput, Conflict, NotFound
from uds.jobs.events import JOBS, EventRecord, emit, load_state
from uds.jobs.models import ACTIVE, CANCELLED, FAILED, JOB_COLUMNS, QUEUED, RUNNING, STATUSES, JobState
from uds.observability import events as domain_events
from uds.observability import metrics
from uds.tenants.plans import effective
from uds.tenants.slugs import SCHEMA_PREFIX, is_valid_slug, tenant_schema

if TYPE_CHECKING:
    from uds.services import Services

log = logging.getLogger(__name__)

KIND_RE = re.compile(r"[a-z][a-z0-9_.-]{1,39}")
MAX_PARAMS_BYTES = 64 * 1024
# Advisory lock class for "this job's creating transaction is still open" (two-int form,
# a key space apart from the single-bigint locks of the migration rollout).
GATE_LOCK_CLASS = 0x4A4F42


def tenant_of(session: AsyncSession) -> str:
    """The slug of the tenant whose schema this session's tenant tables map to."""
    bind = session.bind
    options = bind.sync_connection.get_execution_options() if hasattr(bind, "sync_connection") else {}
    schema = (options.get("schema_translate_map") or {}).get(None)
    slug = str(schema or "").removeprefix(SCHEMA_PREFIX).replace("_", "-")
    if not schema or not is_valid_slug(slug) or tenant_schema(slug) != schema:
        raise RuntimeError("start_job needs a tenant session (TransactionScope.tenant())")
    return slug


def gate_lock(job_id: uuid.UUID) -> Any:
    """The statement taking the job's creation gate (held until the transaction ends)."""
    return select(func.pg_advisory_xact_lock(GATE_LOCK_CLASS, func.hashtext(str(job_id))))


async def start_job(
    session: AsyncSession, *, services: Services, kind: str, params: dict[str, Any], created_by: str
) -> JobState:
    """Create a QUEUED job in the session's tenant and enqueue it (runs after commit)."""
    if not isinstance(kind, str) or not KIND_RE.fullmatch(kind):
        raise BadUserInput("job kind must be 2-40 characters: a-z, digits, '_', '.', '-'")
    if not isinstance(params, dict):
        raise BadUserInput("job params must be an object")
    try:
        size = len(json.dumps(params))
    except (TypeError, ValueError):
        raise BadUserInput("job params must be JSON") from None
    if size > MAX_PARAMS_BYTES:
        raise BadUserInput(f"job params must be at most {MAX_PARAMS_BYTES} bytes of JSON")
    if not created_by or len(created_by) > 255:
        raise BadUserInput("created_by must be 1-255 characters")
    tenant = tenant_of(session)
    record = await services.registry.get(tenant)
    if record is None:
        raise NotFound("no such tenant")
    cap = effective(record.plan, record.limits)[1]["max_concurrent_jobs"]

    job_id = uuid.uuid4()
    await session.execute(
        insert(JOBS).values(id=job_id, kind=kind, status=QUEUED, params=params, created_by=created_by)
    )
    await session.execute(gate_lock(job_id))
    queued = await emit(session, job_id, key="queued", type="queued", message="queued")
    assert queued is not None
    await domain_events.job_started(
        session, tenant=tenant, job_id=job_id, kind=kind, params=params, actor=created_by
    )
    try:
        admission = await services.queue.submit(tenant, job_id, cap=cap, kind=kind)
    except (RedisError, OSError) as exc:
        metrics.redis_error("job_queue")
        log.warning("could not enqueue job %s of %s: %s", job_id, tenant, exc)
        failed = await finish(
            session,
            job_id,
            status=FAILED,
            error=f"could not enqueue the job: the job queue (Redis) is unavailable ({exc})",
        )
        assert failed is not None
        return failed.job
    if admission.lost:
        await fail_lost(session, admission.lost)
    metrics.job_queued(kind, tenant)
    return queued.job


async def finish(
    session: AsyncSession,
    job_id: uuid.UUID,
    *,
    status: str,
    error: str | None = None,
    result: dict[str, Any] | None = None,
    attempt: int | None = None,
    message: str | None = None,
) -> EventRecord | None:
    """End an active job with its terminal event; None if it had ended (or `attempt` is stale)."""
    where: list[ColumnElement[bool]] = [JOBS.c.status.in_(ACTIVE)]
    if attempt is not None:
        where.append(JOBS.c.attempts == attempt)
    values: dict[str, Any] = {"status": status, "finished_at": func.now(), "error": error}
    if result is not None:
        values["result"] = result
    ended = await emit(
        session,
        job_id,
        key="end",
        type=status.lower(),
        where=where,
        values=values,
        progress=1.0 if status == "SUCCEEDED" else None,
        message=message or (error if error else status.lower()),
    )
    if ended is not None:  # the same transaction as the job's end: one event per ending
        await domain_events.job_ended(session, tenant=tenant_of(session), job=ended.job)
    return ended


async def fail_lost(session: AsyncSession, job_ids: tuple[str, ...]) -> None:
    """Mark jobs FAILED whose queue entry expired before they got a slot."""
    for raw in job_ids:
        try:
            job_id = uuid.UUID(raw)
        except ValueError:
            continue
        await finish(
            session,
            job_id,
            status=FAILED,
            error="the job waited for a slot longer than its queue entry lives; start it again",
        )


async def get_job(session: AsyncSession, *, job_id: uuid.UUID) -> JobState | None:
    return await load_state(session, job_id)


async def list_jobs(
    session: AsyncSession,
    *,
    status: str | None,
    limit: int,
    before: tuple[datetime, uuid.UUID] | None = None,
) -> list[JobState]:
    """Jobs newest first, optionally of one status, strictly before the (created_at, id) key."""
    query = select(*JOB_COLUMNS).order_by(JOBS.c.created_at.desc(), JOBS.c.id.desc()).limit(limit)
    if status is not None:
        if status not in STATUSES:
            raise BadUserInput(f"status must be one of {', '.join(STATUSES)}")
        query = query.where(JOBS.c.status == status)
    if before is not None:
        at, last_id = before
        query = query.where(or_(JOBS.c.created_at < at, and_(JOBS.c.created_at == at, JOBS.c.id < last_id)))
    return [JobState.from_row(r) for r in (await session.execute(query)).all()]


async def count_active(session: AsyncSession) -> int:
    """Jobs of the session's tenant that are queued or running (a policy's `running_jobs`)."""
    return int(await session.scalar(select(func.count()).where(JOBS.c.status.in_(ACTIVE))) or 0)


async def cancel_job(session: AsyncSession, *, job_id: uuid.UUID) -> tuple[JobState, EventRecord | None]:
    """Cancel a job: a QUEUED one ends CANCELLED at once (its terminal event is returned, to
    publish after commit); a RUNNING one is marked and its worker stops it.
    """
    state = await load_state(session, job_id, lock=True)
    if state is None:
        raise NotFound("no such job")
    if state.status == QUEUED:
        event = await finish(session, job_id, status=CANCELLED, message="cancelled before it started")
        assert event is not None
        metrics.job_ended(state.kind, tenant_of(session), CANCELLED)
        return event.job, event
    if state.status == RUNNING:
        if not state.cancel_requested:
            await session.execute(update(JOBS).where(JOBS.c.id == job_id).values(cancel_requested=True))
        refreshed = await load_state(session, job_id)
        assert refreshed is not None
        return refreshed, None
    raise Conflict(f"the job has already ended ({state.status})")


async def cancel_requested(session: AsyncSession, job_id: uuid.UUID) -> bool:
    return bool(await session.scalar(select(JOBS.c.cancel_requested).where(JOBS.c.id == job_id)))


async def wait_for_creation(session: AsyncSession, job_id: uuid.UUID, *, timeout_s: float) -> None:
    """Block until the transaction that created the job has ended (see the module doc)."""
    await session.execute(text(f"set local lock_timeout = '{int(timeout_s * 1000)}ms'"))
    await session.execute(gate_lock(job_id))
