"""Prometheus metrics of UDS: what they are, and the cheap calls that move them.

Every metric is defined here (docs/observability.md has the table). The request path
costs one `observe_request` per request (from uds.observability.middleware) plus a few
counter increments (cache look-ups, policy decisions): dictionary updates, applied to
the metrics by `flush()` (below). Label values are bounded: operation names beyond
`UDS_METRICS_MAX_OPERATIONS` distinct ones per process become `other`, anonymous
operations are `anonymous`, requests whose operation is unknown (unparsable, refused
before GraphQL) `unknown`; tenants are label values only with `UDS_METRICS_MAX_TENANTS`
> 0 (that many per process, then `other`), else the label is empty.

A fast path that serves a GraphQL request without the middleware calls

    observe_request("Shop", "query", "OK", seconds)

(inside the middleware, `uds.observability.activity.note_operation` / `note_outcome`
are enough). Several processes (`uds serve --workers N`, or API and worker on one host)
share one registry through PROMETHEUS_MULTIPROC_DIR (uds.observability.multiprocess).
"""

from __future__ import annotations

import asyncio
import os
import re
import time
from bisect import bisect_left
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client import multiprocess as _multiprocess
from prometheus_client.registry import REGISTRY

if TYPE_CHECKING:
    from uds.settings import Settings

OK = "OK"
OTHER = "other"
ANONYMOUS = "anonymous"
UNKNOWN = "unknown"
# Paths answered outside GraphQL, as they appear in the `operation` label (type "http").
HTTP_PATHS = frozenset(
    {"/healthz", "/readyz", "/metrics", "/oauth/token", "/.well-known/jwks.json", "/graphql", "/mcp"}
)
_NAME = re.compile(r"[_A-Za-z][_0-9A-Za-z]{0,63}")

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
JOB_BUCKETS = (0.1, 0.5, 1.0, 5.0, 15.0, 60.0, 300.0, 900.0, 3600.0, 14400.0)

REQUESTS = Counter(
    "uds_requests",
    "HTTP requests by GraphQL operation name and type, and outcome (OK or the first error code).",
    ("operation", "type", "outcome", "tenant"),
)
REQUEST_SECONDS = Histogram(
    "uds_request_duration_seconds",
    "Time from the request's arrival to its response's end.",
    ("operation", "type"),
    buckets=LATENCY_BUCKETS,
)
IN_FLIGHT = Gauge("uds_requests_in_flight", "HTTP requests being served.", multiprocess_mode="livesum")
POLICY_DECISIONS = Counter(
    "uds_policy_decisions",
    "Policy decisions by action and result (allow, deny, error).",
    ("action", "result"),
)
CACHE_LOOKUPS = Counter(
    "uds_cache_lookups",
    "Look-ups in the in-process caches (policy, tenant, membership, token) by result (hit, miss).",
    ("cache", "result"),
)
JOBS = Counter(
    "uds_jobs",
    "Jobs by kind and status: queued when started, then the status each run ends with.",
    ("kind", "status", "tenant"),
)
JOB_SECONDS = Histogram(
    "uds_job_duration_seconds",
    "Time one job run took, by kind and final status.",
    ("kind", "status"),
    buckets=JOB_BUCKETS,
)
JOBS_RUNNING = Gauge("uds_jobs_running", "Job runs in progress.", ("kind",), multiprocess_mode="livesum")
QUEUE_DEPTH = Gauge(
    "uds_job_queue_depth",
    "Jobs waiting for a tenant slot, per tenant plan (sampled by workers every second).",
    ("plan",),
    multiprocess_mode="mostrecent",
)
ADMISSION_WAIT = Histogram(
    "uds_job_admission_wait_seconds",
    "Time from a job's creation to its first run, per tenant plan.",
    ("plan",),
    buckets=JOB_BUCKETS,
)
SUBSCRIPTIONS = Gauge("uds_subscriptions", "Active GraphQL subscriptions.", multiprocess_mode="livesum")
DB_IN_USE = Gauge(
    "uds_db_pool_connections_in_use",
    "Database connections checked out of the pool.",
    multiprocess_mode="livesum",
)
DB_WAITING = Gauge(
    "uds_db_pool_waiting",
    "Tasks waiting for a database connection (pool exhausted).",
    multiprocess_mode="livesum",
)
REDIS_ERRORS = Counter("uds_redis_errors", "Redis calls that failed, by component.", ("component",))
DISCOVERY_ROWS = Counter("uds_discovery_rows_read", "Rows read from data sources by discovery.")


