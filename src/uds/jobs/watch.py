"""`uds jobs watch ID --tenant SLUG`: a progress bar on stderr until the job ends.

It follows the same event stream as the `jobEvents` subscription (uds.jobs.stream), read
straight from the database and Redis, so it needs no token: it is an operator's tool
with the server's own configuration. Exit code 0 if the job SUCCEEDED, 1 otherwise.
"""

from __future__ import annotations

import sys
import uuid
from typing import TextIO

from redis.asyncio import Redis
from sqlalchemy import text

from uds.db import make_engine
from uds.errors import NotFound, UdsError
from uds.jobs.events import EventRecord
from uds.jobs.hub import EventHub
from uds.jobs.keys import JobKeys
from uds.jobs.models import SUCCEEDED
from uds.jobs.stream import job_event_stream
from uds.settings import Settings
from uds.tenants.slugs import check_slug

BAR_WIDTH = 30


def render(record: EventRecord) -> str:
    """One line: the bar, the percentage, and what the job says it is doing."""
    filled = round(BAR_WIDTH * record.progress)
    bar = "#" * filled + "-" * (BAR_WIDTH - filled)
    what = " ".join(part for part in (record.phase, record.message) if part)
    return f"{record.job.kind} [{bar}] {record.progress * 100:5.1f}% {what}"[:120]


async def watch(settings: Settings, *, tenant: str, job_id: str, out: TextIO = sys.stderr) -> int:
    try:
        check_slug(tenant)
        jid = uuid.UUID(job_id)
    except (UdsError, ValueError):
        print("uds: give a job id (a UUID) and a tenant slug", file=out)
        return 1
    engine = make_engine(settings, pool_size=2)
    redis = Redis.from_url(settings.redis_url or "")
    hub = EventHub(redis)
    last: EventRecord | None = None
    width = 0
    try:
        async with engine.connect() as conn:
            known = await conn.scalar(text("select 1 from uds.tenants where slug = :s"), {"s": tenant})
        if not known:
            raise NotFound("no such tenant")
        stream = job_event_stream(
            engine=engine, hub=hub, keys=JobKeys(settings.redis_prefix), tenant=tenant, job_id=jid
        )
        async for record in stream:
            line = render(record)
            out.write("\r" + line.ljust(width))
            out.flush()
            width, last = len(line), record
    except NotFound as exc:
        print(f"uds: {exc.message}: job {job_id} of tenant {tenant}", file=out)
        return 1
    finally:
        await hub.close()
        await redis.aclose()
        await engine.dispose()
    out.write("\n")
    if last is None:
        return 1
    status = last.job.status
    print(status if status == SUCCEEDED else f"{status}: {last.job.error or last.message or ''}", file=out)
    return 0 if status == SUCCEEDED else 1
