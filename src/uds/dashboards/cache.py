"""Widget data in Redis, per (tenant, widget id and version, data source id and version).

The key names everything the rows depend on: an edited widget (new version), a changed
connection (new source version) or a new discovery run of the source each read under a
new key, so nothing is ever invalidated by hand; entries expire after
`widget_cache_ttl_seconds`. Redis failing is a miss (logged), never an error: the rows
are fetched from the source instead.
"""

from __future__ import annotations

import logging
from typing import Any

import orjson

log = logging.getLogger(__name__)


def cache_key(
    prefix: str,
    *,
    tenant: str,
    widget_id: str,
    widget_version: int,
    source_id: str,
    source_version: int,
    run_id: str | None,
) -> str:
    return f"{prefix}wd:{tenant}:{widget_id}:{widget_version}:{source_id}:{source_version}:{run_id or '-'}"


async def get(redis: Any, key: str) -> dict[str, Any] | None:
    try:
        raw = await redis.get(key)
    except Exception:
        log.warning("widget data cache: read failed, fetching from the source", exc_info=True)
        return None
    if raw is None:
        return None
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None
    return value if isinstance(value, dict) else None


async def put(redis: Any, key: str, value: dict[str, Any], *, ttl: int) -> None:
    try:
        await redis.set(key, orjson.dumps(value), ex=ttl)
    except Exception:
        log.warning("widget data cache: write failed", exc_info=True)
