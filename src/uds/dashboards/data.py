"""Running widget SQL on a data source: guarded, read-only, bounded, on reused connections.

Every connection is opened the way discovery opens one (`uds.datasources.connect`): the
network guard vets the host, the session is read-only (`default_transaction_read_only`),
`search_path` is `pg_catalog` (unqualified names resolve only to built-ins), and a
statement timeout bounds every query. Unlike a discovery run, widget data is asked for
again and again, so connections are kept in a small asyncpg pool per (tenant, data source,
source version); a changed source (new version) gets a new pool, and a pool idle for a
while closes its connections.

What runs is the checked statement (`uds.dashboards.sqlcheck`) wrapped in
`SELECT * FROM (...) LIMIT n + 1`, so one extra row tells that the result was truncated.
Failures are `WidgetSourceError`s with clear codes, never INTERNAL:

- `SOURCE_CHANGED`: a table, column, schema or type the widget reads is gone (the source
  changed since discovery);
- `SOURCE_UNAVAILABLE`: the database is gone, unreachable, refuses the login, or the
  query ran past the timeout (`extensions.reason` says which: unreachable, auth_failed,
  access_denied, timeout, gone, failed, refused).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass, field, replace
from typing import Any

import asyncpg

from uds.datasources.connect import SourceLimits, explain, first_line, guarded_session
from uds.datasources.errors import SourceError
from uds.datasources.guard import NetworkGuard
from uds.datasources.params import ConnectionParams
from uds.errors import UdsError

log = logging.getLogger(__name__)

APPLICATION_NAME = "uds-dashboards"
POOL_SIZE = 4
IDLE_SECONDS = 30.0  # a pooled connection unused this long is closed
POOL_MAX_AGE = 600.0  # a pool older than this is replaced (the host is vetted again)
MAX_POOLS = 64


class WidgetSourceError(UdsError):
    """The widget's data source could not answer its query."""

    code = "SOURCE_UNAVAILABLE"
    http_status = 503


class SourceChanged(WidgetSourceError):
    """The widget reads something the data source no longer has."""

    code = "SOURCE_CHANGED"
    http_status = 409


# asyncpg errors meaning the query names something that is not there (any more).
_CHANGED = (
    asyncpg.UndefinedTableError,
    asyncpg.UndefinedColumnError,
    asyncpg.InvalidSchemaNameError,
    asyncpg.UndefinedObjectError,
    asyncpg.UndefinedFunctionError,
)
# Errors after which a pooled connection cannot be trusted: drop the pool, try once more.
_LOST = (
    asyncpg.ConnectionDoesNotExistError,
    asyncpg.AdminShutdownError,
    asyncpg.InterfaceError,
    ConnectionError,
)


@dataclass(slots=True)
class Fetched:
    columns: list[str]
    rows: list[tuple[Any, ...]]
    truncated: bool
    elapsed_ms: float


@dataclass(slots=True)
class _Pool:
    pool: asyncpg.Pool
    created: float = field(default_factory=time.monotonic)


