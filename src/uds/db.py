"""Metadata, engines and the tenant session scope.

Shared tables are pinned to schema `uds`; tenant tables have no schema and are mapped to
the tenant's schema per request with `schema_translate_map`, never with `SET search_path`.

Two engines: the read-write one (every mutation, job and migration: one transaction per
unit of work) and the read-only one that GraphQL queries use (`make_read_engine`): its
connections are in autocommit, so a read costs no BEGIN/COMMIT round trips, and are
read-only at the server (`default_transaction_read_only`), so a query cannot write.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any

import asyncpg
from sqlalchemy import Connection, DateTime, MetaData, make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession, create_async_engine
from sqlalchemy.orm import DeclarativeBase
from sqlalchemy.util import greenlet_spawn

from uds.errors import TenantRequired
from uds.observability.dbpool import ObservedPool
from uds.settings import Settings
from uds.tenants.slugs import CORE_SCHEMA, tenant_schema

NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class CoreBase(DeclarativeBase):
    """Tables in the shared schema `uds`."""

    metadata = MetaData(schema=CORE_SCHEMA, naming_convention=NAMING)
    type_annotation_map = {datetime: DateTime(timezone=True)}


class TenantBase(DeclarativeBase):
    """Tables in every tenant's schema; mapped per request by schema_translate_map."""

    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map = {datetime: DateTime(timezone=True)}


def async_url(url: str) -> str:
    """The SQLAlchemy asyncpg URL for a postgres:// or postgresql:// URL."""
    parsed = make_url(url)
    return parsed.set(drivername="postgresql+asyncpg").render_as_string(hide_password=False)


def libpq_url(url: str) -> str:
    """The URL as asyncpg takes it (postgresql://, no SQLAlchemy driver name)."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def make_engine(settings: Settings, *, pool_size: int | None = None) -> AsyncEngine:
    """The process's read-write engine; pool size from settings unless given."""
    return _engine(settings, pool_size, {"application_name": "uds"})


def make_read_engine(settings: Settings, *, pool_size: int | None = None) -> AsyncEngine:
    """The engine of read-only requests: autocommit connections the server keeps read-only.

    `default_transaction_read_only` makes every statement's implicit transaction read-only,
    so an INSERT on these connections fails ("cannot execute INSERT in a read-only
    transaction") whatever code sends it. `extra_float_digits=1` pins PostgreSQL's
    shortest-exact float output, which the JSON built in SQL relies on (uds.api.sqljson).
    """
    settings_ = dict(READ_SETTINGS)
    # A fixed pool, no overflow: reads beyond it wait for a connection. With overflow,
    # a connection opened for a peak is closed when it comes back to a full pool, so under
    # more concurrent reads than the pool's size every read paid for a new connection (TLS
    # negotiation, authentication, a backend start): most of a read's CPU under load
    # (bench/graphql_read.py, 32 connections: 0.82 ms per request before, 0.63 after). A
    # pool twice the size served no more requests there.
    size = pool_size or settings.db_pool_size
    return _engine(settings, size, settings_, isolation_level="AUTOCOMMIT")


READ_SETTINGS = {
    "application_name": "uds-read",
    "default_transaction_read_only": "on",
    "extra_float_digits": "1",
}


async def make_read_pool(settings: Settings, *, pool_size: int | None = None, **options: Any) -> asyncpg.Pool:
    """asyncpg connections like the read engine's, without SQLAlchemy, for operation plans
    that only send statements of their own (uds.api.fastlane): checking one out and back
    costs no greenlet switch and no pool events. Given back without a reset query (a
    round trip each time): a connection left in a transaction is rolled back."""
    if not settings.database_url:
        raise RuntimeError("database_url is not set (start embedded servers first)")
    return await asyncpg.create_pool(
        libpq_url(settings.database_url),
        min_size=0,
        max_size=pool_size or settings.db_pool_size,
        server_settings=READ_SETTINGS,
        statement_cache_size=1000,
        reset=_rollback_if_open,
        **options,  # asyncpg.create_pool's (tests give `init`)
    )


async def _rollback_if_open(conn: asyncpg.Connection) -> None:
    if conn.is_in_transaction():
        await conn.execute("rollback")


class SessionNeeded(RuntimeError):
    """A scope on the raw read pool was asked for SQLAlchemy (a session or a connection)."""