class BoundedLabel:
    """Label values for an open set (names clients choose): the first `limit` distinct
    ones as they are, later ones `other`."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._seen: set[str] = set()

    def __call__(self, value: str) -> str:
        if value in self._seen:
            return value
        if len(self._seen) < self.limit:
            self._seen.add(value)
            return value
        return OTHER


class _State:
    enabled = True
    operations = BoundedLabel(100)
    tenants: BoundedLabel | None = None


_state = _State()
# (operation, type, outcome, tenant) -> (counter child, histogram child): skips labels().
_children: dict[tuple[str, str, str, str], tuple[Any, Any]] = {}


def configure_metrics(settings: Settings) -> None:
    """Apply the metric settings to this process (API lifespan, worker start-up)."""
    _state.enabled = settings.metrics_enabled
    _state.operations = BoundedLabel(settings.metrics_max_operations)
    _state.tenants = BoundedLabel(settings.metrics_max_tenants) if settings.metrics_max_tenants else None
    _children.clear()
    _by_raw.clear()


def enabled() -> bool:
    return _state.enabled


def operation_label(name: str | None) -> str:
    """A GraphQL operation name as a label value: bounded in number and length."""
    if name is None:
        return UNKNOWN
    if name == "":
        return ANONYMOUS
    if not _NAME.fullmatch(name):
        return OTHER
    return _state.operations(name)


def tenant_label(slug: str | None) -> str:
    if _state.tenants is None or not slug:
        return ""
    return _state.tenants(slug)


def http_label(path: str) -> str:
    return path if path in HTTP_PATHS else OTHER


def observe_request(
    op_name: str | None, op_type: str, outcome: str, seconds: float, *, tenant: str | None = None
) -> None:
    """Count one request and its latency. `op_name` None: not known; "" anonymous; for
    `op_type` "http" (not GraphQL), the request path."""
    if not _state.enabled:
        return
    raw = (op_name, op_type, outcome, tenant)
    children = _by_raw.get(raw)
    if children is None:
        operation = http_label(op_name or "") if op_type == "http" else operation_label(op_name)
        key = (operation, op_type, outcome, tenant_label(tenant))
        children = _children.get(key)
        if children is None:
            children = (REQUESTS.labels(*key), REQUEST_SECONDS.labels(key[0], op_type))
            _children[key] = children
        if len(_by_raw) >= 10_000:  # names clients choose: bounded like the labels
            _by_raw.clear()
        _by_raw[raw] = children
    _tally[children[0]] = _tally.get(children[0], 0) + 1
    hist = _hist.get(children[1])
    if hist is None:
        hist = _hist[children[1]] = [0.0] + [0] * (len(LATENCY_BUCKETS) + 1)
    hist[0] += seconds
    hist[1 + bisect_left(LATENCY_BUCKETS, seconds)] += 1
    if time.monotonic() >= _flushed[0] + FLUSH_SECONDS:
        flush()


# Request-path counts are tallied in plain dictionaries (a dictionary update each, instead
# of prometheus-client's locked add) and moved into the metrics by `flush()`: before every
# scrape of this process, at least once a second while requests arrive, every second from
# the API's lifespan task (`flush_every`), and when the process stops.
FLUSH_SECONDS = 1.0
_tally: dict[Any, int] = {}  # counter child -> increments not yet applied
_hist: dict[Any, list[Any]] = {}  # histogram child -> [sum, count per bucket (+Inf last)]
_flushed = [0.0]  # monotonic time of the last flush
# (op_name, op_type, outcome, tenant) as given -> the children of their label values
_by_raw: dict[tuple[Any, ...], tuple[Any, Any]] = {}


class _InFlight:
    """HTTP requests being served by this process; `flush()` sets the gauge from it."""

    __slots__ = ("count",)

    def __init__(self) -> None:
        self.count = 0


in_flight = _InFlight()


def flush() -> None:
    """Apply the tallied counts to the metrics (call on the event loop's thread)."""
    global _tally, _hist
    _flushed[0] = time.monotonic()
    IN_FLIGHT.set(in_flight.count)
    tally, _tally = _tally, {}
    hist, _hist = _hist, {}
    for child, count in tally.items():
        child.inc(count)
    for child, (total, *counts) in hist.items():
        # What Histogram.observe does, once per bucket instead of once per observation.
        child._sum.inc(total)
        for index, count in enumerate(counts):
            if count:
                child._buckets[index].inc(count)


async def flush_every(seconds: float = FLUSH_SECONDS) -> None:
    """Flush forever (a task of the process that serves requests)."""
    while True:
        await asyncio.sleep(seconds)
        flush()


def _child(metric: Any, *labels: str) -> Any:
    """`metric.labels(*labels)`, remembered: labels() is the costly part of an increment."""
    key = (metric, labels)
    child = _labelled.get(key)
    if child is None:
        child = _labelled[key] = metric.labels(*labels)
    return child


_labelled: dict[tuple[Any, tuple[str, ...]], Any] = {}


def policy_decision(action: str, result: str) -> None:
    """A decision: result allow, deny or error (the engine could not decide)."""
    if _state.enabled:
        child = _child(POLICY_DECISIONS, action, result)
        _tally[child] = _tally.get(child, 0) + 1


def cache_lookup(cache: str, hit: bool) -> None:
    if _state.enabled:
        child = _child(CACHE_LOOKUPS, cache, "hit" if hit else "miss")
        _tally[child] = _tally.get(child, 0) + 1


def redis_error(component: str) -> None:
    REDIS_ERRORS.labels(component).inc()


def job_queued(kind: str, tenant: str) -> None:
    JOBS.labels(kind, "queued", tenant_label(tenant)).inc()


def job_ended(kind: str, tenant: str, status: str, seconds: float | None = None) -> None:
    """A job's run ended with `status`; `seconds` None: it ended without running."""
    status = status.lower()
    JOBS.labels(kind, status, tenant_label(tenant)).inc()
    if seconds is not None:
        JOB_SECONDS.labels(kind, status).observe(seconds)


def job_running(kind: str) -> Any:
    """Count a run as in progress; call `.dec()` on the result when it ends."""
    gauge = JOBS_RUNNING.labels(kind)
    gauge.inc()
    return gauge


def job_admitted(plan: str, seconds: float) -> None:
    """A job started for the first time, `seconds` after it was created."""
    ADMISSION_WAIT.labels(plan_label(plan)).observe(max(0.0, seconds))


def queue_depth(waiting_by_plan: dict[str, int]) -> None:
    """Jobs waiting for a slot per plan, every plan reported (0 when none wait)."""
    from uds.tenants.plans import PLANS

    depth = dict.fromkeys(PLANS, 0)
    for plan, waiting in waiting_by_plan.items():
        label = plan_label(plan)
        depth[label] = depth.get(label, 0) + waiting
    for label, waiting in depth.items():
        QUEUE_DEPTH.labels(label).set(waiting)


def plan_label(plan: str) -> str:
    from uds.tenants.plans import PLANS

    return plan if plan in PLANS else OTHER


def registry_for_scrape() -> CollectorRegistry:
    """The registry to expose: this process's, or every process's in multiprocess mode."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        _multiprocess.MultiProcessCollector(registry)
        return registry
    return REGISTRY


def exposition() -> bytes:
    """The Prometheus text format of every UDS metric (and the client's process metrics).
    Call `flush()` first, on the event loop's thread (this may run in another)."""
    return generate_latest(registry_for_scrape())
