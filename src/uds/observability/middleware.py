"""Pure-ASGI middleware around every request: request id, log context, request metrics.

- The request id is the client's `X-Request-ID` if well-formed (1-128 of
  `A-Za-z0-9._:+/=-`), else a new one; it is returned in the `X-Request-ID` response
  header (also on WebSocket accept) and carried by every log line and span of the
  request, and by the jobs it starts.
- One `Activity` per request in a context variable (uds.observability.activity): the
  GraphQL layer notes its operation and outcome there.
- Metrics (when on): in-flight gauge, and at the end one `observe_request` with the
  operation, its type (`query`, `mutation`, `subscription`; `http` outside GraphQL) and
  the outcome (`OK`, else the first error's code, else one derived from the status).
"""

from __future__ import annotations

import time
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from uds.http import header
from uds.observability import metrics, tracing
from uds.observability.activity import CURRENT, REQUEST_ID_HEADER, Activity, accepted_request_id

# The outcome when nothing more precise was noted: by HTTP status.
_BY_STATUS = {
    401: "UNAUTHENTICATED",
    403: "FORBIDDEN",
    404: "NOT_FOUND",
    413: "BAD_USER_INPUT",
    429: "RATE_LIMITED",
}


def _outcome_of(status: int) -> str:
    if status < 400:
        return metrics.OK
    if status >= 500:
        return "INTERNAL"
    return _BY_STATUS.get(status, "BAD_USER_INPUT")


class ObserveMiddleware:
    def __init__(self, app: ASGIApp, *, metrics_on: bool = True) -> None:
        self.app = app
        self.metrics_on = metrics_on

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http":
            await self._http(scope, receive, send)
        elif kind == "websocket":
            await self._websocket(scope, receive, send)
        else:
            await self.app(scope, receive, send)

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        request_id = accepted_request_id(header(scope, REQUEST_ID_HEADER))
        activity = Activity(request_id, scope)
        token = CURRENT.set(activity)
        if tracing.enabled():
            tracing.set_attributes(**{"uds.request_id": request_id})
        status = 500
        raw_id = request_id.encode()

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", ()), (b"x-request-id", raw_id)]
            await send(message)

        if not self.metrics_on:
            try:
                await self.app(scope, receive, send_with_id)
            finally:
                CURRENT.reset(token)
            return
        started = time.perf_counter()
        in_flight = metrics.in_flight
        in_flight.count += 1  # the gauge is set from it at each flush (scrapes included)
        try:
            await self.app(scope, receive, send_with_id)
        finally:
            in_flight.count -= 1
            name, op_type = activity.operation, activity.operation_type
            if op_type is None:
                path = scope.get("path", "")
                name, op_type = (None, metrics.UNKNOWN) if path == "/graphql" else (path, "http")
            metrics.observe_request(
                name,
                op_type,
                activity.outcome or _outcome_of(status),
                time.perf_counter() - started,
                tenant=activity.tenant_slug(),
            )
            CURRENT.reset(token)

    async def _websocket(self, scope: Scope, receive: Receive, send: Send) -> None:
        request_id = accepted_request_id(header(scope, REQUEST_ID_HEADER))
        token = CURRENT.set(Activity(request_id, scope))
        raw_id = request_id.encode()

        async def send_with_id(message: Message) -> None:
            if message["type"] == "websocket.accept":
                message["headers"] = [*message.get("headers", ()), (b"x-request-id", raw_id)]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            CURRENT.reset(token)


def observe_middleware(app: ASGIApp, **options: Any) -> ASGIApp:
    """ObserveMiddleware, inside the tracing middleware when tracing is on."""
    inner = ObserveMiddleware(app, **options)
    return tracing.asgi_middleware(inner) if tracing.enabled() else inner
