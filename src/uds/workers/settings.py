"""The arq worker: its settings, start-up and shutdown hooks, and the job modules it loads.

    worker = make_worker(settings)      # what `uds worker` runs
    await worker.async_run()

`worker_settings(settings)` is the arq WorkerSettings (as a dict, the form arq accepts):
the one job function, UDS's queue name, a Redis pool, and hooks that build the worker's
ctx (`ctx["services"]`: engine, Redis, tenant registry, policy engine) and close it.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import importlib.util
import logging
import signal
from typing import Any

from arq import Worker
from arq.connections import ArqRedis
from arq.worker import func
from redis.asyncio import ConnectionPool

from uds.jobs.keys import JobKeys
from uds.jobs.queue import JOB_FUNCTION
from uds.jobs.runtime import KINDS
from uds.observability.exposition import serve_worker_metrics
from uds.observability.metrics import configure_metrics, flush_every
from uds.observability.multiprocess import process_stopped
from uds.runtime import settle_heap
from uds.services import Services
from uds.settings import Settings
from uds.workers.execute import run_job, sweep

log = logging.getLogger(__name__)

# Modules whose `@job_kind` handlers workers run; those not (yet) in the tree are skipped.
JOB_MODULES = (
    "uds.jobs.builtin",
    "uds.discovery.jobs",
    "uds.dashboards.jobs",
    "uds.tenants.jobs",
)
POLL_SECONDS = 0.2  # how often an idle worker looks at the queue
# arq's own retry limit is effectively off: a run that found its tenant full is retried
# without counting; real failures and lost workers are counted by the job row's attempts.
ARQ_MAX_TRIES = 1_000_000
# arq's outer timeout; each kind's own (shorter) timeout fails the job first, cleanly.
ARQ_TIMEOUT_MARGIN = 60.0


class _WorkerRedis(ArqRedis):
    """arq closes its pool with redis-py's deprecated `close()`; route it to `aclose()`."""

    async def close(self, close_connection_pool: bool | None = None) -> None:  # type: ignore[override]
        await self.aclose(close_connection_pool=close_connection_pool)


def load_job_modules() -> list[str]:
    """Import the JOB_MODULES that exist; an error inside one of them is raised."""
    loaded = []
    for name in JOB_MODULES:
        try:
            found = importlib.util.find_spec(name) is not None
        except ModuleNotFoundError:  # its package does not exist
            found = False
        if found:
            importlib.import_module(name)
            loaded.append(name)
    return loaded


async def startup(ctx: dict[str, Any]) -> None:
    if "services" not in ctx:
        ctx["services"] = await Services.start(ctx["settings"])
        ctx["owns_services"] = True
    configure_metrics(ctx["settings"])
    if ctx.get("serve_metrics"):
        ctx["metrics_server"] = contextlib.AsyncExitStack()
        await ctx["metrics_server"].enter_async_context(serve_worker_metrics(ctx["settings"]))
    ctx["sweeper"] = asyncio.create_task(sweep(ctx["services"]), name="job-admission-sweep")
    # Tallied counts (cache look-ups, decisions) reach the metrics every second.
    ctx["metrics_flush"] = asyncio.create_task(flush_every(), name="uds-metrics-flush")
    ctx["services"].relay.start()  # events of the jobs' changes reach the stream even with no API
    if ctx.get("settle_heap"):
        settle_heap()  # job modules and services are loaded: see uds.runtime
    log.info("worker ready: job kinds %s", ", ".join(sorted(KINDS)))


async def shutdown(ctx: dict[str, Any]) -> None:
    metrics_server = ctx.pop("metrics_server", None)
    if metrics_server is not None:
        await metrics_server.aclose()
    flusher = ctx.pop("metrics_flush", None)
    if flusher is not None:
        flusher.cancel()
    process_stopped()
    sweeper = ctx.pop("sweeper", None)
    if sweeper is not None:
        sweeper.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await sweeper
    if ctx.pop("owns_services", False):
        await ctx.pop("services").close()


def worker_settings(settings: Settings, *, concurrency: int | None = None) -> dict[str, Any]:
    """arq WorkerSettings for these settings (servers, prefix, lease, concurrency)."""
    if not settings.redis_url:
        raise RuntimeError("redis_url is not set")
    load_job_modules()
    timeout = max((kind.timeout for kind in KINDS.values()), default=0.0) + ARQ_TIMEOUT_MARGIN
    queue = JobKeys(settings.redis_prefix).queue
    return {
        "functions": [
            func(run_job, name=JOB_FUNCTION, timeout=timeout, max_tries=ARQ_MAX_TRIES, keep_result=0)
        ],
        "queue_name": queue,
        "redis_pool": _WorkerRedis(ConnectionPool.from_url(settings.redis_url), default_queue_name=queue),
        "on_startup": startup,
        "on_shutdown": shutdown,
        "ctx": {"settings": settings},
        "max_jobs": concurrency or settings.worker_concurrency,
        "poll_delay": POLL_SECONDS,
        "job_timeout": timeout,
        "keep_result": 0,
        "max_tries": ARQ_MAX_TRIES,
        "health_check_interval": 60,
    }


def make_worker(
    settings: Settings, *, concurrency: int | None = None, handle_signals: bool = True, **overrides: Any
) -> Worker:
    """An arq Worker for UDS jobs; create it inside the event loop it will run on."""
    worker = Worker(
        **{
            **worker_settings(settings, concurrency=concurrency),
            "handle_signals": handle_signals,
            **overrides,
        }
    )
    # arq sets a job's in-progress key to the longest job timeout and never renews it, so a
    # job whose worker was killed would wait that long before another worker re-runs it.
    # UDS renews the key on every heartbeat instead (uds.workers.execute), so it can be short.
    worker.in_progress_timeout_s = settings.job_lease_seconds
    return worker


async def stop_worker(worker: Worker) -> None:
    """Stop a worker like SIGTERM does, then run its shutdown hook and close its pool.

    arq's own `close()` gathers its job tasks and stops at the first one that ended with
    CancelledError, which happens when a job is cancelled while arq records its end; the
    shutdown hook (closing the worker's Services) would then never run.
    """
    if worker.main_task is not None and not worker.main_task.done():
        worker.handle_sig(signal.SIGTERM)  # cancels what still runs; arq re-queues those jobs
    await asyncio.gather(*worker.tasks.values(), return_exceptions=True)
    worker.tasks.clear()
    await worker.close()


async def serve(settings: Settings, *, concurrency: int | None = None) -> None:
    """Run a worker until SIGINT/SIGTERM (what `uds worker` does). The process is the
    worker's own, so its heap is settled once started (uds.runtime.settle_heap)."""
    worker = make_worker(settings, concurrency=concurrency)
    worker.ctx["settle_heap"] = True
    worker.ctx["serve_metrics"] = True  # UDS_WORKER_METRICS_PORT, if set
    try:
        await worker.async_run()
    except asyncio.CancelledError:
        pass  # arq's signal handler cancels its main task: a normal stop
    finally:
        await stop_worker(worker)
