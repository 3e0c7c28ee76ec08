"""`POST /mcp`: the MCP server on streamable HTTP, mounted in the API app, as an OAuth
resource server.

- RFC 9728 protected-resource metadata at `/.well-known/oauth-protected-resource/mcp`
  (and without the suffix); a request without a valid token gets 401 with
  `WWW-Authenticate: Bearer ... resource_metadata="..."`.
- The bearer token is verified by UDS's own verifier (uds.auth.verify: signature, issuer,
  audience, expiry), the tenant comes from `X-Tenant-ID` or the token's tenant claim and
  goes through the same membership check as GraphQL (uds.tenants.routing). Tools never
  take a tenant argument.
- Tools run in process as that principal (uds.mcp.gateway.InProcessGateway): the token is
  not passed on to anything.
- The SDK's session manager serves 2025-era clients (initialize, `Mcp-Session-Id`; a session
  is bound to the credential that opened it) and 2026-07-28 clients (no session) alike; it
  runs from the app's lifespan. Host and Origin headers are checked against
  `UDS_MCP_ALLOWED_HOSTS` (DNS rebinding).

This runs before uds.auth.middleware (which would answer a bad token without the
resource-metadata hint) and after the body-size limit.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlsplit

from starlette.types import ASGIApp, Receive, Scope, Send

from uds.auth.middleware import bearer_principal
from uds.errors import TenantRequired, UdsError, Unauthenticated
from uds.http import header, send_error
from uds.settings import Settings
from uds.tenants.routing import audit_break_glass, resolve_tenant

# The MCP SDK (with pydantic, jsonschema and the protocol's models: some 50 MB) is imported
# by the first /mcp request, not by the API process's start: most API processes serve
# GraphQL only (see docs/performance.md, memory).

PATH = "/mcp"
METADATA_PATHS = ("/.well-known/oauth-protected-resource/mcp", "/.well-known/oauth-protected-resource")
STATE_KEY = "uds.mcp"


class McpBridge:
    """The MCP server and its session manager for one API app, built and started by the
    first /mcp request (and stopped with the app)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.view: Any = None  # the app's GraphQLView, set in the lifespan
        self._server: Any = None
        self._manager: Any = None
        self._task: asyncio.Task[None] | None = None
        self._stop: asyncio.Event | None = None
        self._starting: asyncio.Lock | None = None
        self._running = False  # between the lifespan's start and end

    @property
    def server(self) -> Any:
        """The UdsMcpServer (built on first use)."""
        if self._server is None:
            from uds.mcp.server import UdsMcpServer

            self._server = UdsMcpServer(self.settings, self.gateway_for)
        return self._server

    @property
    def manager(self) -> Any:
        """The SDK's StreamableHTTPSessionManager (built on first use, not started)."""
        if self._manager is None:
            from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
            from mcp.server.transport_security import TransportSecuritySettings

            settings = self.settings
            hosts = list(settings.mcp_allowed_hosts)
            if settings.public_url:  # the public host name is allowed too
                hosts.append(urlsplit(settings.public_url).netloc)
            origins = [f"{scheme}://{h}" for h in hosts for scheme in ("http", "https")] + list(
                settings.cors_origins
            )
            self._manager = StreamableHTTPSessionManager(
                app=self.server._lowlevel_server,
                security_settings=TransportSecuritySettings(
                    enable_dns_rebinding_protection=True, allowed_hosts=hosts, allowed_origins=origins
                ),
                max_request_body_size=settings.max_body_bytes,
            )
        return self._manager

    def gateway_for(self, ctx: Any) -> Any:
        from uds.mcp.gateway import GatewayError, InProcessGateway

        request = getattr(ctx, "request", None)
        scope = getattr(request, "scope", None)
        if self.view is None or scope is None or scope.get(STATE_KEY) is None:
            raise GatewayError("UNAUTHENTICATED", "no verified caller for this request")
        return InProcessGateway(self.view, scope)

    @contextlib.asynccontextmanager
    async def running(self, view: Any) -> AsyncIterator[None]:
        """While the app runs: the session manager may be started (by `started`), and is
        stopped when the block ends."""
        self.view = view
        self._running = True
        try:
            yield
        finally:
            self._running = False
            if self._task is not None:
                assert self._stop is not None
                self._stop.set()
                task, self._task = self._task, None
                await task

    async def started(self) -> Any:
        """The running session manager; the first call starts it.

        It runs in a task of its own: its task group must be left in the task that entered
        it, which no request's task can promise.
        """
        if self._task is not None and not self._task.done():
            return self._manager
        if not self._running:
            raise RuntimeError("the MCP bridge serves only while the app runs (its lifespan)")
        if self._starting is None:
            self._starting = asyncio.Lock()
        async with self._starting:
            if self._task is not None and not self._task.done():
                return self._manager
            manager = self.manager
            started, stop = asyncio.Event(), asyncio.Event()

            async def serve() -> None:
                async with manager.run():
                    started.set()
                    await stop.wait()

            task = asyncio.create_task(serve(), name="mcp-session-manager")
            ready = asyncio.create_task(started.wait())
            await asyncio.wait([task, ready], return_when=asyncio.FIRST_COMPLETED)
            if task.done():
                ready.cancel()
                task.result()  # raises why it could not start
            self._task, self._stop = task, stop
            return manager


