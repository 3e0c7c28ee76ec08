"""Rate limits in Redis: GCRA buckets checked and charged in one atomic script call.

GCRA (the generic cell rate algorithm) keeps one number per bucket, the theoretical
arrival time (TAT) of the next request. A bucket with rate `r` units per second and burst
`b` has emission interval T = 1/r; a request of weight w is allowed when
`max(TAT, now) + w*T - b*T <= now`, and then TAT becomes `max(TAT, now) + w*T`. Several
buckets (the tenant's and the member's) are checked in the same script call and charged
only if all of them allow, so a refused request costs nothing and two buckets can never
disagree. Time comes from the Redis server (`TIME`), so API processes with skewed clocks
share one notion of now.

Prepaid units. A process serving one caller many times a second does not ask Redis for
every request: the script may grant more than the request's weight (never more than the
buckets allow at that moment), and the process spends the rest locally for up to
CREDIT_SECONDS. When half of what it holds is spent (or half its time is gone) one
background call asks for more, while requests go on locally; requests finding nothing
left while that call is out go to Redis one by one, exactly, as without prepaying. Every
unit served was charged in Redis first, so no process, and no set of processes, admits
more than the buckets allow. How much to hold follows the caller's own pace in this
process (units admitted since the last grant, per CREDIT_SECONDS): nothing on a first
request, at most twice the last amount (a slow start), at most PREPAY_SECONDS of the
tightest bucket's rate and PREPAY_SHARE of its burst. A bucket of a few units per second
therefore gets exact answers (its cap rounds to 0), and a slow caller holds about
nothing, so unspent units cannot starve the bucket for others. A request Redis refuses
may still be served from units a concurrent request of the same caller prepaid.
RateLimit-Remaining on a request served locally is the figure of the last grant plus the
units still held.

Redis unreachable or slow: requests are served (fail open, for rate limits only). The
first failure opens a breaker for BREAKER_SECONDS, during which Redis is not asked at all
(no added latency per request), is logged once, and counted (`uds_redis_errors` with
component "rate_limiter", and `RateLimiter.redis_errors`).

WebSocket connections are capped per member with leases: a sorted set per member of
connection ids scored by lease expiry, renewed by the process holding them, so a process
that dies without closing its sockets frees their slots within LEASE_SECONDS.

Lease acquisitions made while another one is on its way to Redis wait for it and then go
together, in one pipeline (`_Scripts`): a thousand WebSocket clients connecting at once
cost a few round trips and connection checkouts instead of a thousand each. Every call is
still its own EVALSHA, run atomically by Redis in the order sent, so the caps stay exact;
a lone call goes out at once. The request buckets (GCRA) of HTTP requests are not
coalesced: under HTTP load, queueing every request's check behind the one in flight
halved the read benchmark's throughput (bench/graphql_read.py: about 1,000 req/s plain,
about 550 coalesced, 2026-11-30). The WebSocket set-up's charges (the connect and each
subscription: `hit(..., batched=True)`) are: a thousand subscribers arriving together
found the prepaid units gone and a refill on its way nearly every time, and sent two
GCRA calls each (bench/job_events.py); batched, they share the leases' pipelines.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import math
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from redis.asyncio import Redis
from redis.commands.core import AsyncScript
from redis.exceptions import NoScriptError, RedisError

from uds.observability import metrics

log = logging.getLogger(__name__)

BREAKER_SECONDS = 1.0
LEASE_SECONDS = 60.0
CREDIT_SECONDS = 0.25  # prepaid units are spent within this time, or dropped
PREPAY_SECONDS = 0.05  # a prepayment is at most this much of the tightest bucket's rate
PREPAY_SHARE = 0.1  # and at most this share of its burst

# KEYS: the buckets. ARGV[1]: weight; ARGV[2]: units to prepay on top of it, as many as
# the buckets allow now; then per bucket its emission interval (microseconds per unit) and
# its burst (units). Returns {allowed, retry_after_us, tightest bucket index, units
# remaining in it, microseconds until it is full again, units charged}.
GCRA = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local weight = tonumber(ARGV[1])
local wanted = weight + tonumber(ARGV[2])
local retry, tight, room = 0, 1, math.huge
local tats = {}
for i = 1, #KEYS do
  local interval = tonumber(ARGV[2 * i + 1])
  local burst = tonumber(ARGV[2 * i + 2])
  local tat = tonumber(redis.call('GET', KEYS[i]) or now)
  if tat < now then tat = now end
  tats[i] = tat
  local allow_at = tat + weight * interval - burst * interval
  if allow_at > now then
    retry = math.max(retry, allow_at - now)
  end
  local fits = math.floor((now + burst * interval - tat) / interval)
  if fits < room then
    tight, room = i, fits
  end
end
if retry > 0 then
  return {0, math.ceil(retry), tight, room, math.ceil(tats[tight] - now), 0}
end
local charged = math.max(weight, math.min(wanted, room))
local reset = 0
for i = 1, #KEYS do
  local new_tat = tats[i] + charged * tonumber(ARGV[2 * i + 1])
  if i == tight then reset = new_tat - now end
  local ttl = math.ceil((new_tat - now) / 1000) + 1
  redis.call('SET', KEYS[i], string.format('%d', new_tat), 'PX', ttl)
end
return {1, 0, tight, room - charged, math.ceil(reset), charged}
"""

