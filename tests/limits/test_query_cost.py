"""Query cost: list sizes times what is selected below them, refused before anything runs."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from dataclasses import replace
from typing import Any

import pytest
from graphql import parse
from sqlalchemy import event

from conftest import Server, make_tenant, start_server
from uds.api import cost as cost_module
from uds.api.cost import CostAnalyzer
from uds.api.schema import build_schema
from uds.settings import Settings

LIMIT = 1_000
NESTED = """{ admin { tenants(first: 100) { edges { node { slug members { subject } } } } } }"""
NESTED_VAR = """query($n: Int) { admin { tenants(first: $n) { edges { node { slug members { subject } } } } } }"""


@pytest.fixture(scope="module")
async def costly(migrated: Settings) -> AsyncIterator[Server]:
    async for server in start_server(replace(migrated, max_query_cost=LIMIT)):
        yield server


@contextmanager
def statements(server: Server) -> Iterator[list[str]]:
    """What the server's engines do while the block runs: every statement SQLAlchemy sends,
    and every connection checked out of either pool (the read path also sends statements on
    the driver connection directly, which no statement event sees, but it needs a connection)."""
    seen: list[str] = []

    def record(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        seen.append(statement)

    def checkout(*args: Any) -> None:
        seen.append("<connection checked out>")

    engines = {id(e): e for e in (server.services.engine, getattr(server.services, "read_engine", None)) if e}
    for engine in engines.values():
        event.listen(engine.sync_engine, "before_cursor_execute", record)
        event.listen(engine.sync_engine.pool, "checkout", checkout)
    try:
        yield seen
    finally:
        for engine in engines.values():
            event.remove(engine.sync_engine, "before_cursor_execute", record)
            event.remove(engine.sync_engine.pool, "checkout", checkout)


def analyzer(**settings: Any) -> CostAnalyzer:
    s = Settings(**settings)
    return CostAnalyzer(build_schema(s)._schema, max_page_size=s.max_page_size, list_size=s.cost_list_size)


def cost_of(query: str, variables: dict[str, Any] | None = None, **settings: Any) -> int:
    return analyzer(**settings).plan(parse(query), key=query, operation_name=None, variables=variables).cost


async def test_nested_lists_over_the_limit_are_refused_before_any_sql(costly: Server) -> None:
    token = costly.token("root@test", admin=True)
    await costly.gql("{ admin { tenants(first: 1) { edges { node { slug } } } } }", token=token)  # warm caches
    with statements(costly) as seen:
        status, body = await costly.gql(NESTED, token=token)
    assert body["data"] is None
    error = body["errors"][0]
    # admin 1 + tenants 1 + 100 edges x (1 + node (1 + 20 members x 1)) = 2202
    assert error["extensions"] == {"code": "QUERY_TOO_COMPLEX", "cost": 2202, "limit": LIMIT}
    assert "2202" in error["message"] and str(LIMIT) in error["message"]
    assert seen == []  # refused before execution: not one statement, not even a connection


async def test_the_same_shape_with_a_small_page_runs(costly: Server) -> None:
    await make_tenant(costly, members={"a@x": "VIEWER"})
    token = costly.token("root@test", admin=True)
    with statements(costly) as seen:
        status, body = await costly.gql(NESTED_VAR, {"n": 5}, token=token)
    assert "errors" not in body, body
    assert seen  # it did run
    status, body = await costly.gql(NESTED_VAR, {"n": 100}, token=token)
    assert body["errors"][0]["extensions"]["code"] == "QUERY_TOO_COMPLEX"


def test_cost_counts_pages_defaults_and_plain_lists() -> None:
    # A connection without `first` has the default page (20): 20 edges, each with its node;
    # pageInfo is one object.
    assert cost_of("{ auditLog { edges { node { action } } pageInfo { hasNextPage } } }") == 1 + 20 * 2 + 1
    # `first` from a literal, clamped to the maximum page size (100).
    assert cost_of("{ auditLog(first: 5) { nodes { action } } }") == 1 + 5
    assert cost_of("{ auditLog(first: 100000) { nodes { action } } }") == 1 + 100
    # From a variable, from the variable's default, and null meaning the default page.
    q = "query($n: Int = 7) { auditLog(first: $n) { nodes { action } } }"
    assert cost_of(q, {"n": 3}) == 4 and cost_of(q) == 8 and cost_of(q, {"n": None}) == 21
    # A plain list of objects is assumed to hold cost_list_size items; leaves cost nothing.
    assert cost_of("{ me { subject tenants { role } } }") == 1 + 20
    assert cost_of("{ me { subject tenants { role } } }", cost_list_size=3) == 1 + 3
    # Fragments count where they are spread; introspection is not counted.
    frag = "fragment T on Membership { role tenant { slug } } { me { tenants { ...T } } __schema { types { name } } }"
    assert cost_of(frag) == 1 + 20 * (1 + 1)


def test_cost_is_computed_once_per_document_and_variables_shape(monkeypatch: pytest.MonkeyPatch) -> None:
    walks = 0
    real_run = cost_module._Walk.run

    def counting_run(self: Any) -> Any:
        nonlocal walks
        walks += 1
        return real_run(self)

    monkeypatch.setattr(cost_module._Walk, "run", counting_run)
    a = analyzer()
    query = "query($n: Int, $status: JobStatus) { jobs(first: $n, status: $status) { nodes { id } } }"
    document = parse(query)

    def plan(variables: dict[str, Any]) -> int:
        return a.plan(document, key=query, operation_name=None, variables=variables).cost

    assert plan({"n": 10, "status": "RUNNING"}) == 11 and walks == 1
    assert plan({"n": 10, "status": "FAILED"}) == 11 and walks == 1  # other variables: same shape
    assert plan({"n": 50}) == 51 and walks == 2  # a new page size is a new shape
    assert plan({"n": 10}) == 11 and walks == 2


def test_weights() -> None:
    a = analyzer()

    def weight(query: str) -> int:
        return a.plan(parse(query), key=query, operation_name=None, variables={}).weight

    assert weight("{ me { subject } }") == 1
    assert weight('mutation { setMember(subject: "a", role: VIEWER) { __typename } }') == 5
    assert weight('mutation { startDiscovery(dataSourceId: "x") { __typename } }') == 20
    two = 'mutation { a: setMember(subject: "a", role: VIEWER) { __typename } b: cancelJob(id: "x") { __typename } }'
    assert weight(two) == 10
    assert weight('subscription { jobEvents(jobId: "x") { seq } }') == 5
