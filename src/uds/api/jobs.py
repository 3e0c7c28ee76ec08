"""GraphQL for jobs: Job, JobEvent, `job`, `jobs`, `cancelJob` and the `jobEvents` subscription.

`Job` and `StartJobResult` are for every feature that starts a job (startDiscovery,
generateDashboard, migrateTenants): call uds.jobs.service.start_job inside `mutate` and
return `Job.from_state(state)`.
"""

from __future__ import annotations

import contextlib
import enum
import logging
import time
import uuid
from collections.abc import AsyncGenerator
from datetime import datetime
from typing import Annotated, Any

import strawberry
from graphql import GraphQLError
from strawberry.scalars import JSON
from strawberry.types import Info

from uds.api.compiler import JsonList, Keyset, read_json
from uds.api.context import Context
from uds.api.execution import SharedEvent
from uds.api.live import EventFeed, live_events
from uds.api.pagination import Connection, connection, decode_time_id_cursor, page_size, time_id_key
from uds.api.results import Conflict, NotAllowed, NotFound, ValidationError, mutate
from uds.api.rowsource import RowSource, row_source
from uds.errors import BadUserInput, UdsError, Unauthenticated
from uds.errors import NotFound as Missing
from uds.jobs import service
from uds.jobs.events import JOBS, EventRecord, publish
from uds.jobs.models import JobState
from uds.jobs.stream import job_event_stream
from uds.observability.activity import current_request_id, new_request_id
from uds.observability.metrics import SUBSCRIPTIONS

log = logging.getLogger(__name__)


@strawberry.enum
class JobStatus(enum.Enum):
    QUEUED = "QUEUED"
    RUNNING = "RUNNING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"


@strawberry.type(description="A background job (discovery, dashboard generation, ...).")
class Job:
    id: strawberry.ID
    kind: str
    status: JobStatus
    progress: float = strawberry.field(description="From 0 to 1; never decreases.")
    phase: str | None
    message: str | None
    error: str | None = strawberry.field(description="Why the job failed.")
    attempts: int = strawberry.field(description="Runs so far (a run is retried if its worker dies).")
    cancel_requested: bool
    created_by: str
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    result: JSON | None = strawberry.field(description="What the job produced, once SUCCEEDED.")

    @classmethod
    def from_state(cls, state: JobState) -> Job:
        return cls(
            id=strawberry.ID(str(state.id)),
            kind=state.kind,
            status=JobStatus(state.status),
            progress=state.progress,
            phase=state.phase,
            message=state.message,
            error=state.error,
            attempts=state.attempts,
            cancel_requested=state.cancel_requested,
            created_by=state.created_by,
            created_at=state.created_at,
            started_at=state.started_at,
            finished_at=state.finished_at,
            result=state.result,
        )


@strawberry.type(description="One step in a job's life: queued, started, progress, and how it ended.")
class JobEvent:
    seq: int = strawberry.field(description="1, 2, 3, ... per job, without gaps.")
    at: datetime
    type: str = strawberry.field(
        description="queued, started, progress, interrupted, or the last one: succeeded, failed, cancelled."
    )
    progress: float
    phase: str | None
    message: str | None
    data: JSON
    job: Job = strawberry.field(description="The job as of this event (or as of its replay).")

    @classmethod
    def from_record(cls, record: EventRecord) -> JobEvent:
        return cls(
            seq=record.seq,
            at=record.at,
            type=record.type,
            progress=record.progress,
            phase=record.phase,
            message=record.message,
            data=record.data,
            job=Job.from_state(record.job),
        )


# The page `jobs` reads (uds.jobs.service.list_jobs), written as JSON by PostgreSQL.
JOB_LIST = JsonList(
    row_source(RowSource(Job, JOBS)),
    keyset=Keyset("job", "time_id", ("created_at", "id"), descending=True),
    order=(("created_at", True), ("id", True)),
    filters={"status": "status"},
)


StartJobResult = Annotated[
    Job | ValidationError | NotAllowed | NotFound | Conflict, strawberry.union("StartJobResult")
]
CancelJobResult = Annotated[
    Job | ValidationError | NotAllowed | NotFound | Conflict, strawberry.union("CancelJobResult")
]


def _job_id(value: strawberry.ID) -> uuid.UUID:
    try:
        return uuid.UUID(str(value))
    except ValueError:
        raise BadUserInput("id is not a job id") from None


async def job(info: Info[Context, None], id: strawberry.ID) -> Job | None:
    ctx = info.context
    await ctx.authorize("job.read", {"id": str(id)})
    state = await service.get_job(await ctx.tx.tenant(), job_id=_job_id(id))
    return Job.from_state(state) if state is not None else None


async def jobs(
    info: Info[Context, None],
    status: JobStatus | None = None,
    first: int | None = None,
    after: str | None = None,
) -> Connection[Job]:
    ctx = info.context
    await ctx.authorize("job.read")
    size = page_size(first, ctx.services.settings.max_page_size)
    before = decode_time_id_cursor("job", after)
    wanted = status.value if status is not None else None
    fast = await read_json(info, JOB_LIST, size=size, after=before, filters={"status": wanted})
    if fast is not None:
        return fast  # type: ignore[return-value]
    states = await service.list_jobs(await ctx.tx.tenant(), status=wanted, limit=size + 1, before=before)
    return connection(
        [Job.from_state(s) for s in states],
        size=size,
        kind="job",
        key=lambda j: time_id_key(j.created_at, j.id),
    )