# KEYS[1]: the member's connection set. ARGV: cap, lease id, lease milliseconds.
# Drops expired leases, then adds this one if there is room. Returns 1 if it was added.
ACQUIRE_LEASE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[1]) then
  return 0
end
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[3]), ARGV[2])
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[3]))
return 1
"""

RENEW_LEASE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZADD', KEYS[1], 'XX', now + tonumber(ARGV[2]), ARGV[1])
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[2]))
return 1
"""


@dataclass(frozen=True, slots=True)
class Bucket:
    """One GCRA bucket: `rate` units per second, up to `burst` units at once."""

    key: str
    rate: float
    burst: int

    @property
    def interval_us(self) -> float:
        return 1_000_000 / self.rate


@dataclass(slots=True)  # not frozen: a frozen dataclass's __init__ costs a setattr call per field
class Verdict:
    """The outcome for one request, with what the RateLimit headers report."""

    allowed: bool
    retry_after: float  # seconds until a request of this weight would be allowed
    limit: int  # burst of the tightest bucket
    remaining: int  # units left in it
    reset: float  # seconds until it is full again
    window: float  # seconds the tightest bucket takes to refill from empty

    def headers(self) -> list[tuple[str, str]]:
        """RateLimit-* (IETF httpapi draft) headers, plus Retry-After on a refusal."""
        headers = [
            ("RateLimit-Limit", str(self.limit)),
            ("RateLimit-Remaining", str(max(self.remaining, 0))),
            ("RateLimit-Reset", str(math.ceil(self.reset))),
            ("RateLimit-Policy", f"{self.limit};w={max(1, math.ceil(self.window))}"),
        ]
        if not self.allowed:
            headers.append(("Retry-After", str(max(1, math.ceil(self.retry_after)))))
        return headers

    def raw_headers(self) -> list[tuple[bytes, bytes]]:
        """`headers()` as an ASGI response's (lower-case names, bytes)."""
        headers = [
            (b"ratelimit-limit", b"%d" % self.limit),
            (b"ratelimit-remaining", b"%d" % max(self.remaining, 0)),
            (b"ratelimit-reset", b"%d" % math.ceil(self.reset)),
            (b"ratelimit-policy", b"%d;w=%d" % (self.limit, max(1, math.ceil(self.window)))),
        ]
        if not self.allowed:
            headers.append((b"retry-after", b"%d" % max(1, math.ceil(self.retry_after))))
        return headers


