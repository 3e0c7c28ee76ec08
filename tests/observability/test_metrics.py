"""GET /metrics: the Prometheus text format, and counters that move by what was done."""

from __future__ import annotations

import asyncio
from dataclasses import replace

from gql import GraphQLRequest
from prometheus_client import REGISTRY

from conftest import Server, make_tenant, start_server
from jobs.kit import EVENTS, running_worker, seed_audit, start, wait_for, ws_client
from observability.kit import delta, parse, scrape
from uds.observability import metrics
from uds.settings import Settings

READ = "query ObsRead { me { subject } }"
DENIED = "query ObsDenied { admin { tenants(first: 1) { edges { cursor } } } }"
ANONYMOUS = "{ me { subject } }"
CANCEL = "mutation ObsCancel($id: ID!) { cancelJob(id: $id) { __typename } }"


async def test_requests_are_counted_by_operation_type_and_outcome(obs_server: Server) -> None:
    slug = await make_tenant(obs_server, members={"ann@x": "EDITOR"})
    token = obs_server.token("ann@x")
    before = await scrape(obs_server)

    for _ in range(3):
        status, body = await obs_server.gql(READ, token=token, tenant=slug)
        assert status == 200 and "errors" not in body, body
    for _ in range(2):
        status, body = await obs_server.gql(DENIED, token=token, tenant=slug)
        assert body["errors"][0]["extensions"]["code"] == "FORBIDDEN", body
    status, body = await obs_server.gql(ANONYMOUS, token=token, tenant=slug)
    assert status == 200 and "errors" not in body
    status, _ = await obs_server.gql(READ, token="not-a-jwt", tenant=slug)
    assert status == 401
    status, _ = await obs_server.gql("query Broken { me { ", token=token, tenant=slug)
    assert status == 200
    assert (await obs_server.http.get(f"{obs_server.url}/healthz")).status_code == 200

    after = await scrape(obs_server)
    requests = "uds_requests_total"
    assert delta(before, after, requests, operation="ObsRead", type="query", outcome="OK", tenant=slug) == 3
    assert (
        delta(before, after, requests, operation="ObsDenied", type="query", outcome="FORBIDDEN", tenant=slug)
        == 2
    )
    assert delta(before, after, requests, operation="anonymous", type="query", outcome="OK", tenant=slug) == 1
    # Refused by the auth middleware, before GraphQL: no operation, no tenant yet.
    assert (
        delta(
            before, after, requests, operation="unknown", type="unknown", outcome="UNAUTHENTICATED", tenant=""
        )
        == 1
    )
    # Unparsable: GraphQL answered, but no operation was ever known.
    assert (
        delta(
            before,
            after,
            requests,
            operation="unknown",
            type="unknown",
            outcome="BAD_USER_INPUT",
            tenant=slug,
        )
        == 1
    )
    assert delta(before, after, requests, operation="/healthz", type="http", outcome="OK", tenant="") == 1
    assert delta(before, after, "uds_request_duration_seconds_count", operation="ObsRead", type="query") == 3
    assert delta(before, after, "uds_request_duration_seconds_sum", operation="ObsRead", type="query") > 0
    # ObsRead x3 and the anonymous one asked principal.read; ObsDenied was denied tenant.list.
    assert delta(before, after, "uds_policy_decisions_total", action="principal.read", result="allow") == 4
    assert delta(before, after, "uds_policy_decisions_total", action="tenant.list", result="deny") == 2
    # One verification of the token, then the cache (the bad token misses too).
    assert delta(before, after, "uds_cache_lookups_total", cache="token", result="hit") == 6
    assert delta(before, after, "uds_cache_lookups_total", cache="token", result="miss") == 2
    lookups = delta(before, after, "uds_cache_lookups_total", cache="tenant", result="hit") + delta(
        before, after, "uds_cache_lookups_total", cache="tenant", result="miss"
    )
    assert lookups >= 7, "every request naming the tenant looked it up in the registry"
    # The scrape itself is the one request in flight; no connection is left checked out.
    assert after.value("uds_requests_in_flight") == 1
    assert after.value("uds_db_pool_waiting") == 0


async def test_operation_names_are_bounded(obs_settings: Settings, obs_server: Server) -> None:
    """Clients choose operation names: past the limit they all count as `other`."""
    async for server in start_server(replace(obs_settings, metrics_max_operations=2)):
        token = server.token("root@x", admin=True)
        before = await scrape(server)
        for name in ("ObsOne", "ObsTwo", "ObsThree", "ObsFour", "ObsOne"):
            status, body = await server.gql(f"query {name} {{ me {{ subject }} }}", token=token)
            assert status == 200 and "errors" not in body, body
        after = await scrape(server)
        counted = {
            dict(labels)["operation"]
            for (name, labels), _ in after.samples.items()
            if name == "uds_requests_total" and dict(labels)["operation"].startswith("Obs")
        }
        assert {"ObsOne", "ObsTwo"} <= counted and not counted & {"ObsThree", "ObsFour"}
        assert (
            delta(
                before, after, "uds_requests_total", operation="ObsOne", type="query", outcome="OK", tenant=""
            )
            == 2
        )
        assert (
            delta(
                before, after, "uds_requests_total", operation="other", type="query", outcome="OK", tenant=""
            )
            == 2
        )
    metrics.configure_metrics(obs_settings)


