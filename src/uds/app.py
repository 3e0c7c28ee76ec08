"""create_app(settings) -> the Starlette application; its lifespan owns every resource."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

from sqlalchemy import text
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route, WebSocketRoute

from uds.api.view import GraphQLView
from uds.auth.middleware import AuthMiddleware
from uds.auth.oauth import token_endpoint
from uds.cors import cors_middleware
from uds.limits import BodyLimitMiddleware
from uds.mcp.http import McpBridge, McpMiddleware
from uds.observability.exposition import MetricsEndpoint
from uds.observability.metrics import configure_metrics, flush_every
from uds.observability.middleware import observe_middleware
from uds.observability.multiprocess import process_stopped
from uds.runtime import collect_less_often, settle_heap
from uds.services import Services
from uds.settings import Settings
from uds.tenants.routing import TenantMiddleware
from uds.web import routes as web
from uds.web.assets import static_file

READY_TIMEOUT = 2.0


def create_app(settings: Settings) -> Starlette:
    """The UDS ASGI app for servers named in `settings` (database and Redis URLs set)."""
    endpoint = _GraphQLEndpoint()
    mcp = McpBridge(settings)  # POST /mcp (uds.mcp.http)
    configure_metrics(settings)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[dict[str, Any]]:
        services = await Services.start(settings)
        services.relay.start()
        endpoint.view = GraphQLView(services)
        # Everything built so far lives as long as the process: move it out of the
        # collector's sight, so collections during fan-out only scan per-request objects.
        settle_heap()
        # Request counts are tallied in process; this applies them every second.
        flusher = (
            asyncio.create_task(flush_every(), name="uds-metrics-flush") if settings.metrics_enabled else None
        )
        try:
            async with mcp.running(endpoint.view):
                yield {"services": services}
        finally:
            if flusher is not None:
                flusher.cancel()
            await services.close()
            process_stopped()

    async def healthz(request: Request) -> JSONResponse:
        return JSONResponse({"status": "ok"})

    async def readyz(request: Request) -> JSONResponse:
        services: Services = request.state.services
        checks = {
            "database": await _check(_database_ok(services)),
            "redis": await _check(services.redis.ping()),
            "policy": await _check(services.policy.ready()),
        }
        ok = all(checks.values())
        return JSONResponse(
            {
                "status": "ok" if ok else "unavailable",
                "checks": {k: "ok" if v else "failing" for k, v in checks.items()},
            },
            status_code=200 if ok else 503,
        )

    async def jwks(request: Request) -> JSONResponse:
        services: Services = request.state.services
        return JSONResponse(services.signing_key.jwks(), headers={"cache-control": "public, max-age=300"})

    return Starlette(
        routes=[
            Route("/graphql", endpoint, methods=["GET", "POST"]),
            WebSocketRoute("/graphql", endpoint),
            Route("/healthz", healthz),
            Route("/readyz", readyz),
            Route("/.well-known/jwks.json", jwks),
            Route("/oauth/token", token_endpoint, methods=["POST"]),
            # The dashboard page and pictures, and the files pages load (uds.web).
            *web.ROUTES,
            Route("/static/{name:path}", static_file, methods=["GET"]),
        ],
        middleware=[
            # Outermost: request id, log context and request metrics (and the trace's
            # server span when tracing is on) cover everything below, refusals included.
            Middleware(observe_middleware, metrics_on=settings.metrics_enabled),
            # /metrics has its own access rules (and a token that is not a JWT).
            *([Middleware(MetricsEndpoint, settings=settings)] if settings.metrics_enabled else []),
            # Preflight requests carry no token: answered before authentication.
            *cors_middleware(settings),
            Middleware(BodyLimitMiddleware, max_bytes=settings.max_body_bytes),
            # /mcp verifies its callers itself (401 with OAuth resource metadata).
            Middleware(McpMiddleware, bridge=mcp),
            Middleware(AuthMiddleware),
            Middleware(TenantMiddleware),
        ],
        lifespan=lifespan,
    )


class _GraphQLEndpoint:
    """The GraphQL view, built in the lifespan once the services exist."""

    view: GraphQLView | None = None

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        assert self.view is not None, "lifespan has not run"
        await self.view(scope, receive, send)


async def _database_ok(services: Services) -> bool:
    async with services.engine.connect() as conn:
        return await conn.scalar(text("select 1")) == 1


async def _check(awaitable: Any) -> bool:
    try:
        return bool(await asyncio.wait_for(awaitable, READY_TIMEOUT))
    except Exception:
        return False


def app_from_env() -> Starlette:
    """Factory for `uvicorn --factory uds.app:app_from_env` (servers from UDS_* variables)."""
    from uds.observability.logging import configure_logging
    from uds.observability.tracing import setup_tracing

    collect_less_often()  # this process is a server
    settings = Settings.from_env()
    configure_logging(settings)
    setup_tracing(settings, service_name="uds-api")
    return create_app(settings)
