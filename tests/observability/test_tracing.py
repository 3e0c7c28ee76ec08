"""Traces, with the SDK's in-memory exporter: a request's span tree, and a job's spans
joining the trace of the request that started it (through the arq payload)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator

import asyncpg
import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from conftest import Server, make_tenant, start_server
from jobs.kit import running_worker
from observability.conftest import Source
from uds.api.view import GraphQLView
from uds.observability import tracing
from uds.settings import Settings

READ = "query ObsTrace { me { subject } auditLog(first: 3) { edges { node { id } } } }"
REGISTER = """
mutation ObsRegister($input: DataSourceInput!) { registerDataSource(input: $input) {
  __typename ... on DataSource { id } } }"""
START = "mutation ObsStart($id: ID!) { startDiscovery(dataSourceId: $id) { __typename ... on Job { id } } }"
JOB = "query($id: ID!) { job(id: $id) { status error } }"


@pytest.fixture
def exporter() -> Iterator[InMemorySpanExporter]:
    spans = InMemorySpanExporter()
    assert tracing.setup_tracing(exporter=spans, service_name="uds-test")
    try:
        yield spans
    finally:
        tracing.shutdown_tracing()


@pytest.fixture
async def traced_server(exporter: InMemorySpanExporter, obs_settings: Settings) -> AsyncIterator[Server]:
    """A server built while tracing is on (its middleware and root fields are traced)."""
    async for server in start_server(obs_settings):
        yield server


class Tree:
    def __init__(self, spans: tuple[ReadableSpan, ...]) -> None:
        self.spans = spans
        self.by_id = {s.context.span_id: s for s in spans}

    def named(self, name: str) -> list[ReadableSpan]:
        return [s for s in self.spans if s.name == name]

    def one(self, name: str) -> ReadableSpan:
        found = self.named(name)
        assert len(found) == 1, (name, [s.name for s in self.spans])
        return found[0]

    def children(self, span: ReadableSpan) -> list[ReadableSpan]:
        return [s for s in self.spans if s.parent is not None and s.parent.span_id == span.context.span_id]

    def child_names(self, span: ReadableSpan) -> list[str]:
        return sorted(s.name for s in self.children(span))

    def descendants(self, span: ReadableSpan) -> list[ReadableSpan]:
        found = []
        for child in self.children(span):
            found += [child, *self.descendants(child)]
        return found

    def trace(self, trace_id: int) -> Tree:
        return Tree(tuple(s for s in self.spans if s.context.trace_id == trace_id))


async def test_one_request_makes_the_expected_span_tree(
    traced_server: Server, exporter: InMemorySpanExporter
) -> None:
    server = traced_server
    slug = await make_tenant(server, members={"ann@x": "ADMIN"})
    exporter.clear()
    status, body = await server.gql(
        READ, token=server.token("ann@x"), tenant=slug, headers={"x-request-id": "trace-me-1"}
    )
    assert status == 200 and "errors" not in body, body

    spans = Tree(exporter.get_finished_spans())
    request = spans.one("query ObsTrace")
    assert request.kind == SpanKind.SERVER and request.parent is None
    assert request.attributes["graphql.operation.name"] == "ObsTrace"
    assert request.attributes["uds.request_id"] == "trace-me-1"
    tree = spans.trace(request.context.trace_id)
    assert len(tree.spans) == len(spans.spans), "the request made one trace, nothing else"
    assert {"auth", "tenant", "resolve Query.me", "resolve Query.auditLog"} <= set(tree.child_names(request))
    me, audit = tree.one("resolve Query.me"), tree.one("resolve Query.auditLog")
    assert [s.attributes["action"] for s in tree.children(me) if s.name == "policy"] == ["principal.read"]
    assert [s.attributes["action"] for s in tree.children(audit) if s.name == "policy"] == ["audit.read"]
    sql = [
        s for s in tree.descendants(audit) if s.kind == SpanKind.CLIENT and "audit_log" in str(s.attributes)
    ]
    assert sql, "the audit log's SELECT is a span under its resolver"
    assert all(
        s.attributes.get("db.system") == "postgresql" or s.attributes.get("db.system.name") == "postgresql"
        for s in sql
    )
    # Only root fields get spans: none for the connection, its edges or the entries' fields.
    assert sorted(s.name for s in tree.spans if s.name.startswith("resolve ")) == [
        "resolve Query.auditLog",
        "resolve Query.me",
    ]


async def test_namespace_operations_get_their_own_span(
    traced_server: Server, exporter: InMemorySpanExporter
) -> None:
    exporter.clear()
    admin = traced_server.token("root@x", admin=True)
    status, body = await traced_server.gql(
        "query ObsAdmin { admin { tenants(first: 1) { edges { cursor } } } }", token=admin
    )
    assert status == 200 and "errors" not in body, body
    spans = Tree(exporter.get_finished_spans())
    assert sorted(s.name for s in spans.spans if s.name.startswith("resolve ")) == [
        "resolve AdminQuery.tenants",
        "resolve Query.admin",
    ]
    tenants = spans.one("resolve AdminQuery.tenants")
    assert [s.attributes["action"] for s in spans.children(tenants) if s.name == "policy"] == ["tenant.list"]


async def test_a_job_joins_the_trace_of_the_request_that_started_it(
    traced_server: Server, exporter: InMemorySpanExporter, obs_settings: Settings, library: Source
) -> None:
    server = traced_server
    slug = await make_tenant(server, members={"ed@x": "EDITOR"})
    token = server.token("ed@x")
    status, body = await server.gql(REGISTER, {"input": library.register_input()}, token=token, tenant=slug)
    source_id = body["data"]["registerDataSource"]["id"]
    exporter.clear()
    async with running_worker(obs_settings):
        status, body = await server.gql(START, {"id": source_id}, token=token, tenant=slug)
        job_id = body["data"]["startDiscovery"]["id"]
        for _ in range(300):
            status, body = await server.gql(JOB, {"id": job_id}, token=token, tenant=slug)
            if body["data"]["job"]["status"] in ("SUCCEEDED", "FAILED"):
                break
            await asyncio.sleep(0.1)
        assert body["data"]["job"]["status"] == "SUCCEEDED", body

    spans = Tree(exporter.get_finished_spans())
    request = spans.one("mutation ObsStart")
    tree = spans.trace(request.context.trace_id)
    enqueue = tree.one("job.enqueue")
    assert tree.one("resolve Mutation.startDiscovery") in [
        s
        for s in tree.spans
        if s.context.span_id == enqueue.parent.span_id  # type: ignore[union-attr]
    ]
    job = tree.one("job discovery")
    assert job.kind == SpanKind.CONSUMER
    assert job.parent is not None and job.parent.span_id == enqueue.context.span_id, (
        "the job's span continues the context injected into its arq payload"
    )
    assert job.attributes["uds.job_id"] == job_id
    steps = [s for s in tree.children(job) if s.name == "job.step"]
    assert steps, tree.child_names(job)
    source_sql = [
        s
        for s in tree.descendants(job)
        if s.kind == SpanKind.CLIENT and library.params.database in str(s.attributes)
    ]
    assert source_sql, "the source's queries are spans of the job's trace"
    # Traces start only at requests and jobs: background polling made no trace of its own.
    roots = [s for s in spans.spans if s.parent is None]
    assert roots and all(s.kind in (SpanKind.SERVER, SpanKind.CONSUMER) for s in roots), [
        s.name for s in roots
    ]


async def test_tracing_off_leaves_nothing_in_place(obs_settings: Settings) -> None:
    tracing.shutdown_tracing()
    assert not tracing.enabled()
    assert tracing.span("anything") is tracing.span("else"), "one shared no-op"
    assert tracing.inject() is None
    assert not hasattr(asyncpg.connection.Connection.fetch, "__wrapped__"), "asyncpg is not instrumented"
    async for server in start_server(obs_settings):
        schema = GraphQLView(server.services).schema._schema
        assert not getattr(schema.query_type.fields["me"].resolve, "_uds_traced", False)
        response = await server.http.post(
            f"{server.url}/graphql",
            json={"query": "{ me { subject } }"},
            headers={"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"},
        )
        assert response.status_code == 200 and "traceparent" not in response.headers
