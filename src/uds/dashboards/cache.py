"""Widget data in Redis: one entry per (tenant, widget), tagged with what its rows depend on.

The entry's tag names the widget's version, the data source's id and version and the
source's newest discovery run: an edited widget, a changed connection or a new discovery
each make the tag differ, and a tag that differs is a miss (the entry is then replaced),
so nothing is ever invalidated by hand. The key needs no database read, so a request can
read the entry while it reads the widget. Entries expire after `widget_cache_ttl_seconds`.

An entry is `<tag> <data key> <JSON body>`. Redis failing is a miss (logged), never an
error: the rows are fetched from the source instead.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

log = logging.getLogger(__name__)


def cache_key(prefix: str, *, tenant: str, widget_id: str) -> str:
    return f"{prefix}widget-data:v2:{tenant}:{widget_id}"


def cache_tag(*, widget_version: int, source_id: str, source_version: int, run_id: str | None) -> str:
    return f"{widget_version}/{source_id}/{source_version}/{run_id or '-'}"


@dataclass(frozen=True, slots=True)
class Entry:
    tag: str
    data_key: str
    body: bytes  # JSON: {"columns", "rows", "truncated", "insights"}


async def get(redis: Any, key: str) -> Entry | None:
    try:
        raw = await redis.get(key)
    except Exception:
        log.warning("widget data cache: read failed, fetching from the source", exc_info=True)
        return None
    if not raw:
        return None
    parts = bytes(raw).split(b" ", 2)
    if len(parts) != 3:
        return None
    return Entry(parts[0].decode(), parts[1].decode(), parts[2])


async def put(redis: Any, key: str, entry: Entry, *, ttl: int) -> None:
    try:
        await redis.set(key, b" ".join((entry.tag.encode(), entry.data_key.encode(), entry.body)), ex=ttl)
    except Exception:
        log.warning("widget data cache: write failed", exc_info=True)
