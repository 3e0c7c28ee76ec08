"""The GraphQL surface of discovery: register, startDiscovery as a job, catalog, runs, drift;
and the password nowhere: not in responses, not in log lines, not in job events."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any

import pytest
from sqlalchemy import text

from conftest import Server, make_tenant, start_server
from discovery.kit import OPEN, TEST_OPTIONS, drop_database
from uds.datasources.params import ConnectionParams
from uds.db import transaction
from uds.demo import build_demo_database
from uds.discovery import service
from uds.discovery.budget import Budget
from uds.discovery.engine import discover
from uds.discovery.jobs import step_key
from uds.discovery.snapshot import TableSnapshot
from uds.settings import Settings
from uds.tenants.slugs import tenant_schema
from uds.workers.settings import make_worker, stop_worker

REGISTER = """
mutation($input: DataSourceInput!) {
  registerDataSource(input: $input) {
    __typename
    ... on DataSource { id name host port database user sslmode schemas lastDiscoveryRun { id } }
    ... on ValidationError { message } ... on Conflict { message } ... on NotAllowed { message reasons }
  }
}"""
START = """
mutation($id: ID!) { startDiscovery(dataSourceId: $id) {
  __typename ... on Job { id status kind } ... on NotFound { message } ... on NotAllowed { message } } }"""
CATALOG = """
query($id: ID!) { catalog(dataSourceId: $id) {
  run { id status rowsRead warnings }
  tables { schema name kind rowEstimate rowEstimateMethod primaryKey profileMethod sampleSize
           quality { score reasons } warnings
           indexes { name columns unique }
           columns { name dataType nullable semanticType pii
                     profile { nullFraction distinctCount min max method sampleSize
                               topValues { value frequency count } histogram { bounds fractions }
                               figures { name method sampleSize margin } }
                     quality { completeness uniqueness validity } }
           relationships { fromTable fromColumns toTable declared confidence } }
  relationships { fromSchema fromTable fromColumns toSchema toTable toColumns declared confidence reasons }
} }"""
RUNS = """
query($id: ID!) { discoveryRuns(dataSourceId: $id, first: 10) { edges { node { id status rowsRead jobId } } } }"""
DIFF = """
query($a: ID!, $b: ID!) { catalogDiff(fromRunId: $a, toRunId: $b) {
  addedTables { schema name } removedTables { schema name }
  changedTables { schema name addedColumns removedColumns
                  changedColumns { name changes { field before after } } changes { field before after } }
  addedRelationships removedRelationships } }"""
SOURCES = "{ dataSources(first: 50) { edges { node { id name host user lastDiscoveryRun { id status } } } } }"
TEST = """
mutation($id: ID!) { testDataSource(id: $id) {
  __typename ... on DataSourceTest { ok message errorKind serverVersion tablesVisible } } }"""


@pytest.fixture
async def shop(admin_params: ConnectionParams) -> AsyncIterator[ConnectionParams]:
    name = f"uds_shop_{uuid.uuid4().hex[:8]}"
    await build_demo_database(admin_params, rows=3_000, database=name)
    try:
        yield admin_params.with_database(name)
    finally:
        await drop_database(admin_params, name)


@pytest.fixture(scope="session")
async def discovery_server(migrated: Settings) -> AsyncIterator[Server]:
    """A server on a Redis namespace of its own, so only our worker sees our jobs."""
    settings = replace(migrated, redis_prefix=f"uds-test-disc-{uuid.uuid4().hex[:8]}:", job_lease_seconds=3.0)
    async for s in start_server(settings):
        yield s


@contextlib.asynccontextmanager
async def running_worker(settings: Settings) -> AsyncIterator[None]:
    worker = make_worker(settings, handle_signals=False)
    task = asyncio.create_task(worker.async_run())
    try:
        yield
    finally:
        # stop_worker, not arq's close(): close() stops at a job task cancelled while arq
        # records its end, and then leaves the worker's pool and Services open.
        await stop_worker(worker)
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def ok(
    server: Server, query: str, variables: dict[str, Any], *, sub: str, tenant: str
) -> dict[str, Any]:
    status, body = await server.gql(query, variables, token=server.token(sub), tenant=tenant)
    assert status == 200 and "errors" not in body, body
    return body["data"]  # type: ignore[no-any-return]


def source_input(params: ConnectionParams, password: str, name: str = "shop") -> dict[str, Any]:
    return {
        "name": name,
        "host": params.host,
        "port": params.port,
        "database": params.database,
        "user": params.user,
        "password": password,
        "sslmode": "disable",
        "schemas": ["shop"],
    }


async def wait_job(server: Server, slug: str, job_id: str, *, within: float = 60) -> dict[str, Any]:
    deadline = time.monotonic() + within
    while True:
        data = await ok(
            server,
            "query($id: ID!) { job(id: $id) { status error progress } }",
            {"id": job_id},
            sub="ed@x",
            tenant=slug,
        )
        job = data["job"]
        if job["status"] in ("SUCCEEDED", "FAILED", "CANCELLED"):
            return job  # type: ignore[no-any-return]
        assert time.monotonic() < deadline, job
        await asyncio.sleep(0.1)


async def test_register_discover_as_a_job_and_read_the_catalog_without_ever_showing_the_password(
    discovery_server: Server, shop: ConnectionParams, caplog: pytest.LogCaptureFixture
) -> None:
    server = discovery_server
    caplog.set_level(logging.DEBUG)
    slug = await make_tenant(server, members={"ed@x": "EDITOR", "vi@x": "VIEWER"})
    password = f"pw-{uuid.uuid4().hex}"
    responses: list[str] = []

    data = await ok(server, REGISTER, {"input": source_input(shop, password)}, sub="ed@x", tenant=slug)
    responses.append(json.dumps(data))
    source = data["registerDataSource"]
    assert source["__typename"] == "DataSource" and source["lastDiscoveryRun"] is None

    data = await ok(server, TEST, {"id": source["id"]}, sub="ed@x", tenant=slug)
    responses.append(json.dumps(data))
    assert data["testDataSource"]["ok"] is True and data["testDataSource"]["tablesVisible"] >= 7

    async with running_worker(server.settings):
        data = await ok(server, START, {"id": source["id"]}, sub="ed@x", tenant=slug)
        responses.append(json.dumps(data))
        job = data["startDiscovery"]
        assert job["__typename"] == "Job" and job["kind"] == "discovery"
        finished = await wait_job(server, slug, job["id"])
    assert finished["status"] == "SUCCEEDED", finished

    for query, variables in ((CATALOG, {"id": source["id"]}), (RUNS, {"id": source["id"]}), (SOURCES, {})):
        data = await ok(server, query, variables, sub="vi@x", tenant=slug)
        responses.append(json.dumps(data))
    catalog = json.loads(responses[-3])["catalog"]
    assert catalog["run"]["id"] == job["id"] and catalog["run"]["status"] == "SUCCEEDED"
    tables = {t["name"]: t for t in catalog["tables"]}
    assert {"customers", "orders", "order_items", "events", "payments", "products", "categories"} <= set(
        tables
    )
    email = next(c for c in tables["customers"]["columns"] if c["name"] == "email")
    assert email["semanticType"] == "email" and email["pii"] and "***@" in email["profile"]["min"]
    assert all(f["method"] for f in email["profile"]["figures"])
    assert any(not r["declared"] and r["fromTable"] == "events" for r in catalog["relationships"])

    # The job left progress per table and never wrote the password anywhere.
    async with server.services.engine.connect() as conn:
        events = (
            await conn.execute(
                text(
                    f'select type, phase, message, data::text from "{tenant_schema(slug)}".job_events '
                    "where job_id = :id order by seq"
                ),
                {"id": uuid.UUID(job["id"])},
            )
        ).all()
        run_row = (
            await conn.execute(
                text(
                    f'select row_to_json(r)::text from "{tenant_schema(slug)}".discovery_runs r where id = :id'
                ),
                {"id": uuid.UUID(job["id"])},
            )
        ).scalar_one()
        stored = (
            await conn.execute(text(f'select secret from "{tenant_schema(slug)}".data_sources'))
        ).scalar_one()
    assert {"profiles", "relationships"} <= {e.phase for e in events}
    assert "shop.customers" in {e.message for e in events}
    assert password not in repr(events) and password not in run_row
    assert stored.startswith("v1.") and password not in stored
    for response in responses:
        assert password not in response
    assert password not in caplog.text


async def test_drift_between_two_runs_and_the_catalog_api(
    discovery_server: Server, shop: ConnectionParams, admin_params: ConnectionParams
) -> None:
    server = discovery_server
    slug = await make_tenant(server, members={"ed@x": "EDITOR", "vi@x": "VIEWER"})
    data = await ok(server, REGISTER, {"input": source_input(shop, "unused")}, sub="ed@x", tenant=slug)
    source_id = uuid.UUID(data["registerDataSource"]["id"])

    async def run_once() -> str:
        snapshot = await discover(shop, budget=Budget(rows=1_000_000), guard=OPEN, options=TEST_OPTIONS)
        async with transaction(server.services.engine, slug) as tx:
            run = await service.store_run(
                await tx.tenant(),
                data_source_id=source_id,
                snapshot=snapshot,
                created_by="test",
                row_budget=1_000_000,
            )
        return str(run.id)

    first = await run_once()
    import asyncpg

    from discovery.kit import connect_args

    conn = await asyncpg.connect(**connect_args(shop))
    try:
        await conn.execute(
            """
            alter table shop.customers add column loyalty_points integer;
            alter table shop.products drop column active;
            alter table shop.orders alter column coupon_code type varchar(20);
            update shop.orders set shipped_at = null;
            create table shop.reviews (id bigint primary key, product_id integer, stars integer);
            drop table shop.categories cascade;
            """
        )
    finally:
        await conn.close()
    second = await run_once()

    runs = await ok(server, RUNS, {"id": str(source_id)}, sub="vi@x", tenant=slug)
    assert [e["node"]["id"] for e in runs["discoveryRuns"]["edges"]] == [second, first]
    catalog = await ok(server, CATALOG, {"id": str(source_id)}, sub="vi@x", tenant=slug)
    assert catalog["catalog"]["run"]["id"] == second

    diff = (await ok(server, DIFF, {"a": first, "b": second}, sub="vi@x", tenant=slug))["catalogDiff"]
    assert {"schema": "shop", "name": "reviews"} in diff["addedTables"]
    assert {"schema": "shop", "name": "categories"} in diff["removedTables"]
    changed = {t["name"]: t for t in diff["changedTables"]}
    assert changed["customers"]["addedColumns"] == ["loyalty_points"]
    assert changed["products"]["removedColumns"] == ["active"]
    orders = {c["name"]: {x["field"]: x for x in c["changes"]} for c in changed["orders"]["changedColumns"]}
    assert orders["coupon_code"]["dataType"] == {
        "field": "dataType",
        "before": "text",
        "after": "character varying(20)",
    }
    assert orders["shipped_at"]["nullFraction"]["after"] == "1.0000"
    assert any("categories" in r for r in diff["removedRelationships"])

    # A viewer reads but may not register; unknown ids are NOT_FOUND-shaped, not errors.
    status, body = await server.gql(
        REGISTER, {"input": source_input(shop, "x", "other")}, token=server.token("vi@x"), tenant=slug
    )
    assert body["data"]["registerDataSource"]["__typename"] == "NotAllowed"
    status, body = await server.gql(
        CATALOG, {"id": str(uuid.uuid4())}, token=server.token("vi@x"), tenant=slug
    )
    assert body["errors"][0]["extensions"]["code"] == "NOT_FOUND"


async def test_a_retried_job_resumes_after_its_completed_steps(
    discovery_server: Server, shop: ConnectionParams
) -> None:
    """A step recorded by an earlier run is not redone: its stored table is kept as is."""
    server = discovery_server
    slug = await make_tenant(server, members={"ed@x": "EDITOR"})
    data = await ok(server, REGISTER, {"input": source_input(shop, "unused")}, sub="ed@x", tenant=slug)
    source_id = uuid.UUID(data["registerDataSource"]["id"])
    from uds.jobs import service as jobs

    async with transaction(server.services.engine, slug) as tx:
        session = await tx.tenant()
        state = await jobs.start_job(
            session,
            services=server.services,
            kind="discovery",
            params={"data_source_id": str(source_id)},
            created_by="ed@x",
        )
        # What an earlier, interrupted run had finished: products, profiled and stored.
        await service.start_run(
            session, run_id=state.id, data_source_id=source_id, row_budget=10**6, created_by="ed@x"
        )
        earlier = TableSnapshot(
            schema="shop",
            name="products",
            kind="table",
            profile_method="exact",
            sample_size=424242,
            profiled=True,
        )
        await service.store_table(session, run_id=state.id, table=earlier)
        await session.execute(
            text(f'insert into "{tenant_schema(slug)}".job_steps (job_id, step) values (:id, :step)'),
            {"id": state.id, "step": step_key(earlier)},
        )
    async with running_worker(server.settings):
        finished = await wait_job(server, slug, str(state.id))
    assert finished["status"] == "SUCCEEDED", finished
    catalog = (await ok(server, CATALOG, {"id": str(source_id)}, sub="ed@x", tenant=slug))["catalog"]
    tables = {t["name"]: t for t in catalog["tables"]}
    assert tables["products"]["sampleSize"] == 424242  # kept, not profiled again
    assert tables["orders"]["profileMethod"] in ("exact", "sample")


async def test_a_job_on_an_unreachable_source_fails_with_a_clear_error(discovery_server: Server) -> None:
    server = discovery_server
    slug = await make_tenant(server, members={"ed@x": "EDITOR"})
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    closed = ConnectionParams(host="127.0.0.1", port=port, database="nowhere", user="u", sslmode="disable")
    data = await ok(server, REGISTER, {"input": source_input(closed, "pw-zzz")}, sub="ed@x", tenant=slug)
    source_id = data["registerDataSource"]["id"]
    async with running_worker(server.settings):
        job = (await ok(server, START, {"id": source_id}, sub="ed@x", tenant=slug))["startDiscovery"]
        finished = await wait_job(server, slug, job["id"], within=30)
    assert finished["status"] == "FAILED"
    assert "connection refused" in finished["error"] and "pw-zzz" not in finished["error"]
    runs = await ok(server, RUNS, {"id": source_id}, sub="ed@x", tenant=slug)
    assert runs["discoveryRuns"]["edges"][0]["node"]["status"] == "FAILED"


CANCEL = "mutation($id: ID!) { cancelJob(id: $id) { __typename ... on Job { status cancelRequested } } }"


async def test_cancelling_a_discovery_ends_job_and_run_cancelled(
    discovery_server: Server, shop: ConnectionParams
) -> None:
    server = discovery_server
    slug = await make_tenant(server, members={"ed@x": "EDITOR"})
    import asyncpg

    from discovery.kit import connect_args

    conn = await asyncpg.connect(**connect_args(shop))
    try:  # a view that keeps the job busy long enough to cancel it mid-run
        await conn.execute("create view shop.a_slow_view as select 1 as x from pg_sleep(20)")
    finally:
        await conn.close()
    data = await ok(server, REGISTER, {"input": source_input(shop, "unused")}, sub="ed@x", tenant=slug)
    source_id = data["registerDataSource"]["id"]
    async with running_worker(server.settings):
        job = (await ok(server, START, {"id": source_id}, sub="ed@x", tenant=slug))["startDiscovery"]
        deadline = time.monotonic() + 20
        while True:
            state = (
                await ok(
                    server,
                    "query($id: ID!) { job(id: $id) { status phase } }",
                    {"id": job["id"]},
                    sub="ed@x",
                    tenant=slug,
                )
            )["job"]
            if state["status"] == "RUNNING" and state["phase"] in ("structure", "profiles"):
                break
            assert time.monotonic() < deadline, state
            await asyncio.sleep(0.05)
        await ok(server, CANCEL, {"id": job["id"]}, sub="ed@x", tenant=slug)
        started = time.monotonic()
        finished = await wait_job(server, slug, job["id"], within=15)
        assert time.monotonic() - started < 10
    assert finished["status"] == "CANCELLED", finished
    runs = await ok(server, RUNS, {"id": source_id}, sub="ed@x", tenant=slug)
    assert runs["discoveryRuns"]["edges"][0]["node"]["status"] == "CANCELLED"


PAGE = """
query($id: ID!, $first: Int, $after: String) { catalog(dataSourceId: $id) {
  run { id } tableCount
  tablesConnection(first: $first, after: $after) {
    pageInfo { hasNextPage endCursor }
    nodes { schema name kind rowEstimate rowEstimateMethod rowEstimateBasis deadRowShare partitions inherits
            quality { reasons }
            columns { name semanticType semanticConfidence semanticReasons }
            relationships { fromTable fromColumns toTable toColumns confidence reasons } }
  }
} }"""


async def test_the_catalog_pages_over_tables_with_the_new_facts(
    discovery_server: Server, logistics: ConnectionParams, logistics_discovered: Any
) -> None:
    server = discovery_server
    slug = await make_tenant(server, members={"ed@x": "EDITOR", "vi@x": "VIEWER"})
    data = await ok(
        server,
        REGISTER,
        {"input": {**source_input(logistics, "unused", "logi"), "schemas": ["logi"]}},
        sub="ed@x",
        tenant=slug,
    )
    source_id = data["registerDataSource"]["id"]
    async with transaction(server.services.engine, slug) as tx:
        await service.store_run(
            await tx.tenant(),
            data_source_id=uuid.UUID(source_id),
            snapshot=logistics_discovered,
            created_by="test",
            row_budget=10_000_000,
        )
    seen: list[dict[str, Any]] = []
    after = None
    while True:
        page = (
            await ok(server, PAGE, {"id": source_id, "first": 5, "after": after}, sub="vi@x", tenant=slug)
        )["catalog"]
        assert page["tableCount"] == len(logistics_discovered.tables)
        connection = page["tablesConnection"]
        seen.extend(connection["nodes"])
        assert len(connection["nodes"]) <= 5
        if not connection["pageInfo"]["hasNextPage"]:
            break
        after = connection["pageInfo"]["endCursor"]
    assert [(t["schema"], t["name"]) for t in seen] == sorted(t.key for t in logistics_discovered.tables)
    by_name = {t["name"]: t for t in seen}
    events = by_name["tracking_events"]
    assert events["deadRowShare"] >= 0.45 and events["rowEstimateBasis"]
    assert any("vacuum pending" in r for r in events["quality"]["reasons"])
    assert by_name["shipments"]["partitions"] == ["logi.shipments_2024", "logi.shipments_2025"]
    assert by_name["vehicle_log_archive"]["inherits"] == "logi.vehicle_log"
    contacts = by_name["contacts"]
    rel = next(r for r in contacts["relationships"] if r["fromColumns"] == ["custno"])
    assert rel["toTable"] == "customers" and any("sampled distinct values" in r for r in rel["reasons"])
    paid_at = next(c for c in by_name["invoices"]["columns"] if c["name"] == "paid_at")
    assert paid_at["semanticType"] == "event_time" and paid_at["semanticReasons"]

    # The plain list carries the same facts.
    plain = await ok(
        server,
        "query($id: ID!) { catalog(dataSourceId: $id) { tables { name deadRowShare partitions inherits } } }",
        {"id": source_id},
        sub="vi@x",
        tenant=slug,
    )
    listed = {t["name"]: t for t in plain["catalog"]["tables"]}
    assert listed["tracking_events"]["deadRowShare"] == events["deadRowShare"]
    assert listed["shipments"]["partitions"] == ["logi.shipments_2024", "logi.shipments_2025"]

    # Tables asked for inside a fragment still come.
    fragment = await ok(
        server,
        "query($id: ID!) { catalog(dataSourceId: $id) { run { id } ...T } } fragment T on Catalog { tables { name } }",
        {"id": source_id},
        sub="vi@x",
        tenant=slug,
    )
    assert len(fragment["catalog"]["tables"]) == len(logistics_discovered.tables)

    # A cursor that is not one of ours, and a page size out of range.
    for variables in ({"after": "bm90LWEtY3Vyc29y"}, {"first": 0}):
        status, body = await server.gql(
            PAGE, {"id": source_id, **variables}, token=server.token("vi@x"), tenant=slug
        )
        assert body["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT", body