class _Credit:
    """Units one process prepaid for one set of buckets (see the top), and their headers."""

    __slots__ = (
        "expires",
        "limit",
        "refilling",
        "remaining",
        "reset",
        "since",
        "target",
        "units",
        "used",
        "window",
    )

    def __init__(self) -> None:
        self.units = 0  # prepaid units left
        self.expires = 0.0  # monotonic time after which they are dropped
        self.target = 0  # units to hold: about what the caller spends in CREDIT_SECONDS
        self.used = 0  # units admitted since the last grant
        self.since = 0.0  # time of the last grant
        self.refilling = False  # a prepayment is on its way
        self.limit = self.remaining = 0
        self.reset = self.window = 0.0

    def take(self, weight: int, now: float) -> Verdict | None:
        """A verdict for a request served from prepaid units, or None if there are too few."""
        if self.units < weight or self.expires <= now:
            return None
        self.units -= weight
        self.used += weight
        remaining = min(self.limit, self.remaining + self.units)
        return Verdict(True, 0.0, self.limit, remaining, self.reset, self.window)

    def wants_refill(self, now: float) -> bool:
        """Ask for more before these run out (or expire), while requests go on locally."""
        return not self.refilling and (
            2 * self.units < self.target or self.expires - now < CREDIT_SECONDS / 2
        )

    def prepayment(self, weight: int, now: float, cap: int) -> int:
        """Units to prepay on the next call to Redis: the caller's pace, at most twice the
        last target (so a caller seen twice does not hold many), at most `cap`."""
        elapsed = now - self.since
        pace = int((self.used + weight) / elapsed * CREDIT_SECONDS) if elapsed > 0 else 0
        self.target = min(cap, pace, 2 * self.target + weight)
        held = self.units if self.expires > now else 0
        return max(0, self.target - held)

    def grant(self, units: int, now: float, verdict: Verdict) -> None:
        if self.expires <= now:
            self.units = 0
        self.units += units
        self.used = 0
        self.since = now
        self.expires = now + CREDIT_SECONDS
        self.limit, self.remaining = verdict.limit, verdict.remaining - self.units
        self.reset, self.window = verdict.reset, verdict.window


def _prepay_cap(buckets: Sequence[Bucket]) -> int:
    return int(min(min(b.rate * PREPAY_SECONDS, b.burst * PREPAY_SHARE) for b in buckets))


@lru_cache(maxsize=4096)
def subject_key(subject: str) -> str:
    """A short, fixed-length key part for a principal's subject (any characters)."""
    return hashlib.sha256(subject.encode("utf-8", "surrogatepass")).hexdigest()[:24]


