"""The discovery engine: read a PostgreSQL source and return a `CatalogSnapshot`.

It only reads the source, through `uds.datasources.connect.open_source` (read-only
session and transactions, statement and lock timeouts, application_name=uds-discovery),
and never writes anywhere: storing a run is `uds.discovery.service`'s job, running it in
the background `uds.discovery.jobs`'. `discover` runs every phase in one go;
`DiscoverySession` exposes the phases one by one for the job, which stores each table
as a resumable step.

Failure policy. Losing the source (unreachable, wrong password, access denied to the
database, dropped or shut down mid-run, a catalog query timing out) ends the run with a
`SourceError` that says which. A problem with one object (a slow view hitting
statement_timeout, a table locked past lock_timeout, no SELECT privilege, a table dropped
while we read it) costs only that object: it keeps its structure, gets a warning, and the
run goes on.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import asyncpg

from uds.datasources.connect import SourceLimits, explain, open_source
from uds.datasources.errors import SourceError
from uds.datasources.guard import NetworkGuard
from uds.datasources.params import ConnectionParams
from uds.discovery import quality, relationships, semantics
from uds.discovery.budget import Budget
from uds.discovery.profiles import ProfileOptions, TableGone, profile_table, stats_fresh
from uds.discovery.snapshot import SKIPPED, CatalogSnapshot, Relationship, TableSnapshot
from uds.discovery.structure import CATALOG_QUERY, Structure, TableFacts, prefetch, read_structure

log = logging.getLogger(__name__)

Progress = Callable[[float, str, str], Awaitable[None]]

CONTROL = re.compile(r"\s*(begin|start transaction|commit|rollback|savepoint|release)\b", re.IGNORECASE)

# Share of the progress bar each phase fills.
STRUCTURE_END = 0.05
PROFILES_END = 0.85
RELATIONSHIPS_END = 0.95

# Errors that cost one object, not the run.
OBJECT_ERRORS: tuple[type[BaseException], ...] = (
    asyncpg.QueryCanceledError,
    asyncpg.LockNotAvailableError,
    asyncpg.InsufficientPrivilegeError,
    asyncpg.UndefinedTableError,
    asyncpg.UndefinedColumnError,
    asyncpg.FeatureNotSupportedError,
    asyncpg.DataError,
    asyncpg.ObjectNotInPrerequisiteStateError,
    asyncpg.UndefinedFunctionError,
)
# Errors that mean the session itself is gone (checked before OBJECT_ERRORS).
SESSION_ERRORS: tuple[type[BaseException], ...] = (
    asyncpg.PostgresConnectionError,
    asyncpg.AdminShutdownError,
    asyncpg.CrashShutdownError,
    asyncpg.CannotConnectNowError,
    asyncpg.InterfaceError,
    asyncpg.InternalClientError,  # a query cut off by the connection dying under it
    OSError,
    TimeoutError,
)


@dataclass(frozen=True, slots=True)
class DiscoveryOptions:
    profile: ProfileOptions = field(default_factory=ProfileOptions)
    infer_relationships: bool = True
    # Sessions profiling tables at once (each a read-only, time-bounded connection): the
    # job takes UDS_DISCOVERY_CONNECTIONS (1 by default, gentlest on a busy source); two
    # halve the wall time on a source with spare cores.
    concurrency: int = 1


async def _no_progress(fraction: float, phase: str, message: str) -> None:
    return None


def guard_from_env() -> NetworkGuard:
    from uds.settings import Settings

    return NetworkGuard.from_settings(Settings.from_env())


async def discover(
    source: ConnectionParams,
    *,
    budget: Budget,
    progress: Progress = _no_progress,
    include_schemas: tuple[str, ...] | None = None,
    guard: NetworkGuard | None = None,
    limits: SourceLimits | None = None,
    options: DiscoveryOptions | None = None,
) -> CatalogSnapshot:
    """Discover `source` within `budget`, reporting through `progress(fraction, phase, message)`.

    `include_schemas` defaults to the source's own `schemas` (all schemas if empty). The
    network guard defaults to the one the process's settings describe. Raises SourceError
    when the source as a whole cannot be read; exceptions raised by `progress` (e.g. a
    job's cancellation) propagate unchanged.
    """
    schemas = tuple(include_schemas if include_schemas is not None else source.schemas)
    options = options or DiscoveryOptions()
    guard = guard or guard_from_env()
    async with contextlib.AsyncExitStack() as stack:
        conn = await stack.enter_async_context(open_source(source, guard=guard, limits=limits))
        session = DiscoverySession(conn, source, budget=budget, options=options)
        snapshot = await session.read_structure(schemas)
        await progress(STRUCTURE_END, "structure", f"{len(snapshot.tables)} tables and views")
        extra = await open_extra(stack, source, guard=guard, limits=limits, count=session.extra_connections())
        for other in extra:
            session.count_statements(other)
        weights = session.weights()
        total = sum(weights.values()) or 1.0
        done = 0.0
        async with contextlib.aclosing(session.profile_many(list(snapshot.tables), extra)) as finished:
            async for table, _present in finished:
                done += weights[table.key]
                await progress(
                    STRUCTURE_END + (PROFILES_END - STRUCTURE_END) * done / total, "profiles", table.qualified
                )
        await progress(PROFILES_END, "relationships", "inferring relationships")
        await session.infer_relationships()
        await progress(RELATIONSHIPS_END, "quality", "scoring quality")
        session.assess_quality()
        await progress(1.0, "done", session.summary())
        return session.snapshot


async def open_extra(
    stack: contextlib.AsyncExitStack,
    source: ConnectionParams,
    *,
    guard: NetworkGuard,
    limits: SourceLimits | None,
    count: int,
) -> list[asyncpg.Connection]:
    """Up to `count` more guarded connections for profiling in parallel; fewer if the
    source refuses them (max_connections reached): the run then just goes slower."""
    extra: list[asyncpg.Connection] = []
    for _ in range(count):
        try:
            extra.append(await stack.enter_async_context(open_source(source, guard=guard, limits=limits)))
        except SourceError as exc:
            log.info("discovery of %s: profiling on fewer connections (%s)", source.address, exc.message)
            break
    return extra


class DiscoverySession:
    """The phases of one discovery run over open, guarded connections (profiling may use
    several; everything else runs on the first)."""

    def __init__(
        self, conn: asyncpg.Connection, source: ConnectionParams, *, budget: Budget, options: DiscoveryOptions
    ) -> None:
        self.conn = conn
        self.source = source
        self.budget = budget
        self.options = options
        self.structure: Structure | None = None
        self.snapshot = CatalogSnapshot(database=source.database, server_version="")
        self._busy: set[tuple[str, str]] = set()
        self._left: int | None = None
        self._started: set[tuple[str, str]] = set()
        self.statements: dict[str, int] = {"catalog": 0, "control": 0, "data": 0}
        self.count_statements(conn)

    def count_statements(self, conn: asyncpg.Connection) -> None:
        """Count the statements this run sends on `conn`: catalog queries (marked with
        structure.CATALOG_QUERY), transaction control (BEGIN, COMMIT, savepoints) and the
        rest (reads of the tables themselves)."""

        def counted(query: Any) -> None:
            text = query.query or ""
            if text.startswith(CATALOG_QUERY):
                kind = "catalog"
            elif CONTROL.match(text):
                kind = "control"
            else:
                kind = "data"
            self.statements[kind] = self.statements.get(kind, 0) + 1
            self.snapshot.statements = dict(self.statements)

        conn.add_query_logger(counted)

    async def read_structure(self, schemas: tuple[str, ...]) -> CatalogSnapshot:
        try:
            async with self.conn.transaction(readonly=True):
                self.structure = await read_structure(self.conn, include_schemas=schemas)
            fresh = [
                t.key
                for t in self.structure.tables
                if t.key in self.structure.facts
                and stats_fresh(t, self.structure.facts[t.key], self.options.profile)
            ]
            await prefetch(self.conn, self.structure, fresh)
        except BaseException as exc:
            raise self._fatal(exc) from None
        self.snapshot = CatalogSnapshot(
            database=self.structure.database,
            server_version=self.structure.server_version,
            tables=list(self.structure.tables),
            statements=dict(self.statements),
        )
        missing = set(schemas) - {t.schema for t in self.snapshot.tables}
        for schema in sorted(missing):
            self.snapshot.warnings.append(f"schema {schema} has no tables or views this user can see")
        return self.snapshot

    def weights(self) -> dict[tuple[str, str], float]:
        """Rough cost per table, for progress: rows it will read, plus a constant."""
        cap = self.options.profile.sample_rows
        return {t.key: 1_000.0 + min(t.rows or cap, cap) for t in self.snapshot.tables}

    def extra_connections(self) -> int:
        """Connections worth opening beyond the first, for the tables left to profile."""
        todo = sum(1 for t in self.snapshot.tables if not t.profiled)
        return max(0, min(self.options.concurrency, todo) - 1)

    async def profile_many(
        self, tables: list[TableSnapshot], extra: list[asyncpg.Connection]
    ) -> AsyncIterator[tuple[TableSnapshot, bool]]:
        """Profile `tables` on this session's connection and `extra` ones at once; yields
        (table, still there) as each finishes. A SourceError stops every connection."""
        pending: asyncio.Queue[TableSnapshot] = asyncio.Queue()
        for table in tables:
            pending.put_nowait(table)
        finished: asyncio.Queue[tuple[TableSnapshot, bool] | BaseException] = asyncio.Queue()

        async def work(conn: asyncpg.Connection) -> None:
            while not pending.empty():
                table = pending.get_nowait()
                try:
                    finished.put_nowait((table, await self.profile(table, conn=conn)))
                except BaseException as exc:
                    finished.put_nowait(exc)
                    return

        workers = [asyncio.create_task(work(conn)) for conn in [self.conn, *extra]]
        try:
            for _ in range(len(tables)):
                item = await finished.get()
                if isinstance(item, BaseException):
                    raise item
                yield item
        finally:
            for task in workers:
                task.cancel()
            await asyncio.gather(*workers, return_exceptions=True)

    def _wanted(self, table: TableSnapshot) -> int:
        rows = table.rows
        options = self.options.profile
        if rows is not None and 0 < rows <= options.exact_rows:
            return int(rows)
        return options.sample_rows

    async def profile(self, table: TableSnapshot, *, conn: asyncpg.Connection | None = None) -> bool:
        """Profile one table (semantics and column quality too); False if it vanished."""
        assert self.structure is not None, "read_structure first"
        conn = conn or self.conn
        facts = self.structure.facts.get(table.key)
        self._busy.add(table.key)
        if self._left is None:
            # Rows the tables not yet profiled want, kept as a running sum: recomputing it
            # for every table made a wide schema's profiling quadratic in its tables.
            self._left = sum(self._wanted(t) for t in self.snapshot.tables if not t.profiled)
        wanted = self._wanted(table)
        if table.key not in self._started:
            self._started.add(table.key)
            self._left -= wanted
        allowance = self.budget.allowance(wanted, max(0, self._left))
        try:
            return await self._profile(table, conn, facts, allowance)
        finally:
            self.budget.release(allowance)
            self._busy.discard(table.key)

    async def _profile(
        self, table: TableSnapshot, conn: asyncpg.Connection, facts: TableFacts | None, allowance: int
    ) -> bool:
        if facts is not None and not facts.can_select:
            self._skip(table, f"no SELECT privilege on {table.qualified}: structure only")
            return True
        try:
            async with conn.transaction(readonly=True):
                values = await profile_table(
                    conn,
                    table,
                    facts,
                    budget=self.budget,
                    allowance=allowance,
                    options=self.options.profile,
                )
        except SESSION_ERRORS as exc:
            raise self._fatal(exc) from None
        except (asyncpg.UndefinedTableError, TableGone):
            self.snapshot.tables = [t for t in self.snapshot.tables if t.key != table.key]
            self.snapshot.warnings.append(f"{table.qualified} was dropped during discovery")
            return False
        except OBJECT_ERRORS as exc:
            self._skip(table, _object_problem(table, exc))
            return True
        except asyncpg.PostgresError as exc:
            self._skip(table, f"{table.qualified}: {type(exc).__name__}: {str(exc).splitlines()[0][:200]}")
            return True
        validity = {}
        for column in table.columns:
            found = semantics.classify(table, column, values.by_column.get(column.name))
            column.semantic_type = found.type
            column.semantic_confidence = found.confidence
            column.semantic_reasons = found.reasons
            column.pii = found.pii
            validity[column.name] = found.validity
        # Quality after all semantics: whether an e-mail should be unique depends on the
        # table holding person names.
        for column in table.columns:
            column.quality = quality.column_quality(table, column, validity[column.name])
            semantics.mask_profile(column)
        return True

    def _skip(self, table: TableSnapshot, warning: str) -> None:
        for column in table.columns:
            column.profile = None
            found = semantics.classify(table, column, None)
            column.semantic_type, column.semantic_confidence = found.type, found.confidence
            column.semantic_reasons, column.pii = found.reasons, found.pii
        table.warnings.append(warning)
        table.profile_method, table.profiled = SKIPPED, True
        log.info("discovery of %s: %s", self.source.address, warning)

    async def infer_relationships(self) -> list[Relationship]:
        assert self.structure is not None, "read_structure first"
        present = {t.key for t in self.snapshot.tables}
        declared = [r for r in self.structure.declared if (r.from_schema, r.from_table) in present]
        found: list[Relationship] = []
        if self.options.infer_relationships:
            try:
                found, warnings = await relationships.infer(
                    self.conn, self.snapshot.tables, declared, budget=self.budget
                )
            except SESSION_ERRORS as exc:
                raise self._fatal(exc) from None
            self.snapshot.warnings.extend(warnings)
        self.snapshot.relationships = declared + sorted(found, key=lambda r: r.key)
        semantics.mark_references(self.snapshot.tables, self.snapshot.relationships)
        return self.snapshot.relationships

    def assess_quality(self) -> None:
        by_table: dict[tuple[str, str], list[Relationship]] = {}
        for rel in self.snapshot.relationships:
            by_table.setdefault((rel.from_schema, rel.from_table), []).append(rel)
        for table in self.snapshot.tables:
            table.quality = quality.table_quality(table, by_table.get(table.key, []))
        self.snapshot.rows_read = self.budget.rows_read

    def summary(self) -> str:
        tables = self.snapshot.tables
        inferred = sum(1 for r in self.snapshot.relationships if not r.declared)
        return (
            f"{len(tables)} tables and views, {sum(len(t.columns) for t in tables)} columns, "
            f"{len(self.snapshot.relationships)} relationships ({inferred} inferred), "
            f"{self.budget.rows_read} rows read"
        )

    def _fatal(self, exc: BaseException) -> SourceError:
        return explain(exc, self.source)


def _object_problem(table: TableSnapshot, exc: BaseException) -> str:
    what = table.qualified
    if isinstance(exc, asyncpg.QueryCanceledError):
        return f"{what}: profiling ran past the statement timeout and was cancelled"
    if isinstance(exc, asyncpg.LockNotAvailableError):
        return f"{what}: locked by another session for longer than the lock timeout"
    if isinstance(exc, asyncpg.InsufficientPrivilegeError):
        return f"{what}: permission denied ({str(exc).splitlines()[0][:200]})"
    if isinstance(exc, asyncpg.UndefinedColumnError):
        return f"{what}: a column changed during discovery"
    return f"{what}: could not be profiled ({type(exc).__name__}: {str(exc).splitlines()[0][:200]})"
