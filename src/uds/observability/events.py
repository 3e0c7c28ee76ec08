"""Domain events: written to the outbox in the change's own transaction, as CloudEvents 1.0.

A service that changes something other services care about calls `record(session, ...)`
before it returns; the row commits or rolls back with the change, so an event exists if
and only if its change was committed. `uds.observability.relay` later copies committed
rows to the Redis stream `<UDS_REDIS_PREFIX>events` as CloudEvents in JSON structured mode
(`envelope`), retrying while Redis is away; the event's `id` is the outbox row's id, so a
consumer sees each event once even if a relay is interrupted and sends it again.

`EVENT_TYPES` is the catalogue (docs/events.md describes each type's data). The CloudEvents
`type` is `uds.` + the key, e.g. `uds.tenant.created`.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any

from cloudevents.core.formats.json import JSONFormat
from cloudevents.core.v1.event import CloudEvent
from sqlalchemy import BigInteger, Identity, String, insert
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from uds.db import CoreBase

TYPE_PREFIX = "uds."

# Event type -> what happened (the data of each: docs/events.md).
EVENT_TYPES: Mapping[str, str] = MappingProxyType(
    {
        "tenant.created": "a tenant was provisioned",
        "tenant.suspended": "a tenant was suspended (read-only)",
        "tenant.resumed": "a suspended tenant was resumed",
        "tenant.deleted": "a tenant and its schema were deleted",
        "member.added": "a subject became a member of a tenant",
        "member.updated": "a member's role changed",
        "member.removed": "a member was removed from a tenant",
        "datasource.registered": "a data source was registered",
        "datasource.deleted": "a data source was deleted with its discovery runs",
        "discovery.started": "a discovery job was started",
        "discovery.finished": "a discovery run succeeded, with a summary",
        "discovery.failed": "a discovery run failed, with the reason",
        "dashboard.generated": "a dashboard job succeeded",
        "dashboard.updated": "a dashboard was edited",
        "job.cancelled": "a job ended cancelled",
    }
)


class OutboxEvent(CoreBase):
    """An event committed with its change and not yet relayed to the stream."""

    __tablename__ = "event_outbox"

    seq: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    id: Mapped[uuid.UUID] = mapped_column(unique=True)
    type: Mapped[str] = mapped_column(String(80))
    tenant: Mapped[str | None] = mapped_column(String(40))
    subject: Mapped[str | None] = mapped_column(String(300))
    time: Mapped[datetime]
    data: Mapped[dict[str, Any]] = mapped_column(JSONB)


OUTBOX = OutboxEvent.__table__


async def record(
    session: AsyncSession | AsyncConnection,
    *,
    type: str,
    tenant: str | None,
    subject: str | None = None,
    data: Mapping[str, Any] | None = None,
) -> uuid.UUID:
    """Write an event into the outbox in the caller's transaction; returns its id.

    `tenant` is the slug the event concerns (None for platform-wide ones), `subject` what
    it is about within that tenant (e.g. `datasource/<id>`), `data` JSON-able details.
    """
    if type not in EVENT_TYPES:
        raise ValueError(f"unknown event type {type!r}: add it to EVENT_TYPES and docs/events.md")
    event_id = uuid.uuid4()
    await session.execute(
        insert(OUTBOX).values(
            id=event_id,
            type=type,
            tenant=tenant,
            subject=subject[:300] if subject else None,
            time=datetime.now(UTC),
            data=dict(data or {}),
        )
    )
    return event_id


def envelope(
    *,
    source: str,
    event_id: uuid.UUID,
    type: str,
    tenant: str | None,
    subject: str | None,
    time: datetime,
    data: Mapping[str, Any],
) -> bytes:
    """The event as a CloudEvent 1.0 in JSON structured mode.

    `source` is the deployment's UDS_EVENT_SOURCE; the event's source adds
    `/tenants/<slug>` or `/platform`. The tenant is also the `tenant` extension attribute,
    so consumers can filter without parsing the source.
    """
    attributes: dict[str, Any] = {
        "specversion": "1.0",
        "id": str(event_id),
        "source": f"{source}/tenants/{tenant}" if tenant else f"{source}/platform",
        "type": TYPE_PREFIX + type,
        "time": time,
        "datacontenttype": "application/json",
    }
    if subject:
        attributes["subject"] = subject
    if tenant:
        attributes["tenant"] = tenant
    return JSONFormat().write(CloudEvent(attributes, dict(data)))


# Job lifecycle -> domain events: (kind, status) to event type; CANCELLED of any kind is
# `job.cancelled`. Written by uds.jobs.service in the transaction that changes the job.
_JOB_ENDINGS: Mapping[tuple[str, str], str] = MappingProxyType(
    {
        ("discovery", "SUCCEEDED"): "discovery.finished",
        ("discovery", "FAILED"): "discovery.failed",
        ("dashboard", "SUCCEEDED"): "dashboard.generated",
    }
)
_JOB_STARTS: Mapping[str, str] = MappingProxyType({"discovery": "discovery.started"})


async def job_started(
    session: AsyncSession, *, tenant: str, job_id: uuid.UUID, kind: str, params: Mapping[str, Any], actor: str
) -> None:
    """The event for a job of this kind being started, if it has one."""
    type = _JOB_STARTS.get(kind)
    if type is not None:
        data = {"jobId": str(job_id), "kind": kind, "actor": actor}
        if "data_source_id" in params:
            data["dataSourceId"] = str(params["data_source_id"])
        await record(session, type=type, tenant=tenant, subject=f"job/{job_id}", data=data)


async def job_ended(session: AsyncSession, *, tenant: str, job: Any) -> None:
    """The event for a job (a uds.jobs JobState) that just ended, if its kind has one."""
    type = "job.cancelled" if job.status == "CANCELLED" else _JOB_ENDINGS.get((job.kind, job.status))
    if type is None:
        return
    data: dict[str, Any] = {"jobId": str(job.id), "kind": job.kind, "status": job.status}
    if job.error:
        data["error"] = job.error
    if job.result:
        data["summary" if job.kind == "discovery" else "result"] = job.result
    await record(session, type=type, tenant=tenant, subject=f"job/{job.id}", data=data)
