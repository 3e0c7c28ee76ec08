"""Guarded connections to a data source, and the one place that explains asyncpg's errors.

Every session UDS opens on a tenant's database is read-only by default
(`default_transaction_read_only`), bounded (`statement_timeout`, `lock_timeout`,
`idle_in_transaction_session_timeout`, and a client-side timeout per command so a dead
network cannot hang a job), and identifies itself (`application_name=uds-discovery`), so
a DBA sees who is reading and can cancel it. Callers also open each unit of work with
`readonly_transaction`, so a write would fail twice over.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import asyncpg

from uds.datasources.errors import (
    SourceAccessDenied,
    SourceAuthFailed,
    SourceError,
    SourceFailed,
    SourceGone,
    SourceTimeout,
    SourceUnreachable,
)
from uds.datasources.guard import NetworkGuard
from uds.datasources.params import ConnectionParams

APPLICATION_NAME = "uds-discovery"


@dataclass(frozen=True, slots=True)
class SourceLimits:
    """Time limits of one session on a data source."""

    connect_timeout: float = 10.0
    statement_timeout_ms: int = 30_000
    lock_timeout_ms: int = 2_000
    idle_timeout_ms: int = 120_000

    @classmethod
    def from_settings(cls, settings: object) -> SourceLimits:
        return cls(
            connect_timeout=float(getattr(settings, "source_connect_timeout", cls.connect_timeout)),
            statement_timeout_ms=int(
                getattr(settings, "source_statement_timeout_ms", cls.statement_timeout_ms)
            ),
            lock_timeout_ms=int(getattr(settings, "source_lock_timeout_ms", cls.lock_timeout_ms)),
        )

    @property
    def command_timeout(self) -> float:
        """Client-side bound per command: the server's own timeout plus a margin."""
        return self.statement_timeout_ms / 1000 + 10.0


async def guarded_session(
    params: ConnectionParams,
    *,
    guard: NetworkGuard,
    limits: SourceLimits,
    application_name: str = APPLICATION_NAME,
) -> dict[str, object]:
    """asyncpg connection arguments of a guarded, read-only session on the source.

    The one place that says what such a session is: the host vetted by the network guard
    (the connection goes to the vetted address), the password always given, TLS as the
    source asks, and the session read-only and bounded (statement, lock and idle
    timeouts) with a fixed search_path, time zone and date style. Discovery's connection
    (`open_source`) and the widget data pools (`uds.dashboards.data`) both open theirs
    with it, each adding only how it caches statements and pools connections.
    """
    address = await guard.vet(params.host, params.port)
    if params.sslmode == "verify-full":
        address = params.host
    return {
        "host": address,
        "port": params.port,
        "user": params.user,
        # Never None: asyncpg would then read PGPASSWORD or ~/.pgpass of the UDS host.
        "password": params.password,
        "database": params.database,
        "ssl": None if params.is_unix_socket else params.sslmode,
        "timeout": limits.connect_timeout,
        "command_timeout": limits.command_timeout,
        "server_settings": {
            "application_name": application_name,
            "default_transaction_read_only": "on",
            "statement_timeout": str(limits.statement_timeout_ms),
            "lock_timeout": str(limits.lock_timeout_ms),
            "idle_in_transaction_session_timeout": str(limits.idle_timeout_ms),
            "search_path": "pg_catalog",
            "TimeZone": "UTC",
            "DateStyle": "ISO, YMD",
            "jit": "off",
        },
    }


@asynccontextmanager
async def open_source(
    params: ConnectionParams, *, guard: NetworkGuard, limits: SourceLimits | None = None
) -> AsyncIterator[asyncpg.Connection]:
    """A guarded, read-only connection to the source; SourceError if there is none."""
    session = await guarded_session(params, guard=guard, limits=limits or SourceLimits())
    try:
        # No named prepared statements: poolers in transaction mode reject them, and a
        # discovery run prepares each statement once anyway.
        conn = await asyncpg.connect(**session, statement_cache_size=0)  # type: ignore[arg-type]
    except BaseException as exc:
        if isinstance(exc, asyncio.CancelledError | KeyboardInterrupt):
            raise
        raise explain(exc, params, connecting=True) from None
    try:
        yield conn
    finally:
        try:
            await asyncio.wait_for(conn.close(), timeout=5)
        except BaseException:
            conn.terminate()