class RateLimiter:
    """Checks and charges buckets; fails open while Redis is unreachable."""

    def __init__(self, redis_url: str, *, prefix: str, timeout: float, enabled: bool = True) -> None:
        self.enabled = enabled
        self.prefix = prefix
        self.redis = Redis.from_url(redis_url, socket_timeout=timeout, socket_connect_timeout=timeout)
        scripts = self.scripts = _Scripts(self.redis)
        self._gcra = self.redis.register_script(GCRA)
        self._acquire = scripts.caller(ACQUIRE_LEASE)
        self._renew = self.redis.register_script(RENEW_LEASE)
        self._broken_until = 0.0
        self.redis_errors = 0  # failures since start (each one served the request anyway)
        self._leases: dict[tuple[str, str], None] = {}
        self._renewer: asyncio.Task[None] | None = None
        self._credits: dict[tuple[str, ...], _Credit] = {}
        self._refills: set[asyncio.Task[None]] = set()
        self.script_calls = 0  # GCRA calls sent to Redis (requests served locally do not count)

    def key(self, *parts: str) -> str:
        return self.prefix + "rl:" + ":".join(parts)

    async def hit(
        self,
        buckets: Sequence[Bucket],
        weight: int,
        keys: tuple[str, ...] | None = None,
        *,
        batched: bool = False,
    ) -> Verdict | None:
        """Charge `weight` units to every bucket, or to none; None if Redis could not answer.
        `keys`: the buckets' keys, if the caller keeps them.

        `batched`: a call that finds another batched call on its way to Redis waits for it
        and goes with the others in one pipeline (the WebSocket set-up path: connect and
        subscribe charges, with the connection leases); see the top."""
        if not self.enabled or not buckets or self._broken():
            return None
        if keys is None:
            keys = tuple([b.key for b in buckets])
        now = time.monotonic()
        credit = self._credits.get(keys)
        if credit is None:
            if len(self._credits) >= 10_000:
                self._drop_expired(now)
            credit = self._credits[keys] = _Credit()
        else:
            verdict = credit.take(weight, now)
            if verdict is not None:
                if credit.wants_refill(now):
                    self._refill(keys, buckets, credit, batched)
                return verdict
        if credit.refilling:  # a prepayment is on its way: this request alone, exactly
            prepay = 0
        else:
            prepay = credit.prepayment(weight, now, _prepay_cap(buckets))
            credit.refilling = prepay > 0
        try:
            verdict = await self._charge(keys, buckets, weight, prepay, credit, batched)
        finally:
            if prepay:
                credit.refilling = False
        if verdict is None or verdict.allowed:
            return verdict
        # Refused: units prepaid by a request that went to Redis meanwhile may serve it.
        return credit.take(weight, time.monotonic()) or verdict

    def _refill(
        self, keys: tuple[str, ...], buckets: Sequence[Bucket], credit: _Credit, batched: bool = False
    ) -> None:
        prepay = credit.prepayment(0, time.monotonic(), _prepay_cap(buckets))
        if prepay <= 0:
            return
        credit.refilling = True

        async def refill() -> None:
            try:
                await self._charge(keys, buckets, 0, prepay, credit, batched)
            finally:
                credit.refilling = False

        task = asyncio.get_running_loop().create_task(refill())
        self._refills.add(task)
        task.add_done_callback(self._refills.discard)

    async def _charge(
        self,
        keys: tuple[str, ...],
        buckets: Sequence[Bucket],
        weight: int,
        prepay: int,
        credit: _Credit,
        batched: bool = False,
    ) -> Verdict | None:
        """One script call: `weight` units, plus up to `prepay` units kept in `credit`."""
        args: list[float | int] = [weight, prepay]
        for bucket in buckets:
            args += [bucket.interval_us, bucket.burst]
        self.script_calls += 1
        try:
            if batched:
                reply = await self.scripts.call(self._gcra, list(keys), args)
            else:
                reply = await self._gcra(keys=keys, args=args)
            allowed, retry_us, tight, remaining, reset_us, charged = reply
        except (TimeoutError, RedisError, OSError) as exc:
            self._failed(exc)
            return None
        bucket = buckets[int(tight) - 1]
        prepaid = int(charged) - weight if allowed else 0
        verdict = Verdict(
            allowed=bool(allowed),
            retry_after=int(retry_us) / 1_000_000,
            limit=bucket.burst,
            # The caller may still spend what this process holds for it.
            # (never more than the burst: units held from before a refill are counted once)
            remaining=min(
                bucket.burst,
                int(remaining) + prepaid + (credit.units if credit.expires > time.monotonic() else 0),
            ),
            reset=int(reset_us) / 1_000_000,
            window=bucket.burst / bucket.rate,
        )
        if allowed:
            credit.grant(prepaid, time.monotonic(), verdict)
        return verdict

    def _drop_expired(self, now: float) -> None:
        for keys in [k for k, c in self._credits.items() if c.expires <= now and not c.refilling]:
            del self._credits[keys]
        if len(self._credits) >= 10_000:  # that many busy callers: start afresh (their
            self._credits.clear()  # prepaid units are lost, never granted twice)

    async def acquire_connection(self, key: str, cap: int) -> str | bool | None:
        """Take one of `cap` connection slots under `key`.

        Returns the lease id, False when all slots are taken, None when the limiter could
        not ask Redis (the connection is then allowed and holds no lease).
        """
        if not self.enabled or self._broken():
            return None
        lease = uuid.uuid4().hex
        try:
            added = await self._acquire(keys=[key], args=[cap, lease, int(LEASE_SECONDS * 1000)])
        except (TimeoutError, RedisError, OSError) as exc:
            self._failed(exc)
            return None
        if not added:
            return False
        self._leases[(key, lease)] = None
        if self._renewer is None or self._renewer.done():
            self._renewer = asyncio.create_task(self._renew_leases(), name="uds-ws-lease-renewal")
        return lease

    async def release_connection(self, key: str, lease: str) -> None:
        self._leases.pop((key, lease), None)
        with contextlib.suppress(RedisError, OSError, asyncio.TimeoutError):
            await self.redis.zrem(key, lease)

    async def _renew_leases(self) -> None:
        while self._leases:
            await asyncio.sleep(LEASE_SECONDS / 3)
            for key, lease in list(self._leases):
                try:
                    await self._renew(keys=[key], args=[lease, int(LEASE_SECONDS * 1000)])
                except (TimeoutError, RedisError, OSError) as exc:
                    self._failed(exc)
                    break

    def _broken(self) -> bool:
        return self._broken_until > time.monotonic()

    def _failed(self, exc: BaseException) -> None:
        self.redis_errors += 1
        metrics.redis_error("rate_limiter")
        if not self._broken():
            log.warning(
                "rate limits: Redis unavailable (%s); serving requests unlimited for %.0f s",
                exc.__class__.__name__,
                BREAKER_SECONDS,
            )
        self._broken_until = time.monotonic() + BREAKER_SECONDS

    async def aclose(self) -> None:
        if self._renewer is not None:
            self._renewer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._renewer
        with contextlib.suppress(Exception):
            await self.redis.aclose()


