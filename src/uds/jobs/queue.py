"""The Redis side of running jobs: arq enqueue, per-tenant admission, leases, cancel flags.

Fairness. A job is enqueued to arq at once (`_job_id` = job id) but *parked*: its score in
arq's queue is far in the future, so no worker picks it up. It also joins its tenant's
waiting list. Admission (one Lua script, atomic) moves the oldest waiting jobs of a
tenant into its `running` set while that set is below the tenant's cap
(`max_concurrent_jobs`) and sets their arq score to now, which makes them runnable. arq's
FIFO queue therefore only ever holds admitted jobs: a burst of 100 jobs from one tenant
puts `cap` of them in front of another tenant's job, not 100.

Slots are leases (sorted-set scores are expiry times): a running job renews its lease on
every heartbeat; a worker killed with -9 stops renewing, its slot frees itself after
`job_lease_seconds`, and arq's in-progress key (renewed by the same heartbeat) expires at
the same time so another worker re-runs the job. A job ending releases its slot and
admits the tenant's next waiting job in the same script; every worker also sweeps the
tenants with waiting jobs once a second, which covers expired leases.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from datetime import timedelta

from arq.connections import ArqRedis
from redis.asyncio import ConnectionPool

from uds.jobs.keys import JobKeys
from uds.observability import tracing
from uds.observability.activity import job_meta
from uds.settings import Settings

# The one arq function every job runs through (uds.workers.execute.run_job).
JOB_FUNCTION = "uds.job"
# A parked job's delay: ~100 years, i.e. never, until admission sets its score to now.
PARK_SECONDS = 100 * 365 * 24 * 3600
# How long arq keeps a job's definition; a job still waiting for a slot after this is lost
# and marked FAILED by the next admission (never left QUEUED forever).
JOB_KEY_TTL = timedelta(days=7)
# An admitted job that no worker has started holds its slot this long (workers may all be
# busy); a started job renews its slot every heartbeat with the shorter job lease.
ADMISSION_LEASE_SECONDS = 600.0
CANCEL_FLAG_TTL_SECONDS = 24 * 3600

# KEYS: waiting, running, queue, waiting_tenants, caps
# ARGV: tenant, now_ms, admission_lease_ms, arq job key prefix, [job id, [cap]]
_ADMIT = """
local function admit()
  local cap = tonumber(redis.call('HGET', KEYS[5], ARGV[1]) or '1')
  local now = tonumber(ARGV[2])
  redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
  local admitted, lost = {}, {}
  while redis.call('ZCARD', KEYS[2]) < cap do
    local id = redis.call('LPOP', KEYS[1])
    if not id then break end
    if redis.call('EXISTS', ARGV[4] .. id) == 1 and redis.call('ZSCORE', KEYS[3], id) then
      redis.call('ZADD', KEYS[2], now + tonumber(ARGV[3]), id)
      redis.call('ZADD', KEYS[3], 'XX', now, id)
      admitted[#admitted + 1] = id
    else
      redis.call('ZREM', KEYS[3], id)
      lost[#lost + 1] = id
    end
  end
  if redis.call('LLEN', KEYS[1]) == 0 then redis.call('SREM', KEYS[4], ARGV[1]) end
  return {admitted, lost}
end
"""
ADMIT = _ADMIT + "return admit()"
SUBMIT = (
    _ADMIT
    + """
redis.call('HSET', KEYS[5], ARGV[1], ARGV[6])
redis.call('RPUSH', KEYS[1], ARGV[5])
redis.call('SADD', KEYS[4], ARGV[1])
return admit()
"""
)
RELEASE = _ADMIT + "redis.call('ZREM', KEYS[2], ARGV[5])\nreturn admit()"
# KEYS: running, caps; ARGV: tenant, job id, now_ms, lease_ms, cap
ACQUIRE = """
redis.call('HSET', KEYS[2], ARGV[1], ARGV[5])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', tonumber(ARGV[3]))
if redis.call('ZSCORE', KEYS[1], ARGV[2]) or redis.call('ZCARD', KEYS[1]) < tonumber(ARGV[5]) then
  redis.call('ZADD', KEYS[1], tonumber(ARGV[3]) + tonumber(ARGV[4]), ARGV[2])
  return 1
end
return 0
"""
# KEYS: waiting, queue; ARGV: job id, arq job key
WITHDRAW = """
if redis.call('LREM', KEYS[1], 0, ARGV[1]) > 0 then
  redis.call('ZREM', KEYS[2], ARGV[1])
  redis.call('DEL', ARGV[2])
  return 1
end
return 0
"""


@dataclass(frozen=True, slots=True)
class Admission:
    """Jobs an admission made runnable, and jobs found lost (their arq entry expired)."""

    admitted: tuple[str, ...] = ()
    lost: tuple[str, ...] = ()


def _admission(raw: list[list[bytes]]) -> Admission:
    admitted, lost = raw
    return Admission(tuple(i.decode() for i in admitted), tuple(i.decode() for i in lost))


def _now_ms() -> int:
    return int(time.time() * 1000)


class JobQueue:
    """arq enqueue plus the admission, lease and cancel-flag scripts, on one Redis pool."""

    def __init__(self, settings: Settings) -> None:
        if not settings.redis_url:
            raise RuntimeError("redis_url is not set")
        self.keys = JobKeys(settings.redis_prefix)
        self.lease_ms = int(settings.job_lease_seconds * 1000)
        pool = ConnectionPool.from_url(settings.redis_url, socket_connect_timeout=2.0, socket_timeout=10.0)
        self.redis = ArqRedis(pool, default_queue_name=self.keys.queue)
        self._submit = self.redis.register_script(SUBMIT)
        self._admit = self.redis.register_script(ADMIT)
        self._release = self.redis.register_script(RELEASE)
        self._acquire = self.redis.register_script(ACQUIRE)
        self._withdraw = self.redis.register_script(WITHDRAW)

    def _admit_keys(self, tenant: str) -> list[str]:
        k = self.keys
        return [k.waiting(tenant), k.running(tenant), k.queue, k.waiting_tenants, k.caps]

    def _admit_args(self, tenant: str) -> list[str | int]:
        return [tenant, _now_ms(), int(ADMISSION_LEASE_SECONDS * 1000), JobKeys.arq_job("")]

    async def submit(self, tenant: str, job_id: uuid.UUID, *, cap: int, kind: str | None = None) -> Admission:
        """Enqueue the job parked, put it on the tenant's waiting list and admit what fits.

        Raises redis errors (ConnectionError, TimeoutError) when Redis is unreachable.
        The job's payload carries the request id and trace context (uds.workers.execute).
        """
        with tracing.span("job.enqueue", **{"uds.job_id": str(job_id)}):
            meta = job_meta(kind)
            await self.redis.enqueue_job(
                JOB_FUNCTION,
                tenant,
                str(job_id),
                *([meta] if meta else []),
                _job_id=str(job_id),
                _defer_by=PARK_SECONDS,
                _expires=JOB_KEY_TTL,
            )
            raw = await self._submit(
                keys=self._admit_keys(tenant), args=[*self._admit_args(tenant), str(job_id), cap]
            )
        return _admission(raw)

    async def admit(self, tenant: str) -> Admission:
        return _admission(await self._admit(keys=self._admit_keys(tenant), args=self._admit_args(tenant)))

    async def release(self, tenant: str, job_id: uuid.UUID) -> Admission:
        """Free the job's slot and admit the tenant's next waiting jobs."""
        raw = await self._release(
            keys=self._admit_keys(tenant), args=[*self._admit_args(tenant), str(job_id)]
        )
        return _admission(raw)

    async def acquire(self, tenant: str, job_id: uuid.UUID, *, cap: int) -> bool:
        """Hold (or renew) the job's slot when it starts to run; False if the tenant is full.

        An admitted job already holds its slot; this only says no when that slot's lease
        ran out (the job waited or its worker died) and other jobs took the tenant's slots.
        """
        k = self.keys
        ok = await self._acquire(
            keys=[k.running(tenant), k.caps], args=[tenant, str(job_id), _now_ms(), self.lease_ms, cap]
        )
        return bool(ok)

    async def heartbeat(self, tenant: str, job_id: uuid.UUID) -> bool:
        """Renew the job's slot and arq's in-progress key; True if a cancel was requested."""
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.pexpire(JobKeys.arq_in_progress(job_id), self.lease_ms)
            pipe.zadd(self.keys.running(tenant), {str(job_id): _now_ms() + self.lease_ms}, xx=True)
            pipe.exists(self.keys.cancel_flag(tenant, job_id))
            _, _, flagged = await pipe.execute()
        return bool(flagged)

    async def request_cancel(self, tenant: str, job_id: uuid.UUID) -> None:
        await self.redis.set(self.keys.cancel_flag(tenant, job_id), b"1", ex=CANCEL_FLAG_TTL_SECONDS)

    async def withdraw(self, tenant: str, job_id: uuid.UUID) -> bool:
        """Take a job that still waits for a slot out of the queue; False if it was admitted."""
        ok = await self._withdraw(
            keys=[self.keys.waiting(tenant), self.keys.queue], args=[str(job_id), JobKeys.arq_job(job_id)]
        )
        return bool(ok)

    async def waiting_count(self, tenant: str) -> int:
        """Jobs of the tenant waiting for a slot."""
        return int(await self.redis.llen(self.keys.waiting(tenant)))

    async def waiting_tenants(self) -> list[str]:
        return sorted(m.decode() for m in await self.redis.smembers(self.keys.waiting_tenants))

    async def close(self) -> None:
        await self.redis.aclose(close_connection_pool=True)
