"""Cached look-up of tenants and memberships for the request path.

A request must not cost a catalog query: tenants and each (tenant, subject) role are
cached in-process, negative answers too (so a flood of made-up slugs cannot turn into a
flood of queries), and the callers asking for the same while it is read share the one
query. Changes are announced on Redis channel `<UDS_REDIS_PREFIX>tenants:changed`; every
process drops its cached entry for that slug. A TTL bounds staleness if a message is lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
import uuid
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

from redis.asyncio import Redis
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from uds.observability.metrics import cache_lookup, redis_error
from uds.tenants.slugs import tenant_schema

log = logging.getLogger(__name__)

ALL = "*"


def changes_channel(prefix: str) -> str:
    """The Redis channel announcing tenant changes, under the deployment's key prefix."""
    return f"{prefix}tenants:changed"


@dataclass(frozen=True, slots=True)
class TenantRecord:
    """What the request path needs to know about a tenant."""

    id: uuid.UUID
    slug: str
    name: str
    status: str
    plan: str
    limits: dict[str, Any] = field(hash=False, compare=False)

    @property
    def schema(self) -> str:
        return tenant_schema(self.slug)

    @property
    def suspended(self) -> bool:
        return self.status == "suspended"


class _TTLCache:
    def __init__(self, maxsize: int, ttl: float) -> None:
        self._data: OrderedDict[Any, tuple[float, Any]] = OrderedDict()
        self._maxsize = maxsize
        self._ttl = ttl

    def get(self, key: Any) -> tuple[bool, Any]:
        hit = self._data.get(key)
        if hit is None or hit[0] < time.monotonic():
            return False, None
        self._data.move_to_end(key)
        return True, hit[1]

    def put(self, key: Any, value: Any) -> None:
        self._data[key] = (time.monotonic() + self._ttl, value)
        self._data.move_to_end(key)
        while len(self._data) > self._maxsize:
            self._data.popitem(last=False)

    def drop_where(self, predicate: Any) -> None:
        for key in [k for k in self._data if predicate(k)]:
            del self._data[key]

    def clear(self) -> None:
        self._data.clear()


