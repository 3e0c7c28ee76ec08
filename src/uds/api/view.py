"""The GraphQL HTTP/WebSocket endpoint: context per request, transaction, error codes.

The request owns its transaction: `process_result` commits when the operation produced
no GraphQL errors and rolls back otherwise, before the response is sent, so a client
never sees success for work that was not committed. A query has no transaction: its
scope reads from the read-only engine in autocommit (uds.api.gate, uds.db).

Responses are encoded with orjson (`encode_json`), which also splices the JSON that the
read fast paths built in PostgreSQL (`orjson.Fragment`, see uds.api.execution).
"""

from __future__ import annotations

import json
import logging
import re
import uuid
from collections.abc import Mapping
from typing import Any

import orjson
from cross_web import HTTPException
from graphql import GraphQLError
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send
from starlette.websockets import WebSocket
from strawberry.asgi import ASGIWebSocketAdapter, GraphQL
from strawberry.exceptions import ConnectionRejectionError
from strawberry.http import GraphQLHTTPResponse
from strawberry.subscriptions import GRAPHQL_TRANSPORT_WS_PROTOCOL
from strawberry.types import ExecutionResult
from strawberry.types.unset import UNSET, UnsetType

from uds.api.context import Context
from uds.api.loaders import Loaders
from uds.auth.middleware import bearer_principal
from uds.db import TransactionScope
from uds.errors import BadUserInput, QueryTooComplex, UdsError
from uds.http import send_error
from uds.services import Services
from uds.tenants.routing import resolve_tenant

log = logging.getLogger(__name__)

CONTEXT_KEY = "uds.context"
TOO_COMPLEX = re.compile(r"exceeds maximum operation depth|aliases found\. Allowed|more than \d+ tokens")
_SUGGESTION = re.compile(r"\s*Did you mean .*$")


def encode_json(data: object) -> bytes:
    """The response body: orjson, or the standard library for what orjson refuses.

    orjson refuses integers beyond 64 bits and non-string keys, which only a JSON scalar
    (e.g. a job's result) can carry; the standard encoder writes those as before.
    """
    try:
        return orjson.dumps(data)
    except TypeError:
        return json.dumps(data, default=_fragment_text).encode()


def _fragment_text(value: object) -> object:
    if isinstance(value, orjson.Fragment):
        return orjson.loads(value.contents)
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


class TextWebSocketAdapter(ASGIWebSocketAdapter):
    """graphql-transport-ws messages go out as text frames (browsers expect text)."""

    async def send_json(self, message: Mapping[str, object]) -> None:
        from starlette.websockets import WebSocketDisconnect
        from strawberry.http.exceptions import WebSocketDisconnected

        try:
            await self.ws.send_text(encode_json(message).decode())
        except WebSocketDisconnect as exc:
            raise WebSocketDisconnected from exc


