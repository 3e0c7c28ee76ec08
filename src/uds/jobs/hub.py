"""One Redis pub/sub connection per process, fanned out to every local subscriber.

A thousand subscribers to one job's events cost one Redis SUBSCRIBE and one JSON decode
per event, not a thousand: a subscriber joining a channel this process is already
subscribed to sends no Redis command at all. `subscribe(channel)` returns only once
Redis has confirmed the SUBSCRIBE, so a caller that reads stored events afterwards
cannot miss one published in between. Pub/sub is at-most-once: after a reconnect, or
when a slow subscriber's inbox overflows, the subscriber gets RESYNC and reads what it
missed from the database.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.client import PubSub

from uds.observability.metrics import redis_error

log = logging.getLogger(__name__)

RESYNC: dict[str, Any] = {"resync": True}  # "you may have missed messages: read the database"
INBOX_SIZE = 1000
SUBSCRIBE_TIMEOUT = 5.0
READ_TIMEOUT = 1.0


class Inbox:
    """A subscriber's queue of decoded messages (shared dicts: read them, do not change them).

    A deque and at most one waiting future: an idle subscriber holds a few hundred bytes.

    `sink`, when set, is offered each message that would otherwise be queued behind none:
    it returns True if it has delivered the message itself (the API writes a live event
    straight to the subscriber's socket, uds.api.live), and the reader is not woken for
    it. Anything it declines is queued as before, so order is kept: the sink never sees
    a message while earlier ones wait in the queue.
    """

    __slots__ = ("_heard", "_items", "_waiter", "sink")

    def __init__(self) -> None:
        self._items: collections.deque[dict[str, Any]] = collections.deque()
        self._waiter: asyncio.Future[None] | None = None
        self._heard = False  # the sink took a message since the reader began to wait
        self.sink: Callable[[dict[str, Any]], bool] | None = None

    def put(self, message: dict[str, Any]) -> None:
        if not self._items and self.sink is not None:
            try:
                taken = self.sink(message)
            except Exception:
                log.exception("a subscriber's direct delivery failed; it reads its queue from now on")
                self.sink, taken = None, False
            if taken:
                self._heard = True
                return
        if len(self._items) >= INBOX_SIZE:
            # Bounded memory for a stalled reader; it re-reads from the database instead.
            self._items.clear()
            message = RESYNC
        self._items.append(message)
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def get(self, wait: float) -> dict[str, Any] | None:
        """The next message, or None after `wait` seconds without one (messages the sink
        took count: the channel was not quiet)."""
        if not self._items:
            loop = asyncio.get_running_loop()
            while True:
                self._heard = False
                waiter = self._waiter = loop.create_future()
                # A timer that resolves the waiter: cheaper than asyncio.timeout (no task
                # cancellation to undo), and this runs for every event of every subscriber.
                timer = loop.call_later(wait, _wake, waiter)
                try:
                    await waiter
                finally:
                    timer.cancel()
                    self._waiter = None
                if self._items or not self._heard:
                    break
        return self._items.popleft() if self._items else None


def _wake(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)


class EventHub:
    """Shared subscriptions to Redis channels for this process; publishing too."""

    def __init__(self, redis: Redis) -> None:
        self._redis = redis
        self._pubsub: PubSub | None = None
        self._reader: asyncio.Task[None] | None = None
        # Redis commands on the pub/sub connection go one at a time, in order: an
        # UNSUBSCRIBE of a channel's last subscriber before the next one's SUBSCRIBE.
        self._lock = asyncio.Lock()
        self._inboxes: dict[str, set[Inbox]] = {}
        self._confirmed: dict[str, asyncio.Event] = {}
        self.subscribe_commands = 0  # SUBSCRIBEs sent (a new channel, or a reconnect)

    async def publish(self, channel: str, message: dict[str, Any]) -> int:
        """Publish a JSON message; returns how many processes received it."""
        return int(await self._redis.publish(channel, json.dumps(message, separators=(",", ":"))))

    def subscribers(self, channel: str) -> int:
        return len(self._inboxes.get(channel, ()))

    @contextlib.asynccontextmanager
    async def subscribe(self, channel: str) -> AsyncIterator[Inbox]:
        """Receive `channel`'s messages in an Inbox for the duration of the block."""
        inbox = Inbox()
        members = self._inboxes.get(channel)
        if members is None:
            members = self._inboxes[channel] = set()
            self._confirmed[channel] = asyncio.Event()
            async with self._lock:
                await self._ensure_reader()
                assert self._pubsub is not None
                self.subscribe_commands += 1
                await self._pubsub.subscribe(channel)
        members.add(inbox)
        confirmed = self._confirmed[channel]
        try:
            if not confirmed.is_set():
                try:
                    async with asyncio.timeout(SUBSCRIBE_TIMEOUT):
                        await confirmed.wait()
                except TimeoutError:
                    # Not fatal: the subscriber polls the database while it hears nothing.
                    log.warning("no SUBSCRIBE confirmation for %s after %ss", channel, SUBSCRIBE_TIMEOUT)
            yield inbox
        finally:
            members.discard(inbox)
            if not members and self._inboxes.get(channel) is members:
                del self._inboxes[channel]
                self._confirmed.pop(channel, None)
                async with self._lock:
                    if self._pubsub is not None and channel not in self._inboxes:
                        with contextlib.suppress(Exception):
                            await self._pubsub.unsubscribe(channel)

    async def _ensure_reader(self) -> None:
        if self._pubsub is None:
            self._pubsub = self._redis.pubsub()
        if self._reader is None or self._reader.done():
            self._reader = asyncio.create_task(self._read(), name="job-event-hub")

    async def _read(self) -> None:
        while True:
            pubsub = self._pubsub
            assert pubsub is not None
            try:
                if pubsub.connection is None:
                    await asyncio.sleep(0.05)  # first SUBSCRIBE is on its way
                    continue
                message = await pubsub.get_message(timeout=READ_TIMEOUT)
                if message is not None:
                    self._dispatch(message)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                # One line per outage; the traceback only at debug level (it says no more).
                redis_error("event_hub")
                log.warning(
                    "job event subscription lost Redis (%s: %s); reconnecting", type(exc).__name__, exc
                )
                log.debug("job event subscription error", exc_info=True)
                await self._reconnect()

    def _dispatch(self, message: dict[str, Any]) -> None:
        channel = message.get("channel")
        if isinstance(channel, bytes):
            channel = channel.decode()
        kind = message.get("type")
        if kind == "subscribe":
            event = self._confirmed.get(channel)  # type: ignore[arg-type]
            if event is not None:
                event.set()
            return
        if kind != "message":
            return
        inboxes = self._inboxes.get(channel)  # type: ignore[arg-type]
        if not inboxes:
            return
        try:
            decoded = json.loads(message["data"])
        except (TypeError, ValueError):
            log.warning("ignoring a malformed message on %s", channel)
            return
        for inbox in tuple(inboxes):  # a copy: a sink's write must not see the set change
            inbox.put(decoded)

    async def _reconnect(self) -> None:
        """A fresh pub/sub connection with every current channel; everyone resyncs."""
        delay = 0.2
        while True:
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)
            async with self._lock:
                old, self._pubsub = self._pubsub, self._redis.pubsub()
                if old is not None:
                    with contextlib.suppress(Exception):
                        await old.aclose()
                channels = list(self._inboxes)
                try:
                    if channels:
                        self.subscribe_commands += 1
                        await self._pubsub.subscribe(*channels)
                    else:
                        await self._pubsub.connect()
                except Exception:
                    log.warning("could not resubscribe to job events yet", exc_info=True)
                    continue
                for channel in channels:
                    for inbox in self._inboxes[channel]:
                        inbox.put(RESYNC)
                return

    async def close(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader
            self._reader = None
        if self._pubsub is not None:
            with contextlib.suppress(Exception):
                await self._pubsub.aclose()
            self._pubsub = None
