"""Pure-ASGI authentication: `Authorization: Bearer <jwt>` -> `scope["principal"]`.

No header means an anonymous request (`principal` None); fields that need a principal
refuse it. A header that is present but bad is refused here with 401, before any other
work. WebSocket connections authenticate in `connection_init` instead.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Receive, Scope, Send

from uds.auth.principal import Principal
from uds.auth.verify import TokenVerifier
from uds.errors import Unauthenticated
from uds.http import header, send_error
from uds.observability import tracing

BEARER = b"bearer "


class AuthMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        scope["principal"] = None
        raw = header(scope, b"authorization")
        if raw is not None and raw[:7].lower() == BEARER:
            try:
                with tracing.span("auth"):
                    scope["principal"] = await bearer_principal(scope["state"]["services"].verifier, raw)
            except Unauthenticated as exc:
                await send_error(send, exc)
                return
        elif raw is not None and raw[:6].lower() != b"basic ":
            await send_error(send, Unauthenticated("Authorization must be 'Bearer <token>'"))
            return
        await self.app(scope, receive, send)


async def bearer_principal(verifier: TokenVerifier, raw: bytes) -> Principal:
    """The principal of a `Bearer <jwt>` credential (also used for WebSocket connection_init)."""
    if raw[:7].lower() != BEARER:
        raise Unauthenticated("Authorization must be 'Bearer <token>'")
    try:
        token = raw[7:].strip().decode("ascii")
    except UnicodeDecodeError:
        raise Unauthenticated("malformed token") from None
    return await verifier.verify(token)
