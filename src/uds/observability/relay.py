"""The outbox relay: committed events to the Redis stream `<prefix>events`, each once.

Every API process and every worker runs one relay. A pass takes the oldest outbox rows
in a transaction that holds an advisory lock (one relay at a time across the deployment,
so the stream keeps commit order within a pass), appends them to the stream with one
script call, deletes them and commits. If Redis is unreachable the transaction rolls
back and the rows wait for the next pass; if the commit fails after the append, the next
pass appends them again, and the script drops them: it remembers the ids it appended in
a sorted set (`<prefix>events:seen`, SEEN_SECONDS long), so the stream holds each event
once. The stream is trimmed to about `UDS_EVENTS_MAXLEN` entries (`MAXLEN ~`).

Each stream entry has the fields `id`, `type` and `event` (the CloudEvent JSON).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import RedisError
from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from uds.observability import metrics
from uds.observability.events import OUTBOX, envelope
from uds.settings import Settings

log = logging.getLogger(__name__)

BATCH = 200
SEEN_SECONDS = 86_400
RETRY_CEILING = 30.0  # seconds between attempts while Redis or the database is away
# Advisory lock (two-int form) held by the relay pass that owns the outbox right now.
RELAY_LOCK = (0x455654, 1)

# KEYS: stream, seen-set. ARGV: maxlen, seen seconds, then (id, type, event) triples.
APPEND = """
local now = tonumber(redis.call('TIME')[1])
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now - tonumber(ARGV[2]))
local added = 0
for i = 3, #ARGV, 3 do
  if redis.call('ZADD', KEYS[2], 'NX', now, ARGV[i]) == 1 then
    redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[1], '*',
               'id', ARGV[i], 'type', ARGV[i + 1], 'event', ARGV[i + 2])
    added = added + 1
  end
end
return added
"""


def stream_key(prefix: str) -> str:
    return f"{prefix}events"


class EventRelay:
    def __init__(self, engine: AsyncEngine, settings: Settings) -> None:
        self.engine = engine
        self.settings = settings
        self.stream = stream_key(settings.redis_prefix)
        self.seen = f"{settings.redis_prefix}events:seen"
        # A client of its own with timeouts: a Redis that hangs must not hold the
        # outbox's lock (and a transaction) open for long.
        self.redis = Redis.from_url(settings.redis_url or "", socket_timeout=5, socket_connect_timeout=5)
        self._append = self.redis.register_script(APPEND)
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._failing = False

    def nudge(self) -> None:
        """Something may have been committed: look now rather than at the next interval."""
        self._wake.set()

    async def relay_once(self) -> int:
        """One pass: up to BATCH events appended and removed from the outbox; how many."""
        async with self.engine.begin() as conn:
            locked = await conn.scalar(select(func.pg_try_advisory_xact_lock(*RELAY_LOCK)))
            if not locked:
                return 0  # another relay is on it
            rows = (
                await conn.execute(
                    select(
                        OUTBOX.c.seq,
                        OUTBOX.c.id,
                        OUTBOX.c.type,
                        OUTBOX.c.tenant,
                        OUTBOX.c.subject,
                        OUTBOX.c.time,
                        OUTBOX.c.data,
                    )
                    .order_by(OUTBOX.c.seq)
                    .limit(BATCH)
                )
            ).all()
            if not rows:
                return 0
            args: list[Any] = [self.settings.events_maxlen, SEEN_SECONDS]
            for row in rows:
                body = envelope(
                    source=self.settings.event_source,
                    event_id=row.id,
                    type=row.type,
                    tenant=row.tenant,
                    subject=row.subject,
                    time=row.time,
                    data=row.data,
                )
                args += [str(row.id), row.type, body]
            await self._append(keys=[self.stream, self.seen], args=args)
            await conn.execute(delete(OUTBOX).where(OUTBOX.c.seq.in_([r.seq for r in rows])))
        return len(rows)

    async def drain(self) -> int:
        """Relay until the outbox is empty (or another relay holds it); how many."""
        total = 0
        while (count := await self.relay_once()) > 0:
            total += count
        return total

    async def run(self) -> None:
        """Relay forever: at every nudge, else every UDS_EVENTS_RELAY_INTERVAL seconds."""
        interval = self.settings.events_relay_interval_seconds
        delay = interval
        while True:
            self._wake.clear()
            try:
                await self.drain()
                if self._failing:
                    log.info("event relay: delivering again")
                self._failing, delay = False, interval
            except asyncio.CancelledError:
                raise
            except (RedisError, OSError) as exc:
                self._note_failure(exc, "Redis")
                metrics.redis_error("event_relay")
                delay = min(RETRY_CEILING, max(delay * 2, interval))
            except Exception as exc:
                self._note_failure(exc, "the database")
                delay = min(RETRY_CEILING, max(delay * 2, interval))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=delay)

    def _note_failure(self, exc: BaseException, what: str) -> None:
        if not self._failing:
            log.warning(
                "event relay: %s unavailable (%s); events wait in the outbox", what, type(exc).__name__
            )
        log.debug("event relay failure", exc_info=exc)
        self._failing = True

    def start(self) -> None:
        """Run the relay in the background, unless UDS_EVENTS_RELAY is off for this process."""
        if self._task is None and self.settings.events_relay:
            self._task = asyncio.create_task(self.run(), name="uds-event-relay")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        with contextlib.suppress(Exception):
            await self.redis.aclose()
