"""Live subscription events written straight to the subscribers' sockets.

Every subscription starts on the ordinary path: strawberry's graphql-transport-ws handler
runs the operation (parse and validation from the cache, the resolver's membership,
policy and rate-limit checks), and the replayed events go through graphql-core's
per-event execution and the ASGI send, one subscriber at a time.

Once a subscriber is caught up, the event hub's reader offers it each live event
(uds.jobs.hub.Inbox.sink, uds.jobs.stream) and `LiveEvents` sends it in the reader's own
turn of the event loop, without waking the subscriber's task: the event's result for the
operation's shape is made once for all subscribers that share it (uds.api.execution), the
`next` message is that JSON with the operation's id around it, and the frame goes to
the socket's transport (uds.api.wsframes). It declines, and the event takes the ordinary
path, whenever it cannot do exactly what that path would: no frame writer (another
server), an operation whose result is not shareable, the operation completed or
replaced, a socket that is closing or whose buffer is full (the ordinary path waits for
it to drain). After a terminal event sent here, the subscriber's stream ends and the
ordinary path sends `complete`.
"""

from __future__ import annotations

import contextvars
from collections.abc import AsyncIterator
from typing import Any

import orjson

from uds.api.execution import STATS, SharedEvent, event_body, share_key
from uds.api.wsframes import FrameWriter, frame_writer, text_frame

# The graphql-transport-ws operation whose task is running (uds.api.view sets it at the
# start of the operation's task; its resolver and stream run in that task).
OPERATION: contextvars.ContextVar[Any] = contextvars.ContextVar("uds_ws_operation", default=None)

_SUFFIX = b"}}"


class LiveEvents:
    """Sends one subscription's live events as `next` frames, or declines."""

    __slots__ = ("_executor", "_key", "_operation", "_prefix", "_share", "_writer")

    def __init__(self, writer: FrameWriter, operation: Any, share: Any) -> None:
        self._writer = writer
        self._operation = operation
        self._share = share  # record -> SharedEvent (uds.api.jobs)
        self._executor: Any = None  # the subscription's executor, once it is known
        self._key: Any = None  # its share key (None: its results are not shared)
        self._prefix = b'{"id":' + orjson.dumps(operation.id) + b',"type":"next","payload":{"data":'

    def bind(self, executor: Any) -> None:
        self._executor, self._key = executor, share_key(executor)

    def __call__(self, record: Any) -> bool:
        key, op = self._key, self._operation
        if key is None or op.completed or op.handler.operations.get(op.id) is not op:
            return False
        shared: SharedEvent = self._share(record)
        body = event_body(self._executor, key, shared)
        if body is None:
            return False
        if not self._writer.write(text_frame(self._prefix + body + _SUFFIX)):
            return False
        STATS["live_frames"] += 1
        return True


class EventFeed:
    """A subscription's source stream (an async iterator over `events`) that hands its
    executor to `live` when graphql-core maps it (UdsExecutor.cancellable_iterable)."""

    __slots__ = ("_events", "live")

    def __init__(self, events: AsyncIterator[Any], live: LiveEvents | None) -> None:
        self._events = events
        self.live = live

    def __aiter__(self) -> EventFeed:
        return self

    def __anext__(self) -> Any:
        return self._events.__anext__()

    async def aclose(self) -> None:
        aclose = getattr(self._events, "aclose", None)
        if aclose is not None:
            await aclose()

    def bind(self, executor: Any) -> None:
        if self.live is not None:
            self.live.bind(executor)


def live_events(context: Any, share: Any) -> LiveEvents | None:
    """A LiveEvents for the current graphql-transport-ws operation, if its connection
    has a frame writer (uds.api.wsframes); None otherwise."""
    operation = OPERATION.get()
    request = getattr(context, "request", None)
    writer = frame_writer(getattr(request, "scope", None))
    if operation is None or writer is None:
        return None
    return LiveEvents(writer, operation, share)
