"""Plain-ASGI helpers shared by the middlewares: header lookup and error responses."""

from __future__ import annotations

import json

from starlette.types import Scope, Send

from uds.errors import UdsError
from uds.observability.activity import note_outcome


def header(scope: Scope, name: bytes) -> bytes | None:
    """The first value of a (lower-case) request header, or None."""
    for key, value in scope["headers"]:
        if key == name:
            return value  # type: ignore[no-any-return]
    return None


def error_body(exc: UdsError) -> bytes:
    extensions: dict[str, object] = {"code": exc.code}
    if exc.reasons:
        extensions["reasons"] = list(exc.reasons)
    extensions.update(exc.extensions)
    return json.dumps({"errors": [{"message": exc.message, "extensions": extensions}]}).encode()


async def send_error(send: Send, exc: UdsError) -> None:
    """Answer an HTTP request with a GraphQL-shaped error body and the error's status."""
    note_outcome(exc.code)
    body = error_body(exc)
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
    ]
    if exc.http_status == 401:
        headers.append((b"www-authenticate", b'Bearer realm="uds"'))
    await send({"type": "http.response.start", "status": exc.http_status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