class TenantRegistry:
    """Tenants by slug and roles by (slug, subject), cached and invalidated through Redis."""

    def __init__(
        self, engine: AsyncEngine, redis: Redis | None, *, ttl: float = 30.0, prefix: str = "uds:"
    ) -> None:
        self._engine = engine
        self._channel = changes_channel(prefix)
        self._redis = redis
        self._tenants = _TTLCache(maxsize=20_000, ttl=ttl)
        self._roles = _TTLCache(maxsize=100_000, ttl=ttl)
        self._listener: asyncio.Task[None] | None = None
        self._flights: dict[tuple[Any, ...], tuple[int, asyncio.Future[Any]]] = {}
        self._generation = 0  # bumped by every `forget`
        self._own: dict[str, int] = {}  # slug -> this process's announcements not heard back yet

    async def get(self, slug: str) -> TenantRecord | None:
        """The tenant with this (already validated) slug, or None."""
        found, record = self._tenants.get(slug)
        cache_lookup("tenant", found)
        if found:
            return record  # type: ignore[no-any-return]
        record, generation = await self._load(("tenant", slug), self._read_tenant, slug)
        if generation == self._generation:
            self._tenants.put(slug, record)
        return record  # type: ignore[no-any-return]

    async def role_of(self, tenant: TenantRecord, subject: str) -> str | None:
        """The subject's role in the tenant (VIEWER/EDITOR/ADMIN), or None if not a member."""
        key = (tenant.slug, subject)
        found, role = self._roles.get(key)
        cache_lookup("membership", found)
        if found:
            return role  # type: ignore[no-any-return]
        role, generation = await self._load(("role", *key), self._read_role, tenant.id, subject)
        if generation == self._generation:
            self._roles.put(key, role)
        return role  # type: ignore[no-any-return]

    async def _load(self, key: tuple[Any, ...], read: Any, *args: Any) -> tuple[Any, int]:
        """`read(*args)`, shared by every caller asking for `key` while it runs (a thousand
        WebSockets connecting at once cost one query), unless a change was announced since
        it started. Returns the answer and the generation it belongs to. The read runs in
        a task of its own: one caller going away does not cancel the others' answer."""
        generation = self._generation
        flight = self._flights.get(key)
        if flight is None or flight[0] != generation:
            task = asyncio.ensure_future(read(*args))
            flight = self._flights[key] = (generation, task)
            task.add_done_callback(functools.partial(self._landed, key, flight))
        return await asyncio.shield(flight[1]), flight[0]

    def _landed(self, key: tuple[Any, ...], flight: tuple[int, asyncio.Future[Any]], task: Any) -> None:
        if self._flights.get(key) is flight:
            del self._flights[key]
        if not task.cancelled():
            task.exception()  # retrieved: the callers that waited have it

    async def _read_tenant(self, slug: str) -> TenantRecord | None:
        async with self._engine.connect() as conn:
            row = (
                await conn.execute(
                    text("select id, slug, name, status, plan, limits from uds.tenants where slug = :s"),
                    {"s": slug},
                )
            ).first()
        return TenantRecord(*row) if row else None

    async def _read_role(self, tenant_id: uuid.UUID, subject: str) -> str | None:
        async with self._engine.connect() as conn:
            role = await conn.scalar(
                text("select role from uds.memberships where tenant_id = :t and subject = :s"),
                {"t": tenant_id, "s": subject},
            )
        return role  # type: ignore[no-any-return]

    def forget(self, slug: str) -> None:
        """Drop this process's cached entries for a slug (or all, for ALL)."""
        self._generation += 1  # reads in flight now may be stale: they are not cached or joined
        if slug == ALL:
            self._tenants.clear()
            self._roles.clear()
            return
        self._tenants.drop_where(lambda k: k == slug)
        self._roles.drop_where(lambda k: k[0] == slug)

    async def announce(self, slug: str) -> None:
        """Tell every process (this one included) that the tenant changed. Call after commit."""
        self.forget(slug)
        if self._redis is not None:
            # This process forgot already, after the commit: its own message, when it comes
            # back, need not drop what was read since (a second query for nothing, and a
            # miss in the middle of a request that the cache had answered).
            self._own[slug] = self._own.get(slug, 0) + 1
            try:
                await self._redis.publish(self._channel, slug)
            except Exception:  # the TTL still bounds staleness; the change itself is committed
                self._own[slug] -= 1
                redis_error("tenant_registry")
                log.warning("could not announce tenant change for %s", slug, exc_info=True)

    def _heard(self, slug: str) -> None:
        """A change announced on the channel: forget it, unless it is this process's own.

        Which message is whose is not known (the slug is all it says): of the messages for
        a slug, as many as this process sent are taken as its own. Another process's change
        announced in between is then forgotten when this one's message arrives instead,
        one message later; every change is forgotten once all messages are in."""
        own = self._own.get(slug, 0)
        if own > 0:
            if own == 1:
                del self._own[slug]
            else:
                self._own[slug] = own - 1
            return
        self.forget(slug)

    async def start(self) -> None:
        if self._redis is not None and self._listener is None:
            self._listener = asyncio.create_task(self._listen(), name="tenant-registry-listener")

    async def stop(self) -> None:
        if self._listener is not None:
            self._listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._listener
            self._listener = None

    async def _listen(self) -> None:
        assert self._redis is not None
        while True:
            pubsub = self._redis.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(self._channel)
                # Anything may have changed while we were not listening.
                self._own.clear()
                self.forget(ALL)
                async for message in pubsub.listen():
                    data = message.get("data")
                    if isinstance(data, bytes):
                        data = data.decode()
                    if isinstance(data, str):
                        self._heard(data)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                redis_error("tenant_registry")
                log.warning("tenant change listener lost Redis (%s: %s); retrying", type(exc).__name__, exc)
                log.debug("tenant change listener error", exc_info=True)
                self.forget(ALL)
                await asyncio.sleep(1.0)
            finally:
                with contextlib.suppress(Exception):
                    await pubsub.aclose()