def _engine(
    settings: Settings, pool_size: int | None, server_settings: dict[str, str], **options: Any
) -> AsyncEngine:
    if not settings.database_url:
        raise RuntimeError("database_url is not set (start embedded servers first)")
    size = pool_size or settings.db_pool_size
    url = make_url(async_url(settings.database_url))
    if "prepared_statement_cache_size" not in url.query:
        # Statement text names the tenant's schema, so each tenant has its own prepared
        # statements; asyncpg's default of 100 per connection churns once many tenants are busy.
        url = url.update_query_dict({"prepared_statement_cache_size": "1000"})
    return create_async_engine(
        url,
        pool_size=size,
        max_overflow=0 if pool_size else size,
        pool_recycle=1800,
        poolclass=ObservedPool,  # connections in use and waits, as metrics
        # statement_cache_size: asyncpg's own cache, used by the statements the read fast
        # paths send on the driver connection (one text per tenant and selection).
        connect_args={"server_settings": server_settings, "statement_cache_size": 1000},
        **options,
    )


def tenant_options(slug: str) -> dict[str, object]:
    """Execution options that map schema-less tenant tables to the tenant's schema."""
    return {"schema_translate_map": {None: tenant_schema(slug)}}


class TransactionScope:
    """One connection and transaction, opened lazily, owned by one request or job.

    The owner decides the outcome: `commit()` on success, `rollback()` on error, then
    `close()`. Services only ever see the sessions handed out here and never commit.

    A scope given a `read_engine` can be switched to reading (`read_only()`, before its
    first use; the GraphQL view does it for queries): its connection then comes from the
    read-only engine, in autocommit, with no transaction at all. Each statement sees what
    was committed when it started; a read that needs one snapshot across statements asks
    for it with `snapshot()`.
    """

    def __init__(
        self,
        engine: AsyncEngine,
        tenant_slug: str | None = None,
        *,
        read_engine: AsyncEngine | None = None,
        read_pool: asyncpg.Pool | None = None,
    ) -> None:
        self._engine = engine
        self._read_engine = read_engine
        self._read_pool = read_pool
        # Raw reading scopes (`read_raw()`): a connection of `read_pool`, no SQLAlchemy.
        self._raw: asyncpg.Connection | None = None
        self._raw_lock: asyncio.Lock | None = None
        self.raw = False
        self._tenant_slug = tenant_slug
        self._conn: AsyncConnection | None = None
        # Reading scopes: the pooled connection itself, taken without SQLAlchemy's
        # Connection when only the fast paths' statements run (a third of the cost).
        self._pooled: Any = None
        self._session: AsyncSession | None = None
        self._tenant_session: AsyncSession | None = None
        self._opening: asyncio.Lock | None = None
        self.reading = False
        self.session_needed = False  # a raw scope was asked for SQLAlchemy

    @property
    def opened(self) -> bool:
        return self._conn is not None or self._pooled is not None or self._raw is not None

    @property
    def tenant_slug(self) -> str | None:
        return self._tenant_slug

    def read_only(self) -> bool:
        """Serve this scope from the read-only engine; False if it has none or is in use."""
        if self._read_engine is None or self.opened:
            return False
        self.reading = True
        return True

    def read_raw(self) -> bool:
        """Read on the raw pool: only `fetch*` and `snapshot()` then work; anything asking
        for SQLAlchemy raises SessionNeeded. False if there is no raw pool or it is in use."""
        if self._read_pool is None or self.opened or not self.read_only():
            return False
        self.raw = True
        return True

    async def connection(self) -> AsyncConnection:
        if self.raw:
            self.session_needed = True
            raise SessionNeeded("this read runs on the raw pool, without SQLAlchemy")
        if self._conn is None:
            # Root fields resolve concurrently: the first one opens, the others wait for it.
            if self._opening is None:
                self._opening = asyncio.Lock()
            async with self._opening:
                if self._conn is None:
                    if self.reading:
                        engine = self._read_engine
                        assert engine is not None
                        if self._pooled is not None:  # wrap the one the fast paths use
                            self._conn = AsyncConnection(engine, Connection(engine.sync_engine, self._pooled))
                        else:
                            self._conn = await engine.connect()
                    else:
                        conn = await self._engine.connect()
                        await conn.begin()
                        self._conn = conn
        return self._conn

    async def fetchval(self, sql: str, *args: Any) -> Any:
        """Run one statement on the asyncpg connection itself (reading scopes only).

        For the read fast paths, which need no SQLAlchemy on the way. It takes the same
        lock SQLAlchemy's driver adapter takes, so concurrent root fields sharing this
        connection wait for each other instead of colliding.
        """
        driver, mutex = await self._driver()
        async with mutex:
            return await driver.fetchval(sql, *args)

    async def fetchrow(self, sql: str, *args: Any) -> Any:
        """Like `fetchval`, for a statement returning several columns."""
        driver, mutex = await self._driver()
        async with mutex:
            return await driver.fetchrow(sql, *args)

    async def fetch(self, sql: str, *args: Any) -> Any:
        """Like `fetchval`, for a statement returning rows."""
        driver, mutex = await self._driver()
        async with mutex:
            return await driver.fetch(sql, *args)

    async def _driver(self) -> tuple[Any, asyncio.Lock]:
        """The asyncpg connection and the lock its users take turns with."""
        if self.raw:
            if self._raw_lock is None:
                self._raw_lock = asyncio.Lock()
            if self._raw is None:
                async with self._raw_lock:
                    if self._raw is None:
                        assert self._read_pool is not None
                        self._raw = await self._read_pool.acquire()
            return self._raw, self._raw_lock
        adapter = await self._adapter()
        return adapter.driver_connection, adapter._execute_mutex

    async def _adapter(self) -> Any:
        """SQLAlchemy's adapter of the asyncpg connection (its `driver_connection`)."""
        if not self.reading:
            raise RuntimeError("the driver connection is for read-only scopes")
        if self._conn is not None:
            return (await self._conn.get_raw_connection()).dbapi_connection
        if self._pooled is None:
            if self._opening is None:
                self._opening = asyncio.Lock()
            async with self._opening:
                if self._conn is not None:
                    return (await self._conn.get_raw_connection()).dbapi_connection
                if self._pooled is None:
                    assert self._read_engine is not None
                    self._pooled = await greenlet_spawn(self._read_engine.sync_engine.pool.connect)
        return self._pooled.dbapi_connection

    @asynccontextmanager
    async def snapshot(self) -> AsyncIterator[None]:
        """Reads inside the block see one snapshot (a read-only REPEATABLE READ transaction).

        For reads made of several statements that must agree with each other. On a
        read-write scope the request's transaction is used as it is.
        """
        if not self.reading:
            yield
            return
        driver, mutex = await self._driver()
        if driver.is_in_transaction():  # a snapshot is open already (nested use)
            yield
            return
        async with mutex:
            await driver.execute("begin isolation level repeatable read read only")
        try:
            yield
        except BaseException:
            async with mutex:
                await driver.execute("rollback")
            raise
        async with mutex:
            await driver.execute("commit")

    async def core(self) -> AsyncSession:
        """Session for shared tables (schema `uds`)."""
        if self._session is None:
            self._session = AsyncSession(bind=await self.connection(), expire_on_commit=False)
        return self._session

    async def tenant(self) -> AsyncSession:
        """Session whose schema-less tables resolve to the request tenant's schema."""
        if self._tenant_slug is None:
            # A tenant field asked for without X-Tenant-ID: the caller's mistake, not ours.
            raise TenantRequired("this field needs the X-Tenant-ID header")
        if self._tenant_session is None:
            conn = await self.connection()
            bound = await conn.execution_options(**tenant_options(self._tenant_slug))
            self._tenant_session = AsyncSession(bind=bound, expire_on_commit=False)
        return self._tenant_session

    async def commit(self) -> None:
        if self.reading:
            return  # nothing was (or could be) written
        for session in (self._session, self._tenant_session):
            if session is not None:
                await session.flush()
        if self._conn is not None and self._conn.in_transaction():
            await self._conn.commit()

    async def rollback(self) -> None:
        if self.reading:
            return
        if self._conn is not None and self._conn.in_transaction():
            await self._conn.rollback()

    async def close(self) -> None:
        if self._raw is not None:
            assert self._read_pool is not None
            raw, self._raw = self._raw, None
            await self._read_pool.release(raw)
        for session in (self._session, self._tenant_session):
            if session is not None:
                await session.close()
        if self._conn is not None:
            await self._conn.close()  # returns the pooled connection it wraps, if any
        elif self._pooled is not None:
            await greenlet_spawn(self._pooled.close)
        self._conn = self._session = self._tenant_session = self._pooled = None


@asynccontextmanager
async def transaction(engine: AsyncEngine, tenant_slug: str | None = None) -> AsyncIterator[TransactionScope]:
    """A scope that commits when the block succeeds and rolls back when it raises."""
    scope = TransactionScope(engine, tenant_slug)
    try:
        yield scope
        await scope.commit()
    except BaseException:
        await scope.rollback()
        raise
    finally:
        await scope.close()