@asynccontextmanager
async def readonly_transaction(conn: asyncpg.Connection) -> AsyncIterator[asyncpg.Connection]:
    """A READ ONLY transaction on the connection (errors still raw asyncpg errors)."""
    async with conn.transaction(readonly=True):
        yield conn


def explain(exc: BaseException, params: ConnectionParams, *, connecting: bool = False) -> SourceError:
    """A SourceError with a clear message for a low-level failure talking to `params`."""
    where = params.address
    if isinstance(exc, SourceError):
        return exc
    if isinstance(exc, asyncpg.InvalidPasswordError):
        return SourceAuthFailed(f"{where}: password authentication failed for user {params.user!r}")
    if isinstance(exc, asyncpg.InvalidAuthorizationSpecificationError):
        return SourceAuthFailed(f"{where}: the server rejected user {params.user!r}: {first_line(exc)}")
    if isinstance(exc, asyncpg.InvalidCatalogNameError):
        return SourceUnreachable(f"{where}: database {params.database!r} does not exist")
    if isinstance(exc, asyncpg.InsufficientPrivilegeError):
        return SourceAccessDenied(f"{where}: access denied for user {params.user!r}: {first_line(exc)}")
    if isinstance(exc, asyncpg.QueryCanceledError):
        return SourceTimeout(f"{where}: a statement ran longer than the statement timeout and was cancelled")
    if isinstance(exc, asyncpg.LockNotAvailableError):
        return SourceTimeout(f"{where}: waited longer than the lock timeout for a table lock")
    if isinstance(exc, asyncpg.AdminShutdownError | asyncpg.CrashShutdownError):
        return SourceGone(f"{where}: the server ended the connection ({first_line(exc)})")
    if isinstance(exc, asyncpg.CannotConnectNowError | asyncpg.TooManyConnectionsError):
        return SourceUnreachable(f"{where}: the server refused the connection: {first_line(exc)}")
    lost = asyncpg.ConnectionDoesNotExistError | asyncpg.InterfaceError | asyncpg.InternalClientError
    if isinstance(exc, lost) and not connecting:
        return SourceGone(f"{where}: the connection was lost during discovery")
    if isinstance(exc, TimeoutError):
        if connecting:
            return SourceUnreachable(f"{where}: no answer within the connect timeout")
        return SourceTimeout(f"{where}: no answer within the command timeout")
    if isinstance(exc, ssl.SSLError):
        return SourceUnreachable(f"{where}: TLS failed: {exc.reason or exc}")
    if isinstance(exc, ConnectionRefusedError):
        return SourceUnreachable(f"{where}: connection refused (nothing listens on port {params.port})")
    if isinstance(exc, OSError):
        detail = exc.strerror or str(exc)
        if connecting:
            return SourceUnreachable(f"{where}: cannot connect: {detail}")
        return SourceGone(f"{where}: the connection was lost: {detail}")
    if isinstance(exc, asyncpg.PostgresError):
        return SourceFailed(f"{where}: {type(exc).__name__}: {first_line(exc)}")
    if isinstance(exc, asyncpg.InterfaceError | asyncpg.ClientConfigurationError):
        return SourceUnreachable(f"{where}: cannot connect: {first_line(exc)}")
    return SourceFailed(f"{where}: unexpected {type(exc).__name__}")


def first_line(exc: BaseException) -> str:
    """The first line of an error's text (at most 300 characters), or its type's name."""
    text = str(exc).strip().splitlines()
    return text[0][:300] if text else type(exc).__name__
