"""`uds events tail`: follow the domain event stream, one CloudEvent JSON per line."""

from __future__ import annotations

import json
from collections.abc import Collection
from typing import TextIO

from redis.asyncio import Redis

from uds.observability.relay import stream_key
from uds.settings import Settings

BLOCK_MS = 5_000


async def tail(
    settings: Settings,
    *,
    out: TextIO,
    from_start: bool = False,
    types: Collection[str] = (),
    tenant: str | None = None,
    count: int | None = None,
) -> int:
    """Print events as they arrive (all retained ones first with `from_start`).

    `types` keeps events whose type (with or without the `uds.` prefix) is listed,
    `tenant` those of one tenant; `count` stops after that many printed events.
    """
    wanted = {t if t.startswith("uds.") else f"uds.{t}" for t in types}
    redis = Redis.from_url(settings.redis_url or "")
    stream = stream_key(settings.redis_prefix)
    last = "0-0" if from_start else "$"
    printed = 0
    try:
        while count is None or printed < count:
            batches = await redis.xread({stream: last}, block=BLOCK_MS, count=100)
            for _, entries in batches or ():
                for entry_id, fields in entries:
                    last = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
                    raw = fields.get(b"event") or b"{}"
                    event = json.loads(raw)
                    if wanted and event.get("type") not in wanted:
                        continue
                    if tenant is not None and event.get("tenant") != tenant:
                        continue
                    out.write(raw.decode() + "\n")
                    out.flush()
                    printed += 1
                    if count is not None and printed >= count:
                        return 0
    finally:
        await redis.aclose()
    return 0