async def cancel_job(info: Info[Context, None], id: strawberry.ID) -> CancelJobResult:
    """Cancel a job: a queued one at once, a running one within a second of its work."""
    ctx = info.context
    tenant = ctx.require_tenant().slug
    session = await ctx.tx.tenant()
    try:
        job_id: uuid.UUID | None = uuid.UUID(str(id))
    except ValueError:
        job_id = None
    state = await service.get_job(session, job_id=job_id) if job_id is not None else None
    resource: dict[str, Any] = {"id": str(id)}
    if state is not None:
        resource["owner"] = state.created_by  # its creator may cancel it; others need ADMIN
    done: list[tuple[JobState, EventRecord | None]] = []

    async def work() -> Job:
        if job_id is None:
            raise Missing("no such job")
        done.append(await service.cancel_job(session, job_id=job_id))
        return Job.from_state(done[-1][0])

    result = await mutate(ctx, "job.cancel", work, resource)
    if done and job_id is not None:
        event = done[-1][1]
        services = ctx.services

        async def tell_workers() -> None:
            try:
                if event is not None:  # it had not started: it ends here
                    await publish(services.events, services.queue.keys, tenant, event)
                    await services.queue.withdraw(tenant, job_id)
                else:
                    await services.queue.request_cancel(tenant, job_id)
            except Exception:  # the worker also reads the flag from the job row
                log.warning("could not signal the cancel of job %s", job_id, exc_info=True)

        ctx.after_commit.append(tell_workers)
    return result


async def job_events(
    info: Info[Context, None], job_id: strawberry.ID, after_seq: int | None = None
) -> AsyncGenerator[JobEvent, None]:
    """The job's events after `afterSeq` (default: all), then live ones; ends after the last.

    A coroutine returning the stream (not an async generator itself), so the membership
    and policy checks run when the subscription starts, before any event is read.
    Everything here is shared between subscribers where it can be: the tenant and role
    come from the registry's cache, the decision from the policy cache, the job's
    existence and the replay from reads that serve every subscriber asking at once
    (uds.jobs.replay), and the events from one Redis subscription per job (uds.jobs.hub).
    """
    ctx = info.context
    try:
        principal = ctx.require_principal()
        if principal.expires_at and principal.expires_at < time.time():  # the connection outlived it
            raise Unauthenticated("the token has expired; reconnect with a fresh one")
        await ctx.refresh_membership()
        await ctx.authorize("job.read", {"id": str(job_id)})
        if after_seq is not None and after_seq < 0:
            raise BadUserInput("afterSeq must be 0 or more")
        tenant, jid = ctx.require_tenant().slug, _job_id(job_id)
        services = ctx.services
        if not await services.event_reads.exists(tenant, jid):
            raise Missing("no such job")  # e.g. another tenant's: it is in another schema
        live = live_events(ctx, _shared)  # live events straight to the socket (uds.api.live)
        stream = job_event_stream(
            engine=services.read_engine,
            hub=services.events,
            keys=services.queue.keys,
            tenant=tenant,
            job_id=jid,
            after_seq=after_seq or 0,
            reads=services.event_reads,
            live=live,
        )
    except UdsError as exc:
        raise _graphql_error(exc) from exc
    return EventFeed(_deliver(stream), live)  # type: ignore[return-value]


# The JobEvent (wrapped to be shared, uds.api.execution) of each recent record: every
# subscriber of a job gets the same record object for an event, so the same SharedEvent,
# and the event's selection is executed once for all of them. Holds the record too, so
# its id cannot be reused while the entry lives.
_SHARED: dict[int, tuple[EventRecord, SharedEvent]] = {}
_SHARED_SIZE = 256


def _shared(record: EventRecord) -> SharedEvent:
    hit = _SHARED.get(id(record))
    if hit is not None and hit[0] is record:
        return hit[1]
    shared = SharedEvent(JobEvent.from_record(record))
    if len(_SHARED) >= _SHARED_SIZE:
        del _SHARED[next(iter(_SHARED))]
    _SHARED[id(record)] = (record, shared)
    return shared


async def _deliver(stream: AsyncGenerator[EventRecord, None]) -> AsyncGenerator[JobEvent, None]:
    SUBSCRIPTIONS.inc()
    try:
        async with contextlib.aclosing(stream):
            async for record in stream:
                yield _shared(record)  # type: ignore[misc]
    except UdsError as exc:
        raise _graphql_error(exc) from exc
    except Exception as exc:
        request_id = current_request_id() or new_request_id()
        log.error("internal error in jobEvents (request id %s)", request_id, exc_info=exc)
        raise GraphQLError(
            f"internal error (request id {request_id})",
            extensions={"code": "INTERNAL", "requestId": request_id},
        ) from exc
    finally:
        SUBSCRIPTIONS.dec()


def _graphql_error(exc: UdsError) -> GraphQLError:
    """Subscription errors skip the HTTP view's formatting: give them their code here."""
    extensions: dict[str, Any] = {"code": exc.code}
    if exc.reasons:
        extensions["reasons"] = list(exc.reasons)
    return GraphQLError(exc.message, extensions=extensions)
