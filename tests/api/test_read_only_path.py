"""Queries read without a transaction on read-only connections; mutations keep theirs.

Every statement sent on either engine is recorded, so the tests see what reached
PostgreSQL: SQLAlchemy's statements (savepoints included) through its cursor event, and
what asyncpg sends itself (BEGIN/COMMIT of its transactions, the fast paths' statements)
through a query logger on every new connection.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlalchemy import event, func, insert, select, text
from sqlalchemy.exc import DBAPIError

from conftest import Server, make_tenant, start_server
from uds.db import SessionNeeded, TransactionScope, make_read_pool, transaction
from uds.observability.models import AuditEntry
from uds.settings import Settings

READ = "{ me { subject } auditLog(first: 3) { edges { node { id action } } } jobs { nodes { id } } }"
MUTATION = """
mutation($slug: String!) { admin { addMember(slug: $slug, subject: "new@x", role: VIEWER) { __typename } } }"""


class Recorder:
    def __init__(self) -> None:
        self.statements: dict[str, list[str]] = {"read": [], "write": []}

    def attach(self, engine: Any, name: str) -> None:
        def note(statement: str) -> None:
            self.statements[name].append(" ".join(statement.split()).lower())

        def on_connect(dbapi_connection: Any, _record: Any) -> None:
            dbapi_connection.driver_connection.add_query_logger(lambda query: note(query.query))

        def on_execute(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
            note(statement)

        event.listen(engine.sync_engine, "connect", on_connect)
        event.listen(engine.sync_engine, "before_cursor_execute", on_execute)

    async def attach_raw(self, connection: Any) -> None:
        connection.add_query_logger(lambda query: self.statements["read"].append(" ".join(query.query.split()).lower()))

    def clear(self) -> None:
        for found in self.statements.values():
            found.clear()


@pytest.fixture(scope="module")
async def recorded(migrated: Settings) -> AsyncIterator[tuple[Server, Recorder]]:
    async for server in start_server(migrated):
        recorder = Recorder()
        services = server.services
        for engine, name in ((services.read_engine, "read"), (services.engine, "write")):
            recorder.attach(engine, name)
            await engine.dispose()  # connections opened from now on are recorded
        # The plans' raw pool: its connections are reads too.
        assert services.read_pool is not None
        await services.read_pool.close()
        services.read_pool = await make_read_pool(server.settings, init=recorder.attach_raw)
        yield server, recorder


def transaction_control(statements: list[str]) -> list[str]:
    words = ("begin", "commit", "rollback", "savepoint", "release", "start transaction")
    return [s for s in statements if s.startswith(words)]


async def test_a_query_sends_no_begin_or_commit(recorded: tuple[Server, Recorder]) -> None:
    server, recorder = recorded
    slug = await make_tenant(server, members={"ad@x": "ADMIN"})
    token = server.token("ad@x")
    for attempt in range(3):  # the normal path, then the plan
        recorder.clear()
        status, body = await server.gql(READ, token=token, tenant=slug)
        assert status == 200 and "errors" not in body, body
        reads = recorder.statements["read"]
        assert any("audit_log" in s for s in reads), f"attempt {attempt}: the audit log was read"
        assert transaction_control(reads) == [], f"attempt {attempt}: {reads}"
        assert not any("audit_log" in s or "jobs" in s for s in recorder.statements["write"]), (
            "the read-write engine was not used for the query"
        )


async def test_a_mutation_keeps_its_transaction_and_savepoint(recorded: tuple[Server, Recorder]) -> None:
    server, recorder = recorded
    slug = await make_tenant(server, members={"ad@x": "ADMIN"})
    recorder.clear()
    body = await server.admin(MUTATION, {"slug": slug})
    assert body["admin"]["addMember"]["__typename"] == "Member", body
    writes = transaction_control(recorder.statements["write"])
    # (asyncpg logs its BEGIN when it completes, SQLAlchemy its statements before they run)
    assert any(s.startswith("begin") for s in writes), writes
    assert any(s.startswith("savepoint") for s in writes), writes
    assert any(s.startswith("release savepoint") for s in writes), writes
    assert writes[-1].startswith("commit"), writes
    assert recorder.statements["read"] == [], "a mutation does not read from the read-only engine"


async def test_the_read_connection_refuses_writes(server: Server) -> None:
    slug = await make_tenant(server, members={"ad@x": "ADMIN"})
    services = server.services
    scope = TransactionScope(services.engine, slug, read_engine=services.read_engine)
    assert scope.read_only()
    try:
        session = await scope.tenant()
        assert await session.scalar(text("select current_setting('transaction_read_only')")) == "on"
        with pytest.raises(DBAPIError, match="read-only transaction"):
            await session.execute(insert(AuditEntry).values(actor="x", action="sneak", detail={}))
        with pytest.raises(Exception, match="read-only transaction"):
            await scope.fetchval(
                f'insert into "t_{slug.replace("-", "_")}".audit_log (actor, action) values (1, 2)'
            )
    finally:
        await scope.close()
    raw = TransactionScope(services.engine, slug, read_pool=services.read_pool, read_engine=services.read_engine)
    assert raw.read_raw()
    try:
        assert await raw.fetchval("select current_setting('transaction_read_only')") == "on"
        with pytest.raises(Exception, match="read-only transaction"):
            await raw.fetchval(f'insert into "t_{slug.replace("-", "_")}".audit_log (actor, action) values (1, 2)')
        with pytest.raises(SessionNeeded):
            await raw.tenant()  # no SQLAlchemy on a raw scope
        assert raw.session_needed
    finally:
        await raw.close()
    async with transaction(services.engine, slug) as tx:
        count = await (await tx.tenant()).scalar(
            select(func.count()).select_from(AuditEntry).where(AuditEntry.action == "sneak")
        )
    assert count == 0


async def test_a_snapshot_sees_one_state_across_statements(server: Server) -> None:
    slug = await make_tenant(server, members={"ad@x": "ADMIN"})
    services = server.services
    scope = TransactionScope(services.engine, slug, read_engine=services.read_engine)
    scope.read_only()
    count = select(func.count()).select_from(AuditEntry)

    async def add_entry() -> None:
        async with transaction(services.engine, slug) as tx:
            await (await tx.tenant()).execute(
                insert(AuditEntry).values(actor="x", action="between", detail={})
            )

    try:
        session = await scope.tenant()
        async with scope.snapshot():
            assert (
                await session.scalar(text("select current_setting('transaction_isolation')"))
                == "repeatable read"
            )
            before = await session.scalar(count)
            await add_entry()
            assert await session.scalar(count) == before, "inside the snapshot: the same state"
        after = await session.scalar(count)
        assert after == before + 1, "outside it, each statement sees what was committed"
        await add_entry()
        assert await session.scalar(count) == after + 1
    finally:
        await scope.close()


async def test_a_plan_that_needs_sqlalchemy_leaves_the_raw_pool_once(server: Server) -> None:
    """Plans start on the raw pool; `dashboards` reads through an ORM session, so its first
    plan run hands the request to the normal path (same answer) and later runs take the
    read engine without falling back again."""
    from uds.api import plans

    slug = await make_tenant(server, members={"ad@x": "ADMIN"})
    token = server.token("ad@x")
    # An alias of its own: a document no other test has taught the server's plan cache.
    query = f"{{ d{uuid.uuid4().hex}: dashboards(first: 5) {{ edges {{ node {{ id }} }} }} }}"
    answers = []
    before = dict(plans.STATS)
    for _ in range(4):
        status, body = await server.gql(query, token=token, tenant=slug)
        assert status == 200 and "errors" not in body, body
        answers.append(body)
    assert all(answer == answers[0] for answer in answers)
    delta = {key: plans.STATS[key] - before[key] for key in before}
    # normal path (learns the plan), raw attempt -> fallback, then two plan runs
    assert delta["plan_fallbacks"] == 1 and delta["plans_run"] == 2, delta
