"""Prepaid units: a busy caller is served mostly in process, and no one gets more than the
buckets allow (uds.ratelimit, "Prepaid units").

Each RateLimiter here stands for one API process; several share one Redis bucket.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis

from uds.ratelimit import CREDIT_SECONDS, Bucket, RateLimiter, Verdict
from uds.settings import Settings


@pytest.fixture
async def limiters(settings: Settings) -> AsyncIterator[list[RateLimiter]]:
    made = [RateLimiter(settings.redis_url or "", prefix=settings.redis_prefix, timeout=2.0) for _ in range(3)]
    yield made
    for limiter in made:
        await limiter.aclose()


def bucket(limiter: RateLimiter, rate: float, burst: int) -> Bucket:
    return Bucket(limiter.key("test", "prepaid", uuid.uuid4().hex), rate=rate, burst=burst)


async def test_a_busy_caller_asks_redis_a_few_times_only(limiters: list[RateLimiter]) -> None:
    limiter = limiters[0]
    b = bucket(limiter, rate=100_000, burst=100_000)
    verdicts = [await limiter.hit([b], 1) for _ in range(2_000)]
    assert all(v is not None and v.allowed for v in verdicts)
    # 0, 1, 3, 7, ... prepaid units, then the cap (5,000): about a dozen calls, plus one
    # per CREDIT_SECONDS if the machine is slow.
    assert limiter.script_calls < 40, limiter.script_calls
    # The headers stay those of the bucket: its burst, and units left within it (the
    # bucket refills at 100,000/s, so "left" may rise between requests).
    assert {v.limit for v in verdicts if v} == {100_000}
    assert all(v is not None and 0 <= v.remaining <= 100_000 for v in verdicts)


async def test_processes_sharing_a_bucket_never_admit_more_than_it_allows(limiters: list[RateLimiter]) -> None:
    rate, burst = 400, 200  # prepayments up to 20 units
    b = bucket(limiters[0], rate=rate, burst=burst)
    admitted = 0
    started = time.monotonic()

    async def caller(limiter: RateLimiter) -> None:
        nonlocal admitted
        while time.monotonic() - started < 1.0:
            verdict = await limiter.hit([b], 1)
            assert verdict is not None
            admitted += verdict.allowed

    await asyncio.gather(*(caller(limiter) for limiter in limiters for _ in range(4)))
    elapsed = time.monotonic() - started
    assert admitted <= burst + rate * elapsed + 1, (admitted, elapsed)
    # Unspent prepayments are the only loss: at most one cap (20 units) per process.
    assert admitted >= burst + rate * 1.0 - 3 * 20 - rate * 0.1, (admitted, elapsed)


async def test_a_refused_request_uses_units_prepaid_meanwhile(limiters: list[RateLimiter]) -> None:
    """200 concurrent requests on an empty credit all go to Redis with no prepayment: the
    bucket admits exactly its burst, as without prepaying."""
    limiter = limiters[0]
    b = bucket(limiter, rate=10, burst=50)
    verdicts = await asyncio.gather(*(limiter.hit([b], 1) for _ in range(200)))
    admitted = sum(1 for v in verdicts if v is not None and v.allowed)
    assert 50 <= admitted <= 51, admitted


async def test_a_slow_caller_prepays_nothing(limiters: list[RateLimiter], settings: Settings) -> None:
    """A caller slower than CREDIT_SECONDS charges exactly its requests: nothing it leaves
    unspent can starve other processes of the bucket."""
    limiter = limiters[0]
    b = bucket(limiter, rate=10_000, burst=10_000)  # cap 500 units: 50 ms of the bucket
    redis = Redis.from_url(settings.redis_url or "")
    try:
        for _ in range(4):
            assert (verdict := await limiter.hit([b], 1)) is not None and verdict.allowed
            tat = int(await redis.get(b.key))
            seconds, micros = await redis.time()
            ahead_us = tat - (seconds * 1_000_000 + micros)
            assert ahead_us <= b.interval_us + 1, ahead_us  # one unit charged, not 500
            await asyncio.sleep(CREDIT_SECONDS + 0.05)
    finally:
        await redis.aclose()


async def test_a_tight_bucket_gets_exact_answers(limiters: list[RateLimiter]) -> None:
    """The free plan's member bucket (20/s, burst 60) rounds its prepayment cap to 1 unit;
    10/s rounds it to 0: every request asks Redis."""
    limiter = limiters[0]
    b = bucket(limiter, rate=10, burst=60)
    for _ in range(30):
        await limiter.hit([b], 1)
    assert limiter.script_calls == 30


def test_raw_headers_are_the_headers_as_asgi_sends_them() -> None:
    for verdict in (
        Verdict(True, 0.0, 600, 599, 0.02, 3.0),
        Verdict(False, 1.3, 60, -2, 2.5, 3.0),
        Verdict(True, 0.0, 10_000_000, 9_999_000, 0.001, 10.0),
    ):
        assert verdict.raw_headers() == [(k.lower().encode(), v.encode()) for k, v in verdict.headers()]