class McpMiddleware:
    """Routes `/mcp` and its metadata to the bridge; everything else passes through."""

    def __init__(self, app: ASGIApp, bridge: McpBridge) -> None:
        self.app = app
        self.bridge = bridge

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope["path"]
        if path in METADATA_PATHS:
            await self._metadata(scope, send)
        elif path in (PATH, PATH + "/"):
            await self._serve(scope, receive, send)
        else:
            await self.app(scope, receive, send)

    def _base(self, scope: Scope) -> str:
        configured = self.bridge.settings.public_url
        if configured:
            return configured.rstrip("/")
        host = (header(scope, b"host") or b"localhost").decode("latin-1")
        return f"{scope.get('scheme', 'http')}://{host}"

    async def _metadata(self, scope: Scope, send: Send) -> None:
        base = self._base(scope)
        servers = [base] + [i.issuer for i in self.bridge.settings.jwt_issuers if i.issuer.startswith("http")]
        body = json.dumps(
            {
                "resource": f"{base}{PATH}",
                "authorization_servers": servers,
                "bearer_methods_supported": ["header"],
                "resource_name": "UDS",
            }
        ).encode()
        await _json(send, 200, body, [(b"cache-control", b"public, max-age=300")])

    async def _refuse(self, scope: Scope, send: Send, exc: UdsError) -> None:
        metadata = f"{self._base(scope)}{METADATA_PATHS[0]}"
        description = exc.message.replace('"', "'")
        challenge = (
            f'Bearer error="invalid_token", error_description="{description}", resource_metadata="{metadata}"'
        )
        body = json.dumps({"error": "invalid_token", "error_description": exc.message}).encode()
        await _json(send, 401, body, [(b"www-authenticate", challenge.encode())])

    async def _serve(self, scope: Scope, receive: Receive, send: Send) -> None:
        services = scope["state"]["services"]
        raw = header(scope, b"authorization")
        try:
            if raw is None:
                raise Unauthenticated("a bearer token is required")
            principal = await bearer_principal(services.verifier, raw)
        except Unauthenticated as exc:
            await self._refuse(scope, send, exc)
            return
        try:
            slug = header(scope, b"x-tenant-id") or (principal.tenant.encode() if principal.tenant else None)
            if slug is None:
                raise TenantRequired(
                    "send X-Tenant-ID with the tenant to work in (or use a tenant-bound token)"
                )
            tenant, role = await resolve_tenant(services.registry, principal, slug)
            if role is None:  # a platform admin who is not a member: break-glass, audited
                await audit_break_glass(
                    services.engine, tenant, principal, transport="mcp", target="POST /mcp"
                )
        except UdsError as exc:
            await send_error(send, exc)
            return
        scope["principal"], scope["tenant"], scope["tenant_role"] = principal, tenant, role
        scope[STATE_KEY] = True
        from mcp.server.auth.middleware.bearer_auth import AuthenticatedUser
        from mcp.server.auth.provider import AccessToken
        from starlette.authentication import AuthCredentials

        manager = await self.bridge.started()
        # The SDK binds a session to the credential that opened it (subject and issuer).
        token = AccessToken(
            token="-",  # not kept: nothing downstream may use it
            client_id=principal.subject,
            scopes=[],
            expires_at=int(principal.expires_at) or None,
            subject=principal.subject,
            claims={"iss": principal.issuer, "tenant": tenant.slug},
        )
        scope["user"] = AuthenticatedUser(token)
        scope["auth"] = AuthCredentials([])
        await manager.handle_request(scope, receive, send)


async def _json(send: Send, status: int, body: bytes, headers: list[tuple[bytes, bytes]]) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                *headers,
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
