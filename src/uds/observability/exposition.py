"""`GET /metrics`, for Prometheus only: an allow-list of client networks, and a token.

A scrape is answered when the client address is in `UDS_METRICS_ALLOW` (default: the
loopback addresses) and, if `UDS_METRICS_TOKEN` is set, it sends
`Authorization: Bearer <token>`. Anything else gets 403 (address) or 401 (token), with
the same GraphQL-shaped error body as the rest of the HTTP surface.

`uds worker` has no HTTP server of its own; with `UDS_WORKER_METRICS_PORT` set it runs
this same endpoint on that port (`serve_worker_metrics`), under the same rules.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import ipaddress
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from uds.errors import Forbidden, UdsError, Unauthenticated
from uds.http import error_body
from uds.observability.metrics import exposition, flush
from uds.settings import Settings

log = logging.getLogger(__name__)

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class MetricsAccess:
    """Who may read /metrics (see the module docstring)."""

    def __init__(self, settings: Settings) -> None:
        self.networks = tuple(ipaddress.ip_network(e, strict=False) for e in settings.metrics_allow)
        self.token = settings.metrics_token.encode() if settings.metrics_token else None

    def refusal(self, host: str | None, authorization: str | None) -> UdsError | None:
        """Why this scrape is refused, or None if it may read the metrics."""
        if not self._allowed(host):
            return Forbidden("/metrics is not served to this address")
        if self.token is not None:
            sent = (authorization or "").encode()
            if not hmac.compare_digest(sent, b"Bearer " + self.token):
                return Unauthenticated("/metrics needs its bearer token")
        return None

    def _allowed(self, host: str | None) -> bool:
        if not host:
            return False
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            return False
        if address.version == 6 and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        return any(address in network for network in self.networks)


def metrics_endpoint(settings: Settings) -> Callable[[Request], Awaitable[Response]]:
    access = MetricsAccess(settings)

    async def metrics(request: Request) -> Response:
        host = request.client.host if request.client else None
        refusal = access.refusal(host, request.headers.get("authorization"))
        if refusal is not None:
            headers = {"www-authenticate": 'Bearer realm="metrics"'} if refusal.http_status == 401 else None
            return Response(error_body(refusal), refusal.http_status, headers, media_type="application/json")
        flush()  # this process's tallied counts (uds.observability.metrics)
        body = await asyncio.to_thread(exposition) if _many_files() else exposition()
        return Response(body, media_type=CONTENT_TYPE)

    return metrics


class MetricsEndpoint:
    """Pure-ASGI: answers `GET /metrics` before authentication (a scrape has its own
    rules, and its bearer token is not a JWT); everything else passes through."""

    def __init__(self, app: ASGIApp, *, settings: Settings) -> None:
        self.app = app
        self.endpoint = metrics_endpoint(settings)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] != "/metrics":
            await self.app(scope, receive, send)
            return
        if scope["method"] not in ("GET", "HEAD"):
            response: Response = PlainTextResponse("Method Not Allowed", 405, {"allow": "GET"})
        else:
            response = await self.endpoint(Request(scope, receive))
        await response(scope, receive, send)


def _many_files() -> bool:
    """Multiprocess scrapes read files: off the event loop."""
    from uds.observability.multiprocess import directory

    return directory() is not None


def _signal_free_server() -> Any:
    import uvicorn

    class SignalFreeServer(uvicorn.Server):
        """The worker's signals belong to arq: this server leaves them alone."""

        def capture_signals(self) -> Any:
            return contextlib.nullcontext()

    return SignalFreeServer


@contextlib.asynccontextmanager
async def serve_worker_metrics(settings: Settings) -> AsyncIterator[Any]:
    """Serve /metrics on UDS_WORKER_METRICS_HOST:PORT while the block runs (if a port is set)."""
    if not settings.worker_metrics_port or not settings.metrics_enabled:
        yield None
        return
    import uvicorn
    from starlette.applications import Starlette

    app = Starlette(routes=[Route("/metrics", metrics_endpoint(settings), methods=["GET"])])
    config = uvicorn.Config(
        app,
        host=settings.worker_metrics_host,
        port=settings.worker_metrics_port,
        log_config=None,
        access_log=False,
        lifespan="off",
    )
    server = _signal_free_server()(config)
    task = asyncio.create_task(server.serve(), name="worker-metrics")
    log.info(
        "worker metrics on http://%s:%d/metrics", settings.worker_metrics_host, settings.worker_metrics_port
    )
    try:
        yield server
    finally:
        server.should_exit = True
        with contextlib.suppress(asyncio.CancelledError):
            await task
