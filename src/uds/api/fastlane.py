"""The front of `/graphql` over HTTP: persisted queries, then a plan if there is one.

For every HTTP request the lane reads the body (or the GET parameters) once, resolves a
persisted-query hash (uds.api.persisted; its errors are answered here), and, when the
document has a plan (uds.api.plans) and the plan answers, sends the response itself.
Otherwise it hands the request to strawberry's view with the body it read, and the
document resolved from the hash put in place of the hash, so the normal path sees an
ordinary request. The lane never answers differently from the normal path: a plan that
cannot reproduce the answer exactly raises PlanFallback and the view runs as usual.
"""

from __future__ import annotations

import json
import logging
from typing import Any
from urllib.parse import parse_qsl, urlencode

import orjson
from graphql import DocumentNode
from starlette.types import Message, Receive, Scope, Send

from uds.api.admission import CHARGED
from uds.api.loaders import Loaders
from uds.api.persisted import PersistedQueries
from uds.api.plans import STATS, PlanCache, PlanContext, PlanFallback, run_plan
from uds.db import TransactionScope
from uds.errors import UdsError
from uds.http import header, send_error
from uds.observability.activity import note_operation
from uds.services import Services

log = logging.getLogger(__name__)

Routed = tuple[Scope, Receive] | None


class FastLane:
    def __init__(self, services: Services, schema: Any) -> None:
        self.services = services
        self.schema = schema
        self.persisted = PersistedQueries(services.settings, services.redis)
        self.plans = PlanCache(schema) if services.settings.fast_paths else None
        schema.plans = self.plans  # the view's OperationGate teaches it documents
        schema.persisted = self.persisted

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> Routed:
        """None if the request was answered; else the (scope, receive) the view should use."""
        method = scope["method"]
        original = receive
        if method == "POST":
            content_type = header(scope, b"content-type") or b""
            if b"application/json" not in content_type:
                return scope, receive
            body = await _read_body(receive)
            if body is None:
                return None  # the client went away
            receive = _replay(body, original)
            try:
                data = orjson.loads(body)
            except orjson.JSONDecodeError:
                return scope, receive
            if not isinstance(data, dict):
                return scope, receive  # a batch, or not GraphQL: strawberry answers it
            query, variables = data.get("query"), data.get("variables")
            operation_name, extensions = data.get("operationName"), data.get("extensions")
        elif method == "GET" and b"text/html" not in (header(scope, b"accept") or b""):
            params = dict(parse_qsl(scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True))
            try:
                variables = json.loads(params["variables"]) if params.get("variables") else None
                extensions = json.loads(params["extensions"]) if params.get("extensions") else None
            except ValueError:
                return scope, receive  # strawberry reports malformed parameters
            query, operation_name = params.get("query"), params.get("operationName")
            data = None
        else:
            return scope, receive
        try:
            document = await self.persisted.document(query, extensions)
        except UdsError as exc:
            await send_error(send, exc)
            return None
        if self.plans is not None and isinstance(document, str) and isinstance(operation_name, str | None):
            plan = self.plans.get(document, operation_name)
            if plan is not None:
                answer = await self._run(plan, scope, variables, document, operation_name)
                if answer is not None:
                    await _respond(send, *answer)
                    return None
        if document is not None and document is not query:  # resolved from a hash
            scope, receive = _with_document(scope, original, data, params if data is None else None, document)
        return scope, receive

    async def _run(
        self, plan: Any, scope: Scope, variables: Any, query: str, operation_name: str | None
    ) -> tuple[bytes, list[tuple[bytes, bytes]]] | None:
        services = self.services
        tenant = scope.get("tenant")
        tx = TransactionScope(
            services.engine,
            tenant.slug if tenant else None,
            read_engine=services.read_engine,
            read_pool=services.read_pool,
        )
        # On the raw pool unless this plan's resolvers were once seen to need SQLAlchemy.
        if plan.raw is False or not tx.read_raw():
            tx.read_only()
        context = PlanContext(
            request=None,  # type: ignore[arg-type]
            services=services,
            principal=scope.get("principal"),
            tenant=tenant,
            tenant_role=scope.get("tenant_role"),
            tx=tx,
            loaders=Loaders(tx),
        )
        # What the view's OperationGate notes for metrics, logs and the span (plans are queries).
        note_operation(plan.operation.name.value if plan.operation.name else operation_name, "query")
        # The admission gate, as on the normal path (unstorable variables, cost, rate limit);
        # a refusal falls back to the view, which answers it with the verdict kept in scope.
        # The RateLimit headers come from that verdict too (no Response to collect them).
        context.response = None
        document = plan.document
        if document is None:
            document = plan.document = DocumentNode(
                definitions=(plan.operation, *plan.fragment_definitions.values())
            )
        try:
            await self.schema.gate.admit(
                context,
                schema=plan.schema,
                document=document,
                key=query,
                operation_name=operation_name,
                variables=variables if isinstance(variables, dict) else None,
                scope=scope,
            )
        except UdsError:
            await tx.close()
            return None
        try:
            body = await run_plan(plan, context, variables)
        except PlanFallback as exc:
            if tx.session_needed:  # next time on the read engine: no fallback for that
                plan.raw = False
            STATS["plan_fallbacks"] += 1
            log.debug("plan fell back: %s", exc)
            return None
        finally:
            await tx.close()
        STATS["plans_run"] += 1
        verdict = scope.get(CHARGED)
        return body, verdict.raw_headers() if verdict is not None else []


async def _read_body(receive: Receive) -> bytes | None:
    chunks = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks)


def _replay(body: bytes, receive: Receive) -> Receive:
    """A receive that yields `body` once, then the client's own messages (disconnect)."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


def _with_document(
    scope: Scope, receive: Receive, data: dict[str, Any] | None, params: dict[str, str] | None, document: str
) -> tuple[Scope, Receive]:
    """The request as if the client had sent the document itself (`receive`: the client's,
    its body read already)."""
    if data is not None:
        body = orjson.dumps({**data, "query": document})
        scope = {**scope, "headers": [(k, v) for k, v in scope["headers"] if k != b"content-length"]}
        return scope, _replay(body, receive)
    assert params is not None
    return {**scope, "query_string": urlencode({**params, "query": document}).encode()}, receive


async def _respond(send: Send, body: bytes, extra: list[tuple[bytes, bytes]]) -> None:
    """The response strawberry's view sends for a result (same status and headers)."""
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [
                (b"content-length", str(len(body)).encode()),
                (b"content-type", b"application/json"),
                *extra,
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
