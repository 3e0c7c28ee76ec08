"""No event is lost while Redis is down: the change commits, the outbox keeps its event,
and the relay delivers it once Redis is back.

A module of its own: no other relaying server may run meanwhile, or it would take the
event from the shared outbox to its own stream.
"""

from __future__ import annotations

import asyncio
from dataclasses import replace
from pathlib import Path

from sqlalchemy import func, select

from conftest import start_server, unique_slug
from events.test_domain_events import check_envelope, settled
from private_redis import PrivateRedis
from uds.observability.events import OUTBOX
from uds.settings import Settings


async def test_no_event_lost_while_redis_is_down(migrated: Settings, tmp_path: Path) -> None:
    redis = PrivateRedis(tmp_path / "valkey").start()
    settings = replace(migrated, redis_url=redis.url, events_relay=True, events_relay_interval_seconds=0.1)
    try:
        async for server in start_server(settings):
            redis.stop()
            slug = unique_slug()
            data = await server.admin(
                """mutation($s: String!) { admin { createTenant(input: {slug: $s, name: "Offline"}) {
                __typename } } }""",
                {"s": slug},
            )
            assert data["admin"]["createTenant"]["__typename"] == "Tenant"  # the change needs no Redis
            await asyncio.sleep(0.5)  # the relay tries, fails, keeps the event
            async with server.services.engine.connect() as conn:
                query = select(func.count()).select_from(OUTBOX).where(OUTBOX.c.tenant == slug)
                assert await conn.scalar(query) == 1
            redis.start()  # same port, empty: the relay delivers at its next attempt
            found = await settled(server, slug, 1, within=40)
            assert [e["type"] for e in found] == ["uds.tenant.created"]
            check_envelope(found[0], server.settings)
    finally:
        redis.stop()
