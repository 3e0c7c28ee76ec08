"""What the current request or job is: its request id, tenant, subject, operation, job id.

One `Activity` per request (set by `uds.observability.middleware`) or job run (set by
`uds.workers.execute`), held in a context variable, so every log line written while it
runs can say what it belongs to (`uds.observability.logging`) and the request's metrics
know its operation and outcome (`uds.observability.metrics`). Tasks started inside a
request or job inherit it.

For a request, the principal and tenant are read lazily from the ASGI scope (the auth and
tenant middlewares write them there after this object is made), so nothing is copied on
the request path.

The hooks a GraphQL execution path calls (cheap; a no-op outside a request):

    note_operation("Shop", "query")   # once the document is parsed
    note_outcome("FORBIDDEN")         # the first error's code; nothing when it succeeded
"""

from __future__ import annotations

import os
import re
from collections.abc import MutableMapping
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from uds.observability import tracing

REQUEST_ID_HEADER = b"x-request-id"
REQUEST_ID_MAX = 128
# What a request id taken from a client may look like: it goes into log lines and
# response headers, so no spaces, quotes or control characters, and a bounded length.
_REQUEST_ID = re.compile(rf"[A-Za-z0-9._:+/=-]{{1,{REQUEST_ID_MAX}}}")


@dataclass(slots=True, eq=False)
class Activity:
    """The request or job a log line, span or metric belongs to."""

    request_id: str
    scope: MutableMapping[str, Any] | None = None  # ASGI scope: principal and tenant
    tenant: str | None = None
    subject: str | None = None
    operation: str | None = None
    operation_type: str | None = None
    outcome: str | None = None
    job_id: str | None = None

    def tenant_slug(self) -> str | None:
        if self.tenant is None and self.scope is not None:
            record = self.scope.get("tenant")
            return getattr(record, "slug", None)
        return self.tenant

    def subject_name(self) -> str | None:
        if self.subject is None and self.scope is not None:
            principal = self.scope.get("principal")
            return getattr(principal, "subject", None)
        return self.subject


CURRENT: ContextVar[Activity | None] = ContextVar("uds_activity", default=None)


def current() -> Activity | None:
    return CURRENT.get()


def current_request_id() -> str | None:
    activity = CURRENT.get()
    return activity.request_id if activity is not None else None


def new_request_id() -> str:
    return os.urandom(12).hex()


def accepted_request_id(raw: bytes | None) -> str:
    """The client's X-Request-ID if it is well-formed, else a new one."""
    if raw:
        try:
            value = raw.decode("ascii")
        except UnicodeDecodeError:
            return new_request_id()
        if _REQUEST_ID.fullmatch(value):
            return value
    return new_request_id()


def note_operation(name: str | None, operation_type: str) -> None:
    """The GraphQL operation this request runs (name None: anonymous)."""
    activity = CURRENT.get()
    if activity is not None:
        activity.operation = name or ""
        activity.operation_type = operation_type
        if tracing.enabled():
            tracing.name_request_span(name, operation_type)


def note_outcome(code: str) -> None:
    """The request's outcome: the code of its first error (the first call wins)."""
    activity = CURRENT.get()
    if activity is not None and activity.outcome is None:
        activity.outcome = code


def note_identity(*, subject: str | None, tenant: str | None) -> None:
    """Principal and tenant found outside the scope (WebSocket connection_init)."""
    activity = CURRENT.get()
    if activity is not None:
        activity.subject, activity.tenant = subject, tenant


def job_meta(kind: str | None = None) -> dict[str, object]:
    """What a job carries from the request that starts it (in its arq payload): its kind,
    the request id, and the trace context when tracing is on."""
    meta: dict[str, object] = {"kind": kind} if kind else {}
    request_id = current_request_id()
    if request_id:
        meta["request_id"] = request_id
    carrier = tracing.inject()
    if carrier:
        meta["trace"] = carrier
    return meta
