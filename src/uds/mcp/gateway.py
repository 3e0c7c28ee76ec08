"""How the bridge runs its GraphQL operations: the only way it reaches UDS.

Two gateways, one interface (`execute` an operation, follow a job's `events`):

- `InProcessGateway` (streamable HTTP, `POST /mcp`): the operation runs in this process
  against the API's own strawberry schema, with the context the GraphQL view builds for an
  HTTP request (uds.api.view.GraphQLView.get_context) carrying the principal and tenant the
  MCP endpoint verified. Every guard, policy, rate limit and audit applies as for
  `POST /graphql`; the commit happens in the view's `process_result`. No token is passed on:
  nothing here sends a request anywhere.
- `RemoteGateway` (stdio, `uds mcp --transport stdio`): a GraphQL-over-HTTP client and a
  graphql-transport-ws client of a running UDS, with the user's own UDS_TOKEN/UDS_TENANT,
  like any other API client.

A GraphQL error becomes `GatewayError` with the UDS code, message and policy reasons.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections.abc import AsyncIterator
from functools import cache
from importlib import resources
from typing import Any, Protocol

import orjson
from graphql import OperationDefinitionNode, parse
from graphql.language import print_ast

OPERATIONS_FILE = "operations.graphql"


class GatewayError(Exception):
    """A UDS error reported by the GraphQL API (or the transport to it)."""

    def __init__(self, code: str, message: str, reasons: list[str] | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.reasons = list(reasons or [])

    @classmethod
    def from_graphql(cls, errors: list[dict[str, Any]]) -> GatewayError:
        first = errors[0] if errors else {}
        extensions = first.get("extensions") or {}
        return cls(
            str(extensions.get("code") or "INTERNAL"),
            str(first.get("message") or "error"),
            [str(r) for r in extensions.get("reasons") or []],
        )


class Gateway(Protocol):
    async def execute(self, operation: str, variables: dict[str, Any]) -> dict[str, Any]:
        """The operation's `data`; raises GatewayError on any GraphQL error."""
        ...

    def events(self, job_id: str, after_seq: int) -> AsyncIterator[dict[str, Any]]:
        """The job's events after `after_seq` (replayed, then live); ends after the last."""
        ...


@cache
def operation_texts() -> dict[str, str]:
    """Each named operation as a document of its own (with the fragments it uses)."""
    source = resources.files("uds.mcp").joinpath(OPERATIONS_FILE).read_text()
    document = parse(source)
    fragments = {d.name.value: d for d in document.definitions if not isinstance(d, OperationDefinitionNode)}
    texts: dict[str, str] = {}
    for definition in document.definitions:
        if isinstance(definition, OperationDefinitionNode) and definition.name is not None:
            text = print_ast(definition)
            used = [f for name, f in fragments.items() if f"...{name}" in text]
            texts[definition.name.value] = "\n".join([text, *(print_ast(f) for f in used)])
    return texts


def operation_kind(name: str) -> str:
    """query, mutation or subscription."""
    return operation_texts()[name].split(None, 1)[0]


def plain(value: Any) -> Any:
    """Execution results as plain JSON values (the read fast paths hand back orjson Fragments)."""
    from uds.api.view import encode_json

    return orjson.loads(encode_json(value))


class InProcessGateway:
    """Operations executed in this process as the verified caller (streamable HTTP)."""

    def __init__(self, view: Any, scope: dict[str, Any]) -> None:
        # `scope` is the MCP request's ASGI scope with principal, tenant and tenant_role set
        # by uds.mcp.http; each operation gets a copy, so each has its own context.
        self._view = view
        self._scope = scope

    def _request(self) -> Any:
        from starlette.requests import Request

        scope = {k: v for k, v in self._scope.items() if k != "uds.context"}
        scope["type"] = "http"
        return Request(scope)

    async def execute(self, operation: str, variables: dict[str, Any]) -> dict[str, Any]:
        from starlette.responses import Response

        from uds.api.view import CONTEXT_KEY

        view = self._view
        request = self._request()
        context = await view.get_context(request, Response())
        try:
            result = await view.schema.execute(
                operation_texts()[operation],
                variable_values=variables,
                context_value=context,
                operation_name=operation,
            )
            response = await view.process_result(request, result)
        finally:
            ctx = request.scope.get(CONTEXT_KEY)
            if ctx is not None:
                await ctx.tx.rollback()
                await ctx.tx.close()
        body = plain(response)
        if body.get("errors"):
            raise GatewayError.from_graphql(body["errors"])
        return body.get("data") or {}

    async def events(self, job_id: str, after_seq: int) -> AsyncIterator[dict[str, Any]]:
        view = self._view
        request = self._request()
        from starlette.responses import Response

        context = await view.get_context(request, Response())
        try:
            stream = await view.schema.subscribe(
                operation_texts()["JobEvents"],
                variable_values={"jobId": job_id, "afterSeq": after_seq},
                context_value=context,
                operation_name="JobEvents",
            )
            if not hasattr(stream, "__aiter__"):  # refused before it started
                raise GatewayError.from_graphql(_format(stream.errors or []))
            async with contextlib.aclosing(stream):
                async for result in stream:
                    if result.errors:
                        raise GatewayError.from_graphql(_format(result.errors))
                    yield plain(result.data)["jobEvents"]
        finally:
            await context.tx.rollback()
            await context.tx.close()


