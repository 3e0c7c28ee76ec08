"""WebSocket text frames written straight to a connection, for live subscription events.

A job event goes to every subscriber of the job: through ASGI that is, per subscriber,
starlette's and the middlewares' send wrappers, uvicorn's `send` and the websockets
library building the frame in Python. The API process serves WebSockets with
`UdsWebSocketProtocol` (uvicorn's websockets-sansio protocol, its default, plus one scope
extension): `scope["extensions"]["uds.frames"]` is a `FrameWriter` that writes a frame the
caller has built (`text_frame`) to the connection's transport, or says it cannot.

It refuses (returns False) whenever uvicorn's own `send` would not write at once: the
handshake is not complete, a close was sent or received, the peer is gone, or the
transport's buffer is over its high-water mark (uvicorn would wait for it to drain). The
caller then sends through ASGI as usual, which waits, or fails as a closed socket does.
Server frames are not masked and carry no extension bits (per-message deflate, which UDS
turns off, allows uncompressed messages anyway), so a frame written here is exactly what
the websockets library would have written for the same message.

Under another ASGI server (or a uvicorn without this protocol) there is no such
extension and every message goes through ASGI.
"""

from __future__ import annotations

import logging
import struct
from typing import Any

from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from websockets.protocol import State

SCOPE_KEY = "uds.frames"
_LIBRARY_LOG = logging.getLogger("websockets.server")
_TEXT_FIN = 0x81
_HEAD_16 = struct.Struct("!BBH")
_HEAD_64 = struct.Struct("!BBQ")


def text_frame(payload: bytes) -> bytes:
    """An unmasked, final text frame of `payload` (UTF-8: JSON from orjson is)."""
    n = len(payload)
    if n < 126:
        return bytes((_TEXT_FIN, n)) + payload
    if n < 65536:
        return _HEAD_16.pack(_TEXT_FIN, 126, n) + payload
    return _HEAD_64.pack(_TEXT_FIN, 127, n) + payload


class FrameWriter:
    """Writes whole frames to one WebSocket connection of `UdsWebSocketProtocol`."""

    __slots__ = ("_protocol",)

    def __init__(self, protocol: WebSocketsSansIOProtocol) -> None:
        self._protocol = protocol

    def write(self, frame: bytes) -> bool:
        """Write `frame` now and return True, or return False without writing anything."""
        p = self._protocol
        if (
            p.close_sent
            or p.disconnected
            or not p.handshake_complete
            or p.initial_response is not None
            or p.conn.state is not State.OPEN
            or not p.writable.is_set()
            or p.transport.is_closing()
        ):
            return False
        p.transport.write(frame)
        return True


class UdsWebSocketProtocol(WebSocketsSansIOProtocol):
    """uvicorn's websockets-sansio protocol with a `FrameWriter` in the scope's extensions.

    The websockets library logs "connection open" and "connection closed" at INFO for
    every connection, on uvicorn's error logger: here on `websockets.server`, which
    uds.observability.logging keeps at WARNING (uvicorn's own line for each accepted
    WebSocket stays).
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.conn.logger = _LIBRARY_LOG

    def handle_connect(self, event: Any) -> None:
        super().handle_connect(event)
        # The ASGI task is created, not started: the app sees the scope with the writer.
        scope = getattr(self, "scope", None)
        if scope is not None:
            scope.setdefault("extensions", {})[SCOPE_KEY] = FrameWriter(self)


def frame_writer(scope: Any) -> FrameWriter | None:
    """The connection's FrameWriter, if its server provides one."""
    extensions = scope.get("extensions") if scope is not None else None
    return extensions.get(SCOPE_KEY) if extensions else None
