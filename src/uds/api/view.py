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
from strawberry.subscriptions.protocols.graphql_transport_ws.handlers import (
    BaseGraphQLTransportWSHandler,
    Operation,
)
from strawberry.types import ExecutionResult
from strawberry.types.unset import UNSET, UnsetType

from uds.api.admission import CONNECT_WEIGHT
from uds.api.context import Context
from uds.api.live import OPERATION
from uds.api.loaders import Loaders
from uds.auth.middleware import bearer_principal
from uds.db import TransactionScope
from uds.errors import BadUserInput, QueryTooComplex, UdsError
from uds.http import send_error
from uds.observability import tracing
from uds.observability.activity import (
    current_request_id,
    new_request_id,
    note_identity,
    note_outcome,
)
from uds.ratelimit import subject_key
from uds.services import Services
from uds.tenants.routing import audit_break_glass, resolve_tenant

log = logging.getLogger(__name__)

CONTEXT_KEY = "uds.context"
TOO_COMPLEX = re.compile(r"exceeds maximum operation depth|aliases found\. Allowed|more than \d+ tokens")
# How graphql-core words a value it could not coerce (variables, literal arguments).
INPUT_ERROR_PREFIXES = ("Variable '$", "Expected value of type", "Argument '")
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

        try:  # WebSocket.send itself: send_text only wraps the message
            await self.ws.send({"type": "websocket.send", "text": encode_json(message).decode()})
        except WebSocketDisconnect as exc:
            raise WebSocketDisconnected from exc


class TransportWSHandler(BaseGraphQLTransportWSHandler[Context, None]):
    """graphql-transport-ws, with each operation's task knowing its operation (uds.api.live
    sends live events of a subscription itself, under the operation's id)."""

    async def run_operation(self, operation: Operation[Context, None]) -> None:
        OPERATION.set(operation)  # the operation's own task: its context is its own
        await super().run_operation(operation)

    async def handle_connection_init(self, message: Any) -> None:
        await super().handle_connection_init(message)
        # The init timeout's task, cancelled by the init, would keep its CancelledError,
        # traceback and frames for the connection's life: drop it once it has ended.
        task = self.connection_init_timeout_task
        if task is not None and task.done():
            self.connection_init_timeout_task = None


class GraphQLView(GraphQL[Context, None]):
    websocket_adapter_class = TextWebSocketAdapter  # type: ignore[assignment]
    graphql_transport_ws_handler_class = TransportWSHandler

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
        tracing.trace_root_fields(self.schema._schema)  # a span per root field; only when on
        from uds.api.fastlane import FastLane

        self.lane = FastLane(services, self.schema)

    def encode_json(self, data: object) -> bytes:
        return encode_json(data)

    async def render_graphql_ide(self, request: Request) -> Response:
        """GraphiQL from UDS's own files, not a CDN (uds.web.graphiql)."""
        from uds.web.graphiql import graphiql_response

        return graphiql_response()

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
        note_identity(subject=principal.subject, tenant=tenant.slug)
        if role is None:  # a platform admin who is not a member: break-glass, audited
            try:
                await audit_break_glass(
                    self.services.engine, tenant, principal, transport="websocket", target="connect"
                )
            except UdsError:
                raise ConnectionRejectionError() from None
        await self._admit_connection(context)
        return UNSET

    async def _admit_connection(self, context: Context) -> None:
        """Charge the connect to the caller's rate limit and take one of the member's
        connection slots (plan limit max_ws_connections_per_member); refuse otherwise."""
        try:
            await self.schema.gate.charge(context, CONNECT_WEIGHT, batched=True)  # type: ignore[attr-defined]
        except UdsError:
            raise ConnectionRejectionError() from None
        tenant, principal = context.tenant, context.principal
        assert tenant is not None and principal is not None
        limiter = self.services.limiter
        cap = self.schema.gate.limits(tenant)["max_ws_connections_per_member"]  # type: ignore[attr-defined]
        key = limiter.key("ws", str(tenant.id), subject_key(principal.subject))
        lease = await limiter.acquire_connection(key, cap)
        if lease is False:
            raise ConnectionRejectionError()
        if isinstance(lease, str):
            context.ws_lease = (key, lease)

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
                if ctx.ws_lease is not None:
                    await self.services.limiter.release_connection(*ctx.ws_lease)

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
            response=response,
        )
        scope[CONTEXT_KEY] = ctx
        return ctx

    async def process_result(self, request: Request, result: ExecutionResult) -> GraphQLHTTPResponse:
        ctx: Context | None = request.scope.get(CONTEXT_KEY)
        errors = [self._format(error) for error in result.errors or ()]
        if errors:
            note_outcome(errors[0]["extensions"]["code"])
        if ctx is not None and ctx.tx.opened:
            if errors:
                await ctx.tx.rollback()
            else:
                try:
                    await ctx.tx.commit()
                except Exception:
                    log.exception("commit failed")
                    await ctx.tx.rollback()
                    note_outcome("INTERNAL")
                    return {
                        "data": None,
                        "errors": [
                            _internal_error("internal error: the change was not saved", current_request_id())
                        ],
                    }
            await ctx.tx.close()
            if not errors and ctx.operation == "mutation":
                self.services.relay.nudge()  # its domain events are in the outbox now
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
            formatted["extensions"].update(original.extensions)
        elif original is None or _is_input_error(error):
            code = QueryTooComplex.code if TOO_COMPLEX.search(error.message) else BadUserInput.code
            message = error.message if self.services.settings.dev else _SUGGESTION.sub("", error.message)
            formatted = _error_dict(message, code)
        else:
            # The request id finds the log lines of this request, this one included.
            request_id = current_request_id() or new_request_id()
            log.error("internal error in %s (request id %s)", error.path, request_id, exc_info=original)
            formatted = _internal_error(f"internal error (request id {request_id})", request_id)
        if error.path:
            formatted["path"] = error.path
        if error.locations:
            formatted["locations"] = [{"line": loc.line, "column": loc.column} for loc in error.locations]
        return formatted


def _is_input_error(error: GraphQLError) -> bool:
    """A client's bad value that graphql-core reports with the exception it caught.

    Coercing a variable (an enum value that does not exist, a scalar's parser refusing a
    value) or a literal argument fails before anything is resolved: such errors carry no
    path and wrap either graphql-core's own GraphQLError or the scalar's exception.
    Errors raised while resolving always have a path, and stay INTERNAL.
    """
    if error.path:
        return False
    return isinstance(error.original_error, GraphQLError) or error.message.startswith(INPUT_ERROR_PREFIXES)


def _error_dict(message: str, code: str, reasons: tuple[str, ...] = ()) -> dict[str, Any]:
    extensions: dict[str, Any] = {"code": code}
    if reasons:
        extensions["reasons"] = list(reasons)
    return {"message": message, "extensions": extensions}


def _internal_error(message: str, request_id: str | None) -> dict[str, Any]:
    """An INTERNAL error: no detail for the client, the request id to quote instead."""
    formatted = _error_dict(message, "INTERNAL")
    if request_id:
        formatted["extensions"]["requestId"] = request_id
    return formatted


def _transport_error(exc: HTTPException) -> UdsError:
    error = BadUserInput(exc.reason)
    error.http_status = exc.status_code
    return error