Call = tuple[AsyncScript, list[Any], list[Any], "asyncio.Future[Any]"]


class _Scripts:
    """Script calls on one Redis client, coalesced while one is in flight (see the top)."""

    def __init__(self, redis: Redis) -> None:
        self.redis = redis
        self._busy = False
        self._waiting: list[Call] = []
        self._drainer: asyncio.Task[None] | None = None
        self.pipelines = 0  # pipelines sent (each with calls that arrived while one was busy)

    def caller(self, source: str) -> Any:
        script = self.redis.register_script(source)

        async def call(*, keys: list[Any], args: list[Any]) -> Any:
            return await self.call(script, keys, args)

        return call

    async def call(self, script: AsyncScript, keys: list[Any], args: list[Any]) -> Any:
        if self._busy:
            future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
            self._waiting.append((script, keys, args, future))
            return await future
        self._busy = True
        try:
            return await script(keys=keys, args=args)
        finally:
            if self._waiting:
                # The ones that arrived meanwhile go on without this caller (who may be
                # cancelled): a task sends them, and whatever queues up behind them.
                self._drainer = asyncio.get_running_loop().create_task(self._drain())
            else:
                self._busy = False

    async def _drain(self) -> None:
        try:
            while self._waiting:
                batch, self._waiting = self._waiting, []
                await self._send(batch)
        finally:
            self._busy = False

    async def _send(self, batch: list[Call]) -> None:
        self.pipelines += 1
        try:
            pipe = self.redis.pipeline(transaction=False)
            for script, keys, args, _ in batch:
                pipe.evalsha(script.sha, len(keys), *keys, *args)
            results = await pipe.execute(raise_on_error=False)
        except Exception as exc:
            for *_, future in batch:
                if not future.done():
                    future.set_exception(exc)
            return
        except BaseException:  # cancelled (the process is stopping)
            for *_, future in batch:
                future.cancel()
            raise
        for (script, keys, args, future), result in zip(batch, results, strict=True):
            if future.done():
                continue  # its caller went away
            if isinstance(result, NoScriptError):  # not run: Redis lost its scripts
                try:
                    result = await script(keys=keys, args=args)  # loads it, runs it
                except Exception as exc:
                    result = exc
            if isinstance(result, BaseException):
                future.set_exception(result)
            else:
                future.set_result(result)
