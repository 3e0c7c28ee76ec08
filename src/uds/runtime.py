"""Where the servers are, and bringing the database up to date.

Every command resolves servers the same way: the `UDS_*` variables if set, else the
embedded servers under `UDS_DATA_DIR` (reused if `uds up` already runs them).
"""

from __future__ import annotations

import asyncio
import gc
import sys
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from uds.db import make_engine, transaction
from uds.migrations import current_revision, head, run_core_upgrade, run_tenant_upgrade
from uds.settings import Settings
from uds.tenants.slugs import tenant_schema


def settle_heap() -> None:
    """Once a process has started (app lifespan, worker start-up): collect, then move
    everything alive into the collector's permanent generation (modules, the GraphQL
    schema, policies live as long as the process), so full collections only walk what was
    allocated since. Measured in a process holding the app's objects: a 5M-row discovery
    spent 180-250 ms in two full collections, and about 15 ms after this."""
    gc.collect()
    gc.freeze()


# The youngest generation is collected after this many more allocations than frees
# (Python's default is 700). Profiling a table holds ~10 000 sampled rows while it
# allocates more: at 700 they were swept into older generations over and over, which
# cost 60-100 ms of a 5M-row discovery (bench/discovery.py); at 50 000 almost nothing.
YOUNG_GENERATION = 50_000


def collect_less_often() -> None:
    """Process-wide, so only for a process's entry point (`uds worker`, `uds serve`,
    `uds up`, the server factory), never for code that also runs inside other programs:
    in a test process it moves when unreachable objects are finalized to another test."""
    _, middle, old = gc.get_threshold()
    gc.set_threshold(YOUNG_GENERATION, middle, old)


@dataclass
class Servers:
    settings: Settings
    stop: Callable[[], None]


def resolve_servers(settings: Settings, *, progress: Callable[[str], None] | None = None) -> Servers:
    """Settings naming reachable servers, starting embedded ones if none are configured."""
    if settings.database_url and settings.redis_url:
        return Servers(settings, lambda: None)
    from uds.embedded import start_embedded

    embedded = start_embedded(settings.data_dir, progress=progress)
    resolved = settings.with_servers(
        database_url=settings.database_url or embedded.database_url,
        redis_url=settings.redis_url or embedded.redis_url,
    )
    return Servers(resolved, embedded.stop)


async def migrate_core(engine: AsyncEngine) -> None:
    async with engine.begin() as conn:
        await run_core_upgrade(conn)


async def tenant_slugs(engine: AsyncEngine) -> list[str]:
    async with engine.connect() as conn:
        return list(
            (await conn.scalars(text("select slug from uds.tenants order by created_at, slug"))).all()
        )


async def migrate_tenant(engine: AsyncEngine, slug: str) -> bool:
    """Bring one tenant schema to head in its own transaction; True if anything ran."""
    target = head("tenant")
    async with transaction(engine) as tx:
        conn = await tx.connection()
        # Serialise per tenant so two rollouts never run the same schema at once.
        await conn.execute(text("select pg_advisory_xact_lock(hashtext(:s))"), {"s": tenant_schema(slug)})
        current = await conn.run_sync(current_revision, tenant_schema(slug))
        if current == target:
            return False
        await run_tenant_upgrade(conn, slug)
        return True


async def migrate_all_tenants(
    engine: AsyncEngine, *, concurrency: int = 4, on_done: Callable[[str, bool], None] | None = None
) -> None:
    """Migrate every tenant schema: the first one alone (the canary), then the rest in parallel.

    Each schema commits on its own, so a rerun after a failure resumes where it stopped.
    A failure of the canary stops the rollout before any other schema is touched.
    """
    slugs = await tenant_slugs(engine)
    if not slugs:
        return
    changed = await migrate_tenant(engine, slugs[0])
    if on_done:
        on_done(slugs[0], changed)
    gate = asyncio.Semaphore(concurrency)

    async def one(slug: str) -> None:
        async with gate:
            result = await migrate_tenant(engine, slug)
        if on_done:
            on_done(slug, result)

    async with asyncio.TaskGroup() as group:
        for slug in slugs[1:]:
            group.create_task(one(slug))


def progress_bar(total: int, label: str) -> Callable[[str, bool], None]:
    """A one-line progress bar on stderr, advanced once per finished item."""
    done = 0

    def advance(item: str, _changed: bool) -> None:
        nonlocal done
        done += 1
        width = 30
        filled = int(width * done / max(total, 1))
        bar = "#" * filled + "-" * (width - filled)
        sys.stderr.write(f"\r{label} [{bar}] {done}/{total} {item[:30]:<30}")
        if done >= total:
            sys.stderr.write("\n")
        sys.stderr.flush()

    return advance


__all__ = [
    "Servers",
    "make_engine",
    "migrate_all_tenants",
    "migrate_core",
    "migrate_tenant",
    "progress_bar",
    "resolve_servers",
    "tenant_slugs",
]
