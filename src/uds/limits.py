"""Pure-ASGI request body size limit: oversized requests get 413 before any parsing."""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from uds.errors import RequestTooLarge
from uds.http import header, send_error


class BodyLimitMiddleware:
    def __init__(self, app: ASGIApp, *, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = header(scope, b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.max_bytes):
            await send_error(send, self._too_large())
            return
        received = 0
        started = False

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise _TooLarge
            return message

        try:
            await self.app(scope, counting_receive, guarded_send)
        except _TooLarge:
            # Chunked body without a content-length that turned out too large.
            if not started:
                await send_error(send, self._too_large())

    def _too_large(self) -> RequestTooLarge:
        return RequestTooLarge(f"request body is over {self.max_bytes} bytes")


class _TooLarge(Exception):
    pass
