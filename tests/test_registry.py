"""The tenant registry: concurrent look-ups of the same tenant or role share one query."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from typing import Any

from sqlalchemy import event

from conftest import Server, make_tenant
from uds.tenants.registry import TenantRegistry


@contextlib.contextmanager
def statements(engine: Any) -> Iterator[list[str]]:
    """The registry's statements sent on `engine` within the block."""
    seen: list[str] = []

    def before(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if "uds.tenants" in statement or "uds.memberships" in statement:
            seen.append(statement)

    event.listen(engine.sync_engine, "before_cursor_execute", before)
    try:
        yield seen
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", before)


async def test_concurrent_lookups_share_one_query(server: Server) -> None:
    slug = await make_tenant(server, members={"amy@x": "VIEWER"})
    registry = TenantRegistry(server.services.engine, None)
    with statements(server.services.engine) as seen:
        tenants = await asyncio.gather(*(registry.get(slug) for _ in range(50)))
        assert {t.slug for t in tenants if t is not None} == {slug} and len(seen) == 1, seen
        tenant = tenants[0]
        assert tenant is not None
        roles = await asyncio.gather(*(registry.role_of(tenant, "amy@x") for _ in range(50)))
        assert set(roles) == {"VIEWER"} and len(seen) == 2, seen
        assert await registry.get(slug) is tenant and len(seen) == 2, "then cached"


async def test_a_lookup_after_a_change_does_not_join_an_older_one(server: Server) -> None:
    slug = await make_tenant(server)
    registry = TenantRegistry(server.services.engine, None)
    with statements(server.services.engine) as seen:
        first = asyncio.ensure_future(registry.get(slug))
        await asyncio.sleep(0)  # its read is under way
        registry.forget(slug)  # a change announced while it reads
        second = await registry.get(slug)
        assert (await first) is not None and second is not None
        assert len(seen) == 2, "the second caller read again"


async def test_its_own_announcement_does_not_empty_the_cache_again(server: Server) -> None:
    """The process that announces a change forgets at once (after its commit); when its own
    message comes back, what it read meanwhile stays cached. Another process's message
    still empties it."""
    slug = await make_tenant(server, members={"amy@x": "VIEWER"})
    registry = server.services.registry
    await registry.announce(slug)
    with statements(server.services.engine) as seen:
        assert await registry.get(slug) is not None  # read after the change: cached
        for _ in range(200):  # until the listener has heard the message back
            if slug not in registry._own:
                break
            await asyncio.sleep(0.01)
        assert slug not in registry._own
        assert await registry.get(slug) is not None
        assert len(seen) == 1, seen
        # A message this process did not send (another process's change): forgotten.
        await server.services.redis.publish(registry._channel, slug)
        for _ in range(200):
            await registry.get(slug)
            if len(seen) == 2:
                break
            await asyncio.sleep(0.01)
        assert len(seen) == 2, seen