class GraphQLView(GraphQL[Context, None]):
    websocket_adapter_class = TextWebSocketAdapter  # type: ignore[assignment]

    def __init__(self, services: Services, **kwargs: Any) -> None:
        from uds.api.schema import build_schema

        settings = services.settings
        super().__init__(
            build_schema(settings),
            graphql_ide="graphiql" if settings.dev else None,
            subscription_protocols=(GRAPHQL_TRANSPORT_WS_PROTOCOL,),
            max_subscriptions_per_connection=20,
            **kwargs,
        )
        self.services = services
        from uds.api.fastlane import FastLane

        self.lane = FastLane(services, self.schema)

    def encode_json(self, data: object) -> bytes:
        return encode_json(data)

    async def on_ws_connect(self, context: Context) -> UnsetType | dict[str, object] | None:
        """graphql-transport-ws `connection_init`: who is calling, and in which tenant.

        `connectionParams: {authorization: "Bearer <jwt>", tenant: "<slug>"}` go through the
        same checks as the HTTP headers (uds.auth.middleware, uds.tenants.routing). Anything
        wrong (no or bad token, unknown tenant, not a member) closes the socket with 4403
        before any operation runs, with the same answer for every case.
        """
        params = context.connection_params or {}
        authorization, slug = params.get("authorization"), params.get("tenant")
        if not isinstance(authorization, str) or not isinstance(slug, str):
            raise ConnectionRejectionError()
        try:
            principal = await bearer_principal(self.services.verifier, authorization.encode())
            tenant, role = await resolve_tenant(self.services.registry, principal, slug.encode())
        except UdsError:
            raise ConnectionRejectionError() from None
        context.principal, context.tenant, context.tenant_role = principal, tenant, role
        return UNSET

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            if scope["type"] == "http":
                routed = await self.lane(scope, receive, send)
                if routed is None:
                    return  # answered: a persisted-query error, or a plan
                scope, receive = routed
                request = Request(scope, receive)
                try:
                    response = await self.run(request)
                except HTTPException as exc:
                    await send_error(send, _transport_error(exc))
                    return
                await response(scope, receive, send)
            else:
                await self.run(WebSocket(scope, receive, send))
        finally:
            ctx = scope.get(CONTEXT_KEY)
            if ctx is not None:
                await ctx.tx.rollback()
                await ctx.tx.close()

    async def get_context(self, request: Request | WebSocket, response: Response | WebSocket) -> Context:
        scope = request.scope
        services = self.services
        tx = TransactionScope(
            services.engine,
            scope["tenant"].slug if scope.get("tenant") else None,
            read_engine=services.read_engine if services.settings.fast_paths else None,
        )
        ctx = Context(
            request=request,
            services=self.services,
            principal=scope.get("principal"),
            tenant=scope.get("tenant"),
            tenant_role=scope.get("tenant_role"),
            tx=tx,
            loaders=Loaders(tx),
        )
        scope[CONTEXT_KEY] = ctx
        return ctx

    async def process_result(self, request: Request, result: ExecutionResult) -> GraphQLHTTPResponse:
        ctx: Context | None = request.scope.get(CONTEXT_KEY)
        errors = [self._format(error) for error in result.errors or ()]
        if ctx is not None and ctx.tx.opened:
            if errors:
                await ctx.tx.rollback()
            else:
                try:
                    await ctx.tx.commit()
                except Exception:
                    log.exception("commit failed")
                    await ctx.tx.rollback()
                    return {
                        "data": None,
                        "errors": [_error_dict("internal error: the change was not saved", "INTERNAL")],
                    }
            await ctx.tx.close()
        if ctx is not None and not errors:
            for hook in ctx.after_commit:
                await hook()
        response: GraphQLHTTPResponse = {"data": result.data}
        if errors:
            response["errors"] = errors
        if result.extensions:
            response["extensions"] = result.extensions
        return response

    def _format(self, error: GraphQLError) -> dict[str, Any]:
        original = error.original_error
        if isinstance(original, UdsError):
            formatted = _error_dict(original.message, original.code, original.reasons)
        elif original is None:
            code = QueryTooComplex.code if TOO_COMPLEX.search(error.message) else BadUserInput.code
            message = error.message if self.services.settings.dev else _SUGGESTION.sub("", error.message)
            formatted = _error_dict(message, code)
        else:
            error_id = uuid.uuid4().hex[:12]
            log.error("internal error %s in %s", error_id, error.path, exc_info=original)
            formatted = _error_dict(f"internal error (id {error_id})", "INTERNAL")
        if error.path:
            formatted["path"] = error.path
        if error.locations:
            formatted["locations"] = [{"line": loc.line, "column": loc.column} for loc in error.locations]
        return formatted


def _error_dict(message: str, code: str, reasons: tuple[str, ...] = ()) -> dict[str, Any]:
    extensions: dict[str, Any] = {"code": code}
    if reasons:
        extensions["reasons"] = list(reasons)
    return {"message": message, "extensions": extensions}


def _transport_error(exc: HTTPException) -> UdsError:
    error = BadUserInput(exc.reason)
    error.http_status = exc.status_code
    return error
