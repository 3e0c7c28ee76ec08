"""Rate limits: GCRA buckets per tenant and per member in Redis, failing open without Redis.

Servers here run with rate limits on (the shared test server has them off, since a test
session sends thousands of requests as one admin within seconds).
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import pytest
from redis.asyncio import Redis

from conftest import Server, make_tenant, start_server
from private_redis import PrivateRedis
from uds.observability.metrics import REDIS_ERRORS
from uds.ratelimit import Bucket, RateLimiter
from uds.settings import Settings

READ = "{ tenant { slug } }"
SET_LIMITS = """mutation($slug: String!, $limits: TenantLimitsInput!) {
  admin { setTenantLimits(slug: $slug, limits: $limits) { __typename ... on Tenant { limits {
    requestsPerSecond requestBurst memberRequestsPerSecond memberRequestBurst } } } } }"""


@pytest.fixture(scope="module")
async def limited(migrated: Settings) -> AsyncIterator[Server]:
    async for server in start_server(replace(migrated, rate_limits=True, platform_request_burst=1_000)):
        yield server


async def tenant_with(server: Server, members: dict[str, str], **limits: int) -> str:
    slug = await make_tenant(server, members=members)
    data = await server.admin(SET_LIMITS, {"slug": slug, "limits": limits})
    assert data["admin"]["setTenantLimits"]["__typename"] == "Tenant", data
    return slug


async def read(server: Server, token: str, slug: str) -> httpx.Response:
    return await server.http.post(
        f"{server.url}/graphql",
        json={"query": READ},
        headers={"authorization": f"Bearer {token}", "x-tenant-id": slug},
    )


def admitted_bounds(rate: float, burst: int, elapsed: float) -> tuple[int, int]:
    """What GCRA may admit from a full bucket within `elapsed` seconds: the burst, plus
    what refills meanwhile (one more for the emission interval's rounding)."""
    return burst, burst + int(rate * elapsed) + 1


async def test_200_concurrent_requests_admit_the_limit(limited: Server) -> None:
    rate, burst = 20, 20
    slug = await tenant_with(
        limited, {"ana@acme": "VIEWER"}, requestsPerSecond=rate, requestBurst=burst,
        memberRequestsPerSecond=100_000, memberRequestBurst=100_000,
    )
    token = limited.token("ana@acme")
    await read(limited, token, slug)  # warm the registry and token caches (charged: 1 unit)
    await asyncio.sleep(burst / rate + 0.1)  # the bucket is full again
    started = time.monotonic()
    responses = await asyncio.gather(*(read(limited, token, slug) for _ in range(200)))
    elapsed = time.monotonic() - started
    ok = [r for r in responses if r.status_code == 200]
    refused = [r for r in responses if r.status_code == 429]
    assert len(ok) + len(refused) == 200
    low, high = admitted_bounds(rate, burst, elapsed)
    assert low <= len(ok) <= high, (len(ok), elapsed)
    body: dict[str, Any] = refused[0].json()
    error = body["errors"][0]
    assert error["extensions"]["code"] == "RATE_LIMITED"
    assert error["extensions"]["retryAfter"] >= 1
    assert int(refused[0].headers["retry-after"]) == error["extensions"]["retryAfter"]
    for response in (ok[0], refused[0]):
        assert response.headers["ratelimit-limit"] == str(burst)
        assert int(response.headers["ratelimit-remaining"]) >= 0
        assert int(response.headers["ratelimit-reset"]) >= 0
        assert response.headers["ratelimit-policy"] == f"{burst};w=1"
    assert all(r.json()["data"]["tenant"]["slug"] == slug for r in ok)


async def test_gcra_admits_exactly_the_burst_under_concurrency(settings: Settings) -> None:
    """The script alone, 200 concurrent calls: no race lets more than the bucket through."""
    limiter = RateLimiter(settings.redis_url or "", prefix=settings.redis_prefix, timeout=2.0)
    try:
        bucket = Bucket(limiter.key("test", uuid.uuid4().hex), rate=10, burst=50)
        started = time.monotonic()
        verdicts = await asyncio.gather(*(limiter.hit([bucket], 1) for _ in range(200)))
        elapsed = time.monotonic() - started
        admitted = sum(1 for v in verdicts if v is not None and v.allowed)
        low, high = admitted_bounds(10, 50, elapsed)
        assert low <= admitted <= high, (admitted, elapsed)
        refused = [v for v in verdicts if v is not None and not v.allowed]
        assert refused and all(0 < v.retry_after <= 0.1 + 1e-6 for v in refused)
    finally:
        await limiter.aclose()


async def test_batched_charges_go_in_pipelines_and_admit_exactly_the_burst(settings: Settings) -> None:
    """WebSocket set-up charges (`batched`) wait for the call in flight and go together in
    one pipeline: fewer round trips, the same exact GCRA answers."""
    limiter = RateLimiter(settings.redis_url or "", prefix=settings.redis_prefix, timeout=2.0)
    try:
        bucket = Bucket(limiter.key("test", uuid.uuid4().hex), rate=10, burst=50)
        started = time.monotonic()
        verdicts = await asyncio.gather(*(limiter.hit([bucket], 1, batched=True) for _ in range(200)))
        elapsed = time.monotonic() - started
        admitted = sum(1 for v in verdicts if v is not None and v.allowed)
        low, high = admitted_bounds(10, 50, elapsed)
        assert low <= admitted <= high, (admitted, elapsed)
        assert 1 <= limiter.scripts.pipelines < 200  # the first call alone, the others batched
    finally:
        await limiter.aclose()


async def test_coalesced_script_calls_load_a_script_redis_does_not_know(settings: Settings) -> None:
    """Calls queued behind another go as one pipeline of EVALSHAs; a script Redis has
    never seen (NOSCRIPT there) is loaded and run, once per call, in the callers' order."""
    from uds.ratelimit import _Scripts

    redis = Redis.from_url(settings.redis_url or "")
    try:
        scripts = _Scripts(redis)
        first = scripts.caller("return 'first'")
        fresh = scripts.caller(f"-- {uuid.uuid4().hex}\nreturn redis.call('INCR', KEYS[1])")
        key = settings.redis_prefix + "test:coalesce:" + uuid.uuid4().hex
        results = await asyncio.gather(first(keys=[], args=[]), *(fresh(keys=[key], args=[]) for _ in range(5)))
        assert results == [b"first", 1, 2, 3, 4, 5]
        assert scripts.pipelines == 1
        assert int(await redis.get(key)) == 5  # each call ran once
        await redis.delete(key)
    finally:
        await redis.aclose()


async def test_two_tenants_do_not_share_a_bucket(limited: Server) -> None:
    limits = {"requestsPerSecond": 1, "requestBurst": 20, "memberRequestsPerSecond": 1000, "memberRequestBurst": 1000}
    first = await tenant_with(limited, {"ana@a": "VIEWER"}, **limits)
    second = await tenant_with(limited, {"bob@b": "VIEWER"}, **limits)
    drained = await asyncio.gather(*(read(limited, limited.token("ana@a"), first) for _ in range(30)))
    assert {r.status_code for r in drained} == {200, 429}
    other = await read(limited, limited.token("bob@b"), second)
    assert other.status_code == 200
    assert other.headers["ratelimit-remaining"] == "19"


async def test_members_have_buckets_of_their_own(limited: Server) -> None:
    slug = await tenant_with(
        limited, {"noisy@a": "VIEWER", "quiet@a": "VIEWER"},
        requestsPerSecond=1000, requestBurst=1000, memberRequestsPerSecond=1, memberRequestBurst=20,
    )
    drained = await asyncio.gather(*(read(limited, limited.token("noisy@a"), slug) for _ in range(30)))
    assert sum(r.status_code == 200 for r in drained) <= 21
    assert (await read(limited, limited.token("quiet@a"), slug)).status_code == 200


async def test_mutations_and_job_starts_weigh_more_than_reads(limited: Server) -> None:
    slug = await tenant_with(
        limited, {"boss@a": "ADMIN"},
        requestsPerSecond=1, requestBurst=100, memberRequestsPerSecond=1000, memberRequestBurst=1000,
    )
    token = limited.token("boss@a")

    async def remaining(query: str) -> int:
        response = await limited.http.post(
            f"{limited.url}/graphql", json={"query": query},
            headers={"authorization": f"Bearer {token}", "x-tenant-id": slug},
        )
        assert response.status_code == 200, response.text
        return int(response.headers["ratelimit-remaining"])

    start = await remaining(READ)
    after_read = await remaining(READ)
    after_mutation = await remaining('mutation { setMember(subject: "x@a", role: VIEWER) { __typename } }')
    after_job = await remaining(f'mutation {{ startDiscovery(dataSourceId: "{uuid.uuid4()}") {{ __typename }} }}')
    # Refill during the calls is at most a unit or two (1 unit per second).
    assert start - after_read in (1, 0)
    assert 3 <= after_read - after_mutation <= 5
    assert 18 <= after_mutation - after_job <= 20


async def test_limits_come_from_the_plan(limited: Server) -> None:
    slug = await make_tenant(limited, members={"ana@acme": "VIEWER"})
    response = await read(limited, limited.token("ana@acme"), slug)
    assert response.headers["ratelimit-limit"] == "60"  # free plan: member burst 60 < tenant burst 100


async def test_bad_limits_are_refused(limited: Server) -> None:
    slug = await make_tenant(limited)
    data = await limited.admin(
        """mutation($s: String!) { admin { setTenantLimits(slug: $s, limits: {requestBurst: 5}) {
        __typename ... on ValidationError { message } } } }""",
        {"s": slug},
    )
    result = data["admin"]["setTenantLimits"]
    assert result["__typename"] == "ValidationError" and "request_burst" in result["message"]


async def test_websocket_connections_per_member_are_capped(limited: Server) -> None:
    from gql import Client
    from gql.transport.exceptions import TransportConnectionFailed
    from gql.transport.websockets import WebsocketsTransport

    slug = await tenant_with(limited, {"ws@a": "VIEWER"}, maxWsConnectionsPerMember=2)
    token = limited.token("ws@a")
    ws_url = limited.url.replace("http://", "ws://") + "/graphql"

    def transport() -> WebsocketsTransport:
        return WebsocketsTransport(
            url=ws_url,
            subprotocols=[WebsocketsTransport.GRAPHQLWS_SUBPROTOCOL],
            init_payload={"authorization": f"Bearer {token}", "tenant": slug},
        )

    first, second = Client(transport=transport()), Client(transport=transport())
    await first.connect_async()
    await second.connect_async()
    try:
        with pytest.raises(TransportConnectionFailed) as refused:
            await Client(transport=transport()).connect_async()
        assert "4403" in str(refused.value.__cause__ or refused.value.__context__)
    finally:
        await second.close_async()
    # A slot is free again once a connection closes.
    again = Client(transport=transport())
    await again.connect_async()
    await again.close_async()
    await first.close_async()


# --- Redis gone ---------------------------------------------------------------------------------


@pytest.fixture
async def stoppable(migrated: Settings, tmp_path: Path) -> AsyncIterator[tuple[Server, PrivateRedis]]:
    redis = PrivateRedis(tmp_path / "valkey").start()
    try:
        settings = replace(migrated, redis_url=redis.url, rate_limits=True, rate_limit_timeout_seconds=0.2)
        async for server in start_server(settings):
            yield server, redis
    finally:
        redis.stop()


async def test_redis_stopped_requests_are_still_served(
    stoppable: tuple[Server, PrivateRedis], server: Server, caplog: pytest.LogCaptureFixture
) -> None:
    limited, redis = stoppable
    slug = await make_tenant(server, members={"ana@acme": "VIEWER"})  # through the healthy server
    token = limited.token("ana@acme")
    before = await read(limited, token, slug)
    assert before.status_code == 200 and "ratelimit-remaining" in before.headers
    errors = REDIS_ERRORS.labels("rate_limiter")._value.get()
    redis.stop()
    with caplog.at_level(logging.WARNING, logger="uds.ratelimit"):
        responses = [await read(limited, token, slug) for _ in range(5)]
    assert [r.status_code for r in responses] == [200] * 5
    assert all(r.json()["data"]["tenant"]["slug"] == slug for r in responses)
    assert all("ratelimit-remaining" not in r.headers for r in responses)  # nothing was counted
    assert limited.services.limiter.redis_errors >= 1
    assert REDIS_ERRORS.labels("rate_limiter")._value.get() > errors  # the metric counts it
    assert any("Redis unavailable" in r.getMessage() for r in caplog.records)


# --- the fast lane (operation plans, persisted queries) -----------------------------------------


async def test_the_fast_lane_is_limited_like_the_normal_path(limited: Server) -> None:
    from uds.api.plans import STATS

    slug = await tenant_with(
        limited, {"ana@acme": "ADMIN"}, requestsPerSecond=1, requestBurst=20,
        memberRequestsPerSecond=100_000, memberRequestBurst=100_000,
    )
    token = limited.token("ana@acme")
    query = "query($n: Int) { auditLog(first: $n) { nodes { action } } }"

    async def send(n: int) -> httpx.Response:
        return await limited.http.post(
            f"{limited.url}/graphql", json={"query": query, "variables": {"n": n}},
            headers={"authorization": f"Bearer {token}", "x-tenant-id": slug},
        )

    first = await send(5)  # the normal path runs it, and the lane learns its plan
    assert first.status_code == 200, first.text
    before = STATS["plans_run"]
    answers = [await send(5) for _ in range(25)]
    assert STATS["plans_run"] > before, "the plan ran (else this test proves nothing about the lane)"
    statuses = [r.status_code for r in answers]
    assert 429 in statuses and statuses.count(200) <= 20  # the burst held on the lane too
    served = [r for r in answers if r.status_code == 200]
    assert all("ratelimit-remaining" in r.headers for r in served)
    refused = next(r for r in answers if r.status_code == 429)
    assert refused.json()["errors"][0]["extensions"]["code"] == "RATE_LIMITED" and "retry-after" in refused.headers