async def test_jobs_are_counted_by_kind_and_status_with_their_durations(
    obs_server: Server, obs_settings: Settings
) -> None:
    slug = await make_tenant(obs_server, members={"ed@x": "EDITOR"})
    await seed_audit(obs_server, slug, 300)
    before = await scrape(obs_server)
    good = await start(obs_server, slug, batch_size=100)
    bad = await start(obs_server, slug, batch_size=100, fail_at_step=1)
    async with running_worker(obs_settings):
        await wait_for(obs_server, slug, good.id, "SUCCEEDED")
        await wait_for(obs_server, slug, bad.id, "FAILED")
    after = await scrape(obs_server)

    jobs = "uds_jobs_total"
    assert delta(before, after, jobs, kind="tenant.stats", status="queued", tenant=slug) == 2
    assert delta(before, after, jobs, kind="tenant.stats", status="succeeded", tenant=slug) == 1
    assert delta(before, after, jobs, kind="tenant.stats", status="failed", tenant=slug) == 1
    seconds = "uds_job_duration_seconds_count"
    assert delta(before, after, seconds, kind="tenant.stats", status="succeeded") == 1
    assert delta(before, after, seconds, kind="tenant.stats", status="failed") == 1
    assert delta(before, after, "uds_job_admission_wait_seconds_count", plan="free") == 2
    assert after.value("uds_jobs_running", kind="tenant.stats") == before.value(
        "uds_jobs_running", kind="tenant.stats"
    )
    assert after.value("uds_job_queue_depth", plan="free") == 0, "the sweeper reported every plan"


async def test_subscriptions_are_counted_while_open(obs_server: Server) -> None:
    slug = await make_tenant(obs_server, members={"ed@x": "EDITOR"})
    token = obs_server.token("ed@x")
    job = await start(obs_server, slug)  # no worker: it stays queued
    before = await scrape(obs_server)
    first = asyncio.Event()
    seen: list[dict[str, object]] = []

    async def follow() -> None:
        async with ws_client(obs_server, token, slug) as session:
            async for result in session.subscribe(
                GraphQLRequest(EVENTS, variable_values={"id": str(job.id)})
            ):
                seen.append(result["jobEvents"])
                first.set()

    task = asyncio.create_task(follow())
    await asyncio.wait_for(first.wait(), 10)
    during = await scrape(obs_server)
    status, body = await obs_server.gql(CANCEL, {"id": str(job.id)}, token=token, tenant=slug)
    assert body["data"]["cancelJob"]["__typename"] == "Job", body
    await asyncio.wait_for(task, 10)
    after = await scrape(obs_server)

    assert seen[-1]["type"] == "cancelled"
    assert during.value("uds_subscriptions") == before.value("uds_subscriptions") + 1
    assert after.value("uds_subscriptions") == before.value("uds_subscriptions")
    assert delta(before, after, "uds_jobs_total", kind="tenant.stats", status="cancelled", tenant=slug) == 1
    assert (
        delta(
            before,
            after,
            "uds_requests_total",
            operation="ObsCancel",
            type="mutation",
            outcome="OK",
            tenant=slug,
        )
        == 1
    )


async def test_pool_waits_and_use_are_gauged(obs_settings: Settings) -> None:
    """A pool of one: a second checkout waits (counted) until the first comes back."""
    from uds.db import make_engine

    def gauge(name: str) -> float:
        return REGISTRY.get_sample_value(name) or 0.0

    engine = make_engine(obs_settings, pool_size=1)
    try:
        in_use, waiting = gauge("uds_db_pool_connections_in_use"), gauge("uds_db_pool_waiting")
        first = await engine.connect()
        assert gauge("uds_db_pool_connections_in_use") == in_use + 1
        second = asyncio.create_task(engine.connect().start())
        for _ in range(200):
            if gauge("uds_db_pool_waiting") == waiting + 1:
                break
            await asyncio.sleep(0.01)
        assert gauge("uds_db_pool_waiting") == waiting + 1
        await first.close()
        conn = await asyncio.wait_for(second, 5)
        assert gauge("uds_db_pool_waiting") == waiting
        assert gauge("uds_db_pool_connections_in_use") == in_use + 1
        await conn.close()
        assert gauge("uds_db_pool_connections_in_use") == in_use
    finally:
        await engine.dispose()


async def test_redis_errors_and_discovery_rows_are_counted(obs_settings: Settings) -> None:
    from redis.asyncio import Redis

    from conftest import _free_port
    from uds.db import make_engine
    from uds.discovery.budget import Budget
    from uds.tenants.registry import TenantRegistry

    before = parse((metrics.exposition()).decode())
    engine = make_engine(obs_settings, pool_size=1)
    dead = Redis.from_url(f"redis://127.0.0.1:{_free_port()}/0", socket_connect_timeout=0.5)
    try:
        await TenantRegistry(engine, dead).announce("some-tenant")  # logged, counted, not raised
    finally:
        await dead.aclose()
        await engine.dispose()
    budget = Budget(rows=1_000)
    budget.charge(120)
    budget.charge(-5)  # never negative
    after = parse((metrics.exposition()).decode())
    assert delta(before, after, "uds_redis_errors_total", component="tenant_registry") == 1
    assert delta(before, after, "uds_discovery_rows_read_total") == 120