class SourcePools:
    """asyncpg pools per (tenant, data source id, source version), for one event loop."""

    def __init__(self) -> None:
        self._pools: dict[tuple[str, str, int], _Pool] = {}
        self._lock = asyncio.Lock()
        # Connection parameters (password opened) of the sources with a pool, so a cache
        # miss on a known source reads nothing from the platform database.
        self.params: dict[tuple[str, str, int], ConnectionParams] = {}

    async def _get(
        self, key: tuple[str, str, int], params: ConnectionParams, guard: NetworkGuard, settings: Any
    ) -> asyncpg.Pool:
        entry = self._pools.get(key)
        if entry is not None and time.monotonic() - entry.created < POOL_MAX_AGE:
            return entry.pool
        async with self._lock:
            entry = self._pools.get(key)
            if entry is not None and time.monotonic() - entry.created < POOL_MAX_AGE:
                return entry.pool
            if entry is not None:
                await self._drop(key)
            # Versions of the same source before this one will not be asked for again.
            for old in [k for k in self._pools if k[:2] == key[:2] and k[2] != key[2]]:
                await self._drop(old)
            while len(self._pools) >= MAX_POOLS:
                await self._drop(min(self._pools, key=lambda k: self._pools[k].created))
            pool = await _create_pool(params, guard, settings)
            self._pools[key] = _Pool(pool)
            return pool

    async def _drop(self, key: tuple[str, str, int]) -> None:
        entry = self._pools.pop(key, None)
        self.params.pop(key, None)
        if entry is not None:
            try:
                await asyncio.wait_for(entry.pool.close(), timeout=5)
            except BaseException:
                entry.pool.terminate()

    async def forget(self, tenant: str, source_id: str) -> None:
        """Close the pools of one data source (deleted, or its database found gone)."""
        for key in [k for k in self._pools if k[:2] == (tenant, source_id)]:
            await self._drop(key)

    async def close(self) -> None:
        for key in list(self._pools):
            await self._drop(key)

    async def fetch(
        self,
        *,
        tenant: str,
        source_id: str,
        source_version: int,
        params: ConnectionParams,
        guard: NetworkGuard,
        settings: Any,
        sql: str,
        row_limit: int,
    ) -> Fetched:
        """Run the (checked) statement; at most `row_limit` rows, `truncated` if there were more."""
        key = (tenant, source_id, source_version)
        wrapped = f"SELECT * FROM ({sql}) AS uds_widget LIMIT {int(row_limit) + 1}"
        for attempt in (1, 2):
            try:
                pool = await self._get(key, params, guard, settings)
            except SourceError as exc:
                raise _unavailable(exc) from None
            started = time.perf_counter()
            try:
                async with pool.acquire() as conn:
                    records = await conn.fetch(wrapped)  # through the statement cache
                    if records:
                        columns = list(records[0].keys())
                    else:  # no row to read the names from: ask the statement
                        columns = [a.name for a in (await conn.prepare(wrapped)).get_attributes()]
            except _CHANGED as exc:
                raise SourceChanged(
                    f"the data source changed since discovery: {first_line(exc)}; "
                    "run discovery again and regenerate or edit the widget",
                    extensions={"reason": "changed"},
                ) from None
            except _LOST as exc:
                await self._drop_quietly(key)
                if attempt == 1:
                    continue
                raise _unavailable(explain(exc, params)) from None
            except asyncpg.PostgresError as exc:
                if isinstance(exc, asyncpg.InvalidCatalogNameError):
                    await self._drop_quietly(key)
                raise _unavailable(explain(exc, params)) from None
            except (OSError, TimeoutError) as exc:
                await self._drop_quietly(key)
                raise _unavailable(explain(exc, params)) from None
            elapsed = (time.perf_counter() - started) * 1000
            rows = [tuple(r) for r in records]
            truncated = len(rows) > row_limit
            return Fetched(columns, rows[:row_limit], truncated, elapsed)
        raise AssertionError("unreachable")

    async def _drop_quietly(self, key: tuple[str, str, int]) -> None:
        async with self._lock:
            await self._drop(key)


def _unavailable(exc: SourceError) -> WidgetSourceError:
    return WidgetSourceError(
        f"the widget's data source is not available: {exc.message}",
        extensions={"reason": exc.kind},
    )


async def _create_pool(params: ConnectionParams, guard: NetworkGuard, settings: Any) -> asyncpg.Pool:
    limits = replace(
        SourceLimits.from_settings(settings),
        statement_timeout_ms=int(getattr(settings, "widget_statement_timeout_ms", 10_000)),
        idle_timeout_ms=60_000,
    )
    session = await guarded_session(params, guard=guard, limits=limits, application_name=APPLICATION_NAME)
    try:
        return await asyncpg.create_pool(
            **session,  # type: ignore[arg-type]
            # Widget SQL repeats: prepared once per connection, one round trip afterwards.
            # (A pooler in transaction mode needs max_prepared_statements, PgBouncer >= 1.21.)
            statement_cache_size=256,
            min_size=0,
            max_size=POOL_SIZE,
            max_inactive_connection_lifetime=IDLE_SECONDS,
            reset=_keep,
        )
    except BaseException as exc:
        if isinstance(exc, asyncio.CancelledError | KeyboardInterrupt):
            raise
        raise explain(exc, params, connecting=True) from None


async def _keep(conn: asyncpg.Connection) -> None:
    """What a released connection needs reset: nothing. Widget SQL is one checked SELECT in
    autocommit: it cannot SET, LISTEN, lock, open a cursor or a transaction (asyncpg's
    default reset would cost a round trip on every query)."""


# One SourcePools per Services object and event loop (pools belong to a loop).
_REGISTRY: dict[tuple[int, int], SourcePools] = {}


def pools_for(services: Any) -> SourcePools:
    key = (id(services), id(asyncio.get_running_loop()))
    pools = _REGISTRY.get(key)
    if pools is None:
        pools = _REGISTRY[key] = SourcePools()
    return pools


async def close_pools(services: Any) -> None:
    """Close every pool of `services` (called when the services close)."""
    for key in [k for k in _REGISTRY if k[0] == id(services)]:
        pools = _REGISTRY.pop(key)
        with contextlib.suppress(Exception):
            await pools.close()