def _format(errors: list[Any]) -> list[dict[str, Any]]:
    out = []
    for error in errors:
        extensions = dict(error.extensions or {})
        out.append({"message": error.message, "extensions": extensions})
    return out


class RemoteGateway:
    """A client of a running UDS (stdio): GraphQL over HTTP, job events over WebSocket."""

    def __init__(self, url: str, token: str, tenant: str, *, timeout: float = 60.0) -> None:
        import httpx

        self.url = url.rstrip("/")
        self._token = token
        self._tenant = tenant
        self._http = httpx.AsyncClient(
            timeout=timeout,
            headers={"authorization": f"Bearer {token}", "x-tenant-id": tenant},
        )

    async def aclose(self) -> None:
        await self._http.aclose()

    async def execute(self, operation: str, variables: dict[str, Any]) -> dict[str, Any]:
        import httpx

        payload = {"query": operation_texts()[operation], "variables": variables, "operationName": operation}
        try:
            response = await self._http.post(f"{self.url}/graphql", json=payload)
        except httpx.HTTPError as exc:
            raise GatewayError("UNAVAILABLE", f"UDS at {self.url} is not reachable: {exc}") from None
        try:
            body = response.json()
        except ValueError:
            raise GatewayError("INTERNAL", f"UDS answered HTTP {response.status_code} without JSON") from None
        if body.get("errors"):
            raise GatewayError.from_graphql(body["errors"])
        return body.get("data") or {}

    async def events(self, job_id: str, after_seq: int) -> AsyncIterator[dict[str, Any]]:
        import websockets

        ws_url = "ws" + self.url[4:] + "/graphql" if self.url.startswith("http") else self.url + "/graphql"
        try:
            connection = await websockets.connect(ws_url, subprotocols=["graphql-transport-ws"])
        except (OSError, websockets.WebSocketException) as exc:
            raise GatewayError("UNAVAILABLE", f"UDS at {self.url} is not reachable: {exc}") from None
        async with connection as ws:
            init = {"authorization": f"Bearer {self._token}", "tenant": self._tenant}
            await ws.send(json.dumps({"type": "connection_init", "payload": init}))
            try:
                ack = json.loads(await asyncio.wait_for(ws.recv(), 30))
            except websockets.ConnectionClosed:
                raise GatewayError("UNAUTHENTICATED", "UDS refused the subscription's credentials") from None
            if ack.get("type") != "connection_ack":
                raise GatewayError("INTERNAL", f"unexpected message {ack.get('type')!r}")
            sid = uuid.uuid4().hex
            payload = {
                "query": operation_texts()["JobEvents"],
                "variables": {"jobId": job_id, "afterSeq": after_seq},
                "operationName": "JobEvents",
            }
            await ws.send(json.dumps({"id": sid, "type": "subscribe", "payload": payload}))
            async for raw in ws:
                message = json.loads(raw)
                kind = message.get("type")
                if kind == "ping":
                    await ws.send(json.dumps({"type": "pong"}))
                elif kind == "next" and message.get("id") == sid:
                    body = message.get("payload") or {}
                    if body.get("errors"):
                        raise GatewayError.from_graphql(body["errors"])
                    yield body["data"]["jobEvents"]
                elif kind == "error" and message.get("id") == sid:
                    raise GatewayError.from_graphql(message.get("payload") or [])
                elif kind == "complete" and message.get("id") == sid:
                    return
