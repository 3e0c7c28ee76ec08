"""Benchmark: a tenant read through the full UDS stack vs. a bare asyncpg handler.

    .venv/bin/python bench/graphql_read.py [--quick] [--workers N] [--json PATH] [--profile PATH]

Measures, on 127.0.0.1 only:

* requests/s and p50/p99 latency of `POST /graphql` (JWT + tenant routing + GraphQL +
  SQLAlchemy, `uvicorn --factory uds.app:app_from_env`) against a bare Starlette +
  asyncpg handler running the same SELECT of the same 20 audit rows (`bare_app` below),
  same uvicorn flags, same process count, same load; measured alternately A, B, A, B;
* the same read as a persisted operation: the request names the document by its
  SHA-256 (Apollo's automatic persisted queries, `extensions.persistedQuery`), measured
  alternately with the others;
* with `--plain`, the same read on a fourth server with the read fast paths off
  (`UDS_FAST_PATHS=off`: every request through strawberry in a transaction), the "before";
* policy cost: the same full-stack read with the embedded policy engine and with policy
  checks switched off (`policy_off_app` below: the same app with an allow-everything
  engine swapped in after start-up), measured alternately with the others; plus the
  per-decision time with and without the decision cache (bench/policy_decisions.py);
* observability and limits cost: the same full stack with metrics and rate limits
  switched off (`UDS_METRICS=off UDS_RATE_LIMITS=off`), measured alternately with the
  others (tracing is off in both: no OTLP endpoint), plus what tracing-off's hooks cost
  per request (bench/observability_cost.py);
* tenant provisioning time (`uds.tenants.service.create_tenant`, own transaction each);
* the full-stack read with 10 tenants present vs. 1,000 tenants present.

Servers: UDS_DATABASE_URL / UDS_REDIS_URL if set, else embedded ones
(`uds.embedded.start_embedded`). The bench works in a database of its own
(`uds_bench_<random>`) and a temporary UDS_DATA_DIR, both removed at the end, also on
Ctrl-C or error. Load comes from `wrk` if installed (`apt-get install wrk`), else from a
Python keep-alive load generator in a separate process.

`bare_app` is also the uvicorn factory of the baseline server:
    uvicorn --app-dir bench --factory graphql_read:bare_app   (configured by BENCH_BARE_* env)
and `policy_off_app` that of the policy-off server (UDS_* env like the full stack).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import json
import os
import platform
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
ROOT = BENCH_DIR.parent
HOST = "127.0.0.1"  # all traffic stays on the loopback interface

QUERY = "{ me { subject } auditLog(first: 20) { edges { node { id at actor action target } } } }"
ADMIN_QUERY = "{ admin { tenants(first: 1) { edges { cursor } } } }"  # platform admins only
BENCH_TENANT = "bench-main"
BENCH_SUBJECT = "bench-admin@uds.bench"
ROOT_SUBJECT = "bench-root@uds.bench"  # platform admin, for the request spread over all tenants
AUDIT_ROWS = 25  # > 20, so the page is full and has a next page
# The bench tenant's rate limits, as high as they go: the limiter runs on every request
# (its cost is measured) but never refuses one.
BENCH_LIMITS = {
    "requests_per_second": 1_000_000,
    "request_burst": 10_000_000,
    "member_requests_per_second": 1_000_000,
    "member_request_burst": 10_000_000,
}
PAGE = 20
BASE_TENANTS = 10
PROVISION_SAMPLES = 50
DEFAULT_TENANTS = 1000
DEFAULT_CONNECTIONS = 32
SCHEMA_RE = re.compile(r"t_[a-z][a-z0-9_]{2,39}")


# --------------------------------------------------------------------------------------
# The bare baseline: Starlette + an asyncpg pool, no auth, no GraphQL, no ORM.
# --------------------------------------------------------------------------------------


def bare_app() -> Any:
    """uvicorn factory: `POST /audit` returns the tenant's newest 20 audit rows as JSON."""
    from contextlib import asynccontextmanager

    import asyncpg
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse, Response
    from starlette.routing import Route

    connect = json.loads(os.environ["BENCH_BARE_CONNECT"])
    schema = os.environ["BENCH_BARE_SCHEMA"]
    if not SCHEMA_RE.fullmatch(schema):
        raise ValueError(f"bad schema name {schema!r}")
    pool_size = int(os.environ.get("BENCH_BARE_POOL", "10"))
    # The same statement UDS runs (page size + 1 rows, newest first).
    sql = (
        f'select id, at, actor, action, target, allowed from "{schema}".audit_log'
        f" order by id desc limit {PAGE + 1}"
    )
    state: dict[str, Any] = {}

    @asynccontextmanager
    async def lifespan(app: Starlette) -> Any:
        state["pool"] = await asyncpg.create_pool(min_size=pool_size, max_size=pool_size, **connect)
        try:
            yield
        finally:
            await state["pool"].close()

    async def audit(request: Request) -> JSONResponse:
        await request.body()
        rows = await state["pool"].fetch(sql)
        return JSONResponse(
            {
                "rows": [
                    {
                        "id": str(r["id"]),
                        "at": r["at"].isoformat(),
                        "actor": r["actor"],
                        "action": r["action"],
                        "target": r["target"],
                    }
                    for r in rows[:PAGE]
                ]
            }
        )

    async def ping(request: Request) -> Response:
        return Response(b"ok", media_type="text/plain")

    return Starlette(
        routes=[
            Route("/audit", audit, methods=["GET", "POST"]),
            Route("/ping", ping, methods=["GET", "POST"]),
        ],
        lifespan=lifespan,
    )


# --------------------------------------------------------------------------------------
# The full stack with policy checks switched off (bench only, no production switch).
# --------------------------------------------------------------------------------------


class AllowEverything:
    """A PolicyEngine that allows every action without looking: "policy checks off"."""

    async def decide(self, request: Any) -> Any:
        from uds.policies import Decision

        return Decision(allow=True)

    async def ready(self) -> bool:
        return True

    async def aclose(self) -> None:
        return None


def policy_off_app() -> Any:
    """uvicorn factory: the full stack (BENCH_FULL_FACTORY, default `uds.app:app_from_env`,
    i.e. `create_app(Settings.from_env())`) whose lifespan, once it has built `services`,
    swaps `services.policy` for `AllowEverything`.

    Requests reach the services through the lifespan state (`{"services": services}`,
    shallow-copied into each request's scope), so they all see the same `Services` object
    and the swap applies to every request. The real engine is put back for shutdown, so
    `services.close()` closes it.
    """
    import importlib
    from contextlib import asynccontextmanager

    module, _, name = os.environ.get("BENCH_FULL_FACTORY", "uds.app:app_from_env").partition(":")
    app = getattr(importlib.import_module(module), name)()
    inner = app.router.lifespan_context

    @asynccontextmanager
    async def lifespan(app_: Any) -> Any:
        async with inner(app_) as state:
            services = (state or {}).get("services")
            if services is None or not hasattr(services, "policy"):
                raise RuntimeError("the app's lifespan state has no services.policy to switch off")
            real, services.policy = services.policy, AllowEverything()
            try:
                yield state
            finally:
                services.policy = real

    app.router.lifespan_context = lifespan
    return app


# --------------------------------------------------------------------------------------
# Small helpers
# --------------------------------------------------------------------------------------


def say(message: str = "") -> None:
    print(message, file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def percentile(sorted_values: list[float], p: float) -> float:
    """Nearest-rank percentile of an already sorted list."""
    if not sorted_values:
        return float("nan")
    k = max(0, min(len(sorted_values) - 1, round(p / 100 * len(sorted_values) + 0.5) - 1))
    return sorted_values[k]


def asyncpg_kwargs(url: str) -> dict[str, Any]:
    from dataclasses import replace

    from uds.datasources.params import params_from_url

    return replace(params_from_url(url), sslmode="disable").asyncpg_kwargs()


def with_database(url: str, name: str) -> str:
    from sqlalchemy import make_url

    return make_url(url).set(database=name).render_as_string(hide_password=False)


_TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _proc_cpu(pid: int) -> tuple[int, float] | None:
    """(process group, CPU seconds so far) of a process, from /proc; None if it is gone.

    CPU time comes from schedstat (nanoseconds, summed over the threads): the tick counts
    in /proc/PID/stat are 10 ms coarse, too coarse for 20 DB backends over a few seconds.
    """
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = raw[raw.rindex(")") + 2 :].split()
    pgid = int(fields[2])
    try:
        total = 0
        for task in os.scandir(f"/proc/{pid}/task"):
            total += int(Path(task.path, "schedstat").read_text().split()[0])
        return pgid, total / 1e9
    except (OSError, ValueError, IndexError):
        return pgid, (int(fields[11]) + int(fields[12])) / _TICK


def cpu_snapshot(pgids: set[int], db_name: str) -> dict[str, dict[int, float]]:
    """CPU seconds so far of our server process groups and of the bench database's backends.

    Backends are found by their process title ("postgres: user <db> host(port) state"),
    so this works whenever PostgreSQL runs on this machine (both the env and embedded case).
    """
    servers: dict[int, float] = {}
    backends: dict[int, float] = {}
    needle = f" {db_name} ".encode()
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        pid = int(entry.name)
        info = _proc_cpu(pid)
        if info is None:
            continue
        if info[0] in pgids:
            servers[pid] = info[1]
            continue
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        if cmd.startswith(b"postgres: ") and needle in cmd:
            backends[pid] = info[1]
    return {"server": servers, "db": backends}


def cpu_delta(before: dict[str, dict[int, float]], after: dict[str, dict[int, float]]) -> dict[str, float]:
    return {
        kind: sum(cpu - before[kind].get(pid, 0.0) for pid, cpu in after[kind].items())
        for kind in ("server", "db")
    }


def secret_key() -> str:
    """A throw-away credential key for UDS_SECRET_KEYS (prod mode refuses to start without)."""
    try:
        from uds.datasources.credentials import generate_key
    except ImportError:
        import base64
        import secrets

        return base64.urlsafe_b64encode(secrets.token_bytes(32)).decode().rstrip("=")
    return generate_key()


class Deadline(BaseException):
    """The whole run took longer than its hard limit."""


@dataclass
class Result:
    """One measurement: a load run against one endpoint."""

    label: str
    tenants: int
    requests: int
    seconds: float
    rps: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    errors: int
    # CPU milliseconds per request: the server's processes, and PostgreSQL's backends.
    server_cpu_ms: float = float("nan")
    db_cpu_ms: float = float("nan")

    def row(self) -> str:
        return (
            f"{self.label:<34} {self.tenants:>7} {self.rps:>9.0f} {self.p50_ms:>8.2f} {self.p90_ms:>8.2f}"
            f" {self.p99_ms:>8.2f} {self.max_ms:>8.1f} {self.requests:>8} {self.errors:>6}"
            f" {self.server_cpu_ms:>8.3f} {self.db_cpu_ms:>7.3f}"
        )


HEADER = (
    f"{'run':<34} {'tenants':>7} {'req/s':>9} {'p50 ms':>8} {'p90 ms':>8} {'p99 ms':>8}"
    f" {'max ms':>8} {'requests':>8} {'errors':>6} {'srv CPU':>8} {'pg CPU':>7}"
)


# --------------------------------------------------------------------------------------
# Processes: every child gets its own session, so cleanup can end exactly what we started.
# --------------------------------------------------------------------------------------


class Processes:
    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self.children: list[tuple[str, subprocess.Popen[bytes]]] = []

    def start(
        self, name: str, argv: list[str], env: dict[str, str], cwd: Path = ROOT
    ) -> subprocess.Popen[bytes]:
        log = open(self.log_dir / f"{name}.log", "wb")
        proc = subprocess.Popen(
            argv, env=env, cwd=cwd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        log.close()
        self.children.append((name, proc))
        return proc

    def log_tail(self, name: str, lines: int = 30) -> str:
        path = self.log_dir / f"{name}.log"
        if not path.exists():
            return ""
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])

    def stop_all(self) -> None:
        for _name, proc in reversed(self.children):
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGTERM)  # the group this child leads
        for _name, proc in reversed(self.children):
            try:
                proc.wait(timeout=8)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=5)
        self.children.clear()


def uvicorn_argv(target: str, port: int, workers: int, *, app_dir: Path | None = None) -> list[str]:
    argv = [sys.executable, "-m", "uvicorn", "--factory", target]
    if app_dir is not None:
        argv += ["--app-dir", str(app_dir)]
    return [
        *argv,
        "--host", HOST, "--port", str(port),
        "--loop", "uvloop", "--http", "httptools",
        "--workers", str(workers),
        "--log-level", "warning", "--no-access-log",
    ]  # fmt: skip


def wait_http(
    url: str, proc: subprocess.Popen[bytes], name: str, procs: Processes, timeout: float = 60
) -> None:
    import httpx

    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if proc.poll() is not None:
            raise RuntimeError(f"{name} exited with {proc.returncode}:\n{procs.log_tail(name)}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(url, timeout=2).status_code == 200:
                return
        time.sleep(0.1)
    raise RuntimeError(f"{name} did not answer {url} within {timeout:.0f} s:\n{procs.log_tail(name)}")


# --------------------------------------------------------------------------------------
# Database set-up (through UDS's own code) and tenant provisioning
# --------------------------------------------------------------------------------------


async def create_database(admin_url: str, name: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(**asyncpg_kwargs(admin_url))
    try:
        await conn.execute(f'create database "{name}"')
    finally:
        await conn.close()


async def drop_database(admin_url: str, name: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(**asyncpg_kwargs(admin_url), timeout=10)
    try:
        await conn.execute(f'drop database if exists "{name}" with (force)')
    finally:
        await conn.close()


async def drop_redis_keys(url: str, prefix: str) -> None:
    from redis.asyncio import Redis

    redis = Redis.from_url(url)
    try:
        keys = [k async for k in redis.scan_iter(match=f"{prefix}*")]
        if keys:
            await redis.delete(*keys)
    finally:
        await redis.aclose()


async def create_tenants(engine: Any, slugs: list[str], *, stop_at: float | None = None) -> list[float]:
    """Create tenants one after another, each in its own transaction; seconds per tenant.

    Sequential on purpose: `create_tenant` runs Alembic, whose `op`/`context` proxies are
    module globals, so two provisionings interleaved on one event loop trip over each other.
    """
    from uds.db import transaction
    from uds.tenants import service

    times = []
    for slug in slugs:
        if stop_at is not None and time.monotonic() > stop_at:
            break
        started = time.perf_counter()
        async with transaction(engine) as tx:
            await service.create_tenant(await tx.core(), slug=slug, name=slug, actor="bench")
        times.append(time.perf_counter() - started)
    return times


async def seed_audit_rows(engine: Any, schema: str | None = None) -> None:
    """25 audit rows in one tenant schema, or in every tenant schema whose audit log is empty."""
    from sqlalchemy import text

    insert = (
        "insert into SCHEMA.audit_log (actor, action, target, detail)"
        " select 'bench@uds.bench', 'bench.read', 'target-' || g, '{}'::jsonb"
        f" from generate_series(1, {AUDIT_ROWS}) g"
    )
    async with engine.begin() as conn:
        if schema is not None:
            await conn.execute(text(insert.replace("SCHEMA", f'"{schema}"')))
            return
        # One statement for all schemas: a PL/pgSQL loop instead of 1,000 round trips.
        quoted = insert.replace("SCHEMA", "%I").replace("'", "''")
        await conn.execute(
            text(
                "do $$ declare s text; empty boolean; begin"
                " for s in select n.nspname from pg_namespace n join pg_class c on c.relnamespace = n.oid"
                "  where n.nspname like 't\\_%' and c.relname = 'audit_log' and c.relkind = 'r' loop"
                "  execute format('select not exists (select 1 from %I.audit_log)', s) into empty;"
                f"  if empty then execute format('{quoted}', s); end if;"
                " end loop; end $$"
            )
        )


async def setup_database(settings: Any, filler: int) -> dict[str, Any]:
    """Migrate, create the bench tenant (+ member, audit rows) and filler tenants."""
    from sqlalchemy import text

    from uds.db import make_engine, transaction
    from uds.runtime import migrate_core
    from uds.tenants import service
    from uds.tenants.slugs import tenant_schema

    engine = make_engine(settings, pool_size=2)
    try:
        started = time.perf_counter()
        await migrate_core(engine)
        migrate_s = time.perf_counter() - started
        async with transaction(engine) as tx:
            session = await tx.core()
            await service.create_tenant(session, slug=BENCH_TENANT, name="Bench", actor="bench")
            await service.set_member(
                session, slug=BENCH_TENANT, subject=BENCH_SUBJECT, role="ADMIN", actor="bench"
            )
            await service.set_limits(session, slug=BENCH_TENANT, overrides=BENCH_LIMITS, actor="bench")
        await seed_audit_rows(engine, tenant_schema(BENCH_TENANT))
        await create_tenants(engine, [f"fill-{i:05d}" for i in range(filler)])
        async with engine.connect() as conn:
            count = await conn.scalar(text("select count(*) from uds.tenants"))
            ids = (
                await conn.scalars(
                    text(
                        f'select id from "{tenant_schema(BENCH_TENANT)}".audit_log'
                        f" order by id desc limit {PAGE}"
                    )
                )
            ).all()
        return {"migrate_s": migrate_s, "tenants": int(count), "ids": [str(i) for i in ids]}
    finally:
        await engine.dispose()


async def provision_samples(settings: Any, samples: int) -> list[float]:
    """Time `samples` provisionings, one after another, each in its own transaction."""
    from uds.db import make_engine

    engine = make_engine(settings, pool_size=2)
    try:
        return await create_tenants(engine, [f"prov-{i:05d}" for i in range(samples)])
    finally:
        await engine.dispose()


async def tenant_slugs(settings: Any) -> list[str]:
    from sqlalchemy import text

    from uds.db import make_engine

    engine = make_engine(settings, pool_size=1)
    try:
        async with engine.connect() as conn:
            return list((await conn.scalars(text("select slug from uds.tenants order by slug"))).all())
    finally:
        await engine.dispose()


async def seed_all(settings: Any) -> float:
    from uds.db import make_engine

    engine = make_engine(settings, pool_size=1)
    try:
        started = time.perf_counter()
        await seed_audit_rows(engine)
        return time.perf_counter() - started
    finally:
        await engine.dispose()


def bulk_create(
    settings: Any, slugs: list[str], workers: int, stop_at: float, procs: Processes
) -> list[float]:
    """Create `slugs` through `create_tenant` in `workers` processes (each sequential).

    Separate processes, not tasks: Alembic's `op`/`context` proxies are module globals, so
    concurrent provisionings on one event loop break each other. Stops at wall-clock
    `stop_at`; returns seconds per created tenant.
    """
    running = []
    for i in range(workers):
        chunk = slugs[i::workers]
        if not chunk:
            continue
        config = {
            "database_url": settings.database_url,
            "redis_url": settings.redis_url,
            "slugs": chunk,
            "stop_at": stop_at,
        }
        proc = subprocess.Popen(
            [sys.executable, str(Path(__file__).resolve()), "--_provision", json.dumps(config)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
        procs.children.append((f"provision-{i}", proc))
        running.append((f"provision-{i}", proc))
    times: list[float] = []
    for name, proc in running:
        out, err = proc.communicate(timeout=max(30.0, stop_at - time.time() + 60))
        procs.children.remove((name, proc))
        if proc.returncode != 0:
            raise RuntimeError(f"{name} failed:\n{err.decode(errors='replace')[-2000:]}")
        times += json.loads(out)
    return times


def provision_main(config_json: str) -> int:
    """A bulk-provisioning worker process (see bulk_create)."""
    from uds.db import make_engine
    from uds.settings import Settings

    config = json.loads(config_json)
    settings = Settings(database_url=config["database_url"], redis_url=config["redis_url"])

    async def main() -> list[float]:
        engine = make_engine(settings, pool_size=1)
        try:
            # create_tenants compares against time.monotonic(); translate the wall-clock end.
            stop_at = time.monotonic() + (config["stop_at"] - time.time())
            return await create_tenants(engine, config["slugs"], stop_at=stop_at)
        finally:
            await engine.dispose()

    print(json.dumps(asyncio.run(main())), flush=True)
    return 0


# --------------------------------------------------------------------------------------
# Load generation: wrk (preferred) or a Python keep-alive generator in its own process
# --------------------------------------------------------------------------------------


@dataclass
class Target:
    """What one load run sends: a POST to `path` with these header sets (rotated per request)."""

    port: int
    path: str
    body: str
    header_sets: list[dict[str, str]]
    check_body: bool = True  # count 200 responses whose body holds "errors" as errors


def _lua_str(value: str) -> str:
    for level in range(1, 10):
        close = "]" + "=" * level + "]"
        if close not in value:
            return "[" + "=" * level + "[" + value + close
    raise ValueError("cannot quote for Lua")


def wrk_script(target: Target) -> str:
    lines = [
        "local reqs = {}",
        "local threads = {}",
        "function setup(thread) table.insert(threads, thread) end",
        "function init(args)",
        "  bad = 0",
        "  n = 0",
    ]
    for headers in target.header_sets:
        hdrs = ", ".join(f"[ {_lua_str(k)} ] = {_lua_str(v)}" for k, v in headers.items())
        lines.append(
            f"  table.insert(reqs, wrk.format('POST', {_lua_str(target.path)},"
            f" {{{hdrs}}}, {_lua_str(target.body)}))"
        )
    lines += [
        "end",
        "function request()",
        "  n = n + 1",
        "  return reqs[(n % #reqs) + 1]",
        "end",
    ]
    if target.check_body:
        lines += [
            "function response(status, headers, body)",
            "  if status ~= 200 or string.find(body, '\"errors\"', 1, true) then bad = bad + 1 end",
            "end",
        ]
    lines += [
        "function done(summary, latency, requests)",
        "  local b = 0",
        "  for _, t in ipairs(threads) do b = b + (t:get('bad') or 0) end",
        "  local e = summary.errors",
        '  io.write(string.format(\'BENCHJSON {"requests":%d,"duration_us":%d,"p50":%d,"p90":%d,'
        '"p99":%d,"max":%d,"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d,'
        '"bad":%d}\\n\', summary.requests, summary.duration, latency:percentile(50), latency:percentile(90),'
        " latency:percentile(99), latency.max, e.connect, e.read, e.write, e.status, e.timeout, b))",
        "end",
    ]
    return "\n".join(lines) + "\n"


class Load:
    """Runs load against a Target for a number of seconds and returns a Result."""

    def __init__(self, kind: str, connections: int, threads: int, work_dir: Path, procs: Processes) -> None:
        self.kind = kind
        self.connections = connections
        self.threads = threads
        self.work_dir = work_dir
        self.procs = procs
        self._scripts: dict[int, Path] = {}
        self.wrk = shutil.which("wrk") if kind == "wrk" else None

    def describe(self) -> str:
        if self.kind == "wrk":
            version = subprocess.run([self.wrk or "wrk", "-v"], capture_output=True, text=True).stdout
            first = (version.strip().splitlines() or ["wrk"])[0].split(" [")[0]
            return f"{first}, {self.threads} thread(s), {self.connections} connections"
        return f"python keep-alive generator (1 process, uvloop), {self.connections} connections"

    def start(self, target: Target, seconds: int) -> subprocess.Popen[bytes]:
        env = dict(os.environ)
        if self.kind == "wrk":
            script = self.work_dir / f"load-{id(target)}.lua"
            script.write_text(wrk_script(target))
            argv = [
                self.wrk or "wrk", "-t", str(self.threads), "-c", str(self.connections),
                "-d", f"{seconds}s", "--timeout", "5s", "-s", str(script),
                f"http://{HOST}:{target.port}{target.path}",
            ]  # fmt: skip
        else:
            config = {**asdict(target), "connections": self.connections, "seconds": seconds}
            # In a file: one argument may not exceed 128 KiB (Linux), and the spread run's
            # requests for 1,000 tenants do.
            path = self.work_dir / f"load-{id(target)}.json"
            path.write_text(json.dumps(config))
            argv = [sys.executable, str(Path(__file__).resolve()), "--_loadgen", "@" + str(path)]
        proc = subprocess.Popen(
            argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True
        )
        self.procs.children.append(("load", proc))
        return proc

    def finish(self, proc: subprocess.Popen[bytes], label: str, tenants: int, seconds: int) -> Result:
        out, err = proc.communicate(timeout=seconds + 30)
        # Only once it has finished: on an error it stays listed, and the cleanup ends it.
        self.procs.children[:] = [(n, p) for n, p in self.procs.children if p is not proc]
        text = out.decode(errors="replace")
        found = re.search(r"BENCHJSON (\{.*\})", text)
        if proc.returncode != 0 or not found:
            raise RuntimeError(
                f"load generator failed ({proc.returncode}):\n{text}\n{err.decode(errors='replace')}"
            )
        d = json.loads(found.group(1))
        secs = d["duration_us"] / 1e6
        errors = d["connect"] + d["read"] + d["write"] + d["status"] + d["timeout"] + d["bad"]
        return Result(
            label=label,
            tenants=tenants,
            requests=d["requests"],
            seconds=secs,
            rps=d["requests"] / secs if secs else 0.0,
            p50_ms=d["p50"] / 1000,
            p90_ms=d["p90"] / 1000,
            p99_ms=d["p99"] / 1000,
            max_ms=d["max"] / 1000,
            errors=errors,
        )

    def run(
        self, target: Target, seconds: int, label: str, tenants: int, cpu: Callable[[], Any] | None = None
    ) -> Result:
        before = cpu() if cpu else None
        result = self.finish(self.start(target, seconds), label, tenants, seconds)
        if cpu and before is not None and result.requests:
            used = cpu_delta(before, cpu())
            result.server_cpu_ms = used["server"] * 1000 / result.requests
            result.db_cpu_ms = used["db"] * 1000 / result.requests
        return result


def loadgen_main(config_json: str) -> int:
    """The Python load generator (a separate process): keep-alive HTTP/1.1 over raw sockets.
    Its configuration is JSON, or "@path" of a file holding it."""
    if config_json.startswith("@"):
        config_json = Path(config_json[1:]).read_text()
    config = json.loads(config_json)
    with contextlib.suppress(ImportError):
        import uvloop

        uvloop.install()
    body = config["body"].encode()
    requests = []
    for headers in config["header_sets"]:
        head = f"POST {config['path']} HTTP/1.1\r\nHost: {HOST}:{config['port']}\r\n"
        head += "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        head += f"Content-Length: {len(body)}\r\n\r\n"
        requests.append(head.encode() + body)
    check_body = config["check_body"]
    latencies: list[float] = []
    counters = Counter()

    class Client(asyncio.Protocol):
        def __init__(self, end: float, done: asyncio.Future[None], offset: int) -> None:
            self.end = end
            self.done = done
            self.n = offset
            self.buf = bytearray()
            self.sent = 0.0
            self.transport: asyncio.Transport | None = None

        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            self.transport = transport  # type: ignore[assignment]
            self.send()

        def send(self) -> None:
            assert self.transport is not None
            self.n += 1
            self.sent = time.perf_counter()
            self.transport.write(requests[self.n % len(requests)])

        def data_received(self, data: bytes) -> None:
            self.buf += data
            while True:
                head_end = self.buf.find(b"\r\n\r\n")
                if head_end < 0:
                    return
                head = bytes(self.buf[:head_end]).lower()
                m = re.search(rb"\r\ncontent-length:\s*(\d+)", head)
                if m is None:
                    counters["read"] += 1
                    self._close()
                    return
                total = head_end + 4 + int(m.group(1))
                if len(self.buf) < total:
                    return
                now = time.perf_counter()
                status = int(head[9:12])
                resp_body = bytes(self.buf[head_end + 4 : total])
                del self.buf[:total]
                latencies.append(now - self.sent)
                if status != 200:
                    counters["status"] += 1
                elif check_body and b'"errors"' in resp_body:
                    counters["bad"] += 1
                if now >= self.end:
                    self._close()
                    return
                self.send()

        def _close(self) -> None:
            if self.transport is not None:
                self.transport.close()
            if not self.done.done():
                self.done.set_result(None)

        def connection_lost(self, exc: Exception | None) -> None:
            if not self.done.done():
                self.done.set_result(None)

    async def main() -> float:
        loop = asyncio.get_running_loop()
        started = time.perf_counter()
        end = started + config["seconds"]
        futures = []
        for i in range(config["connections"]):
            done: asyncio.Future[None] = loop.create_future()
            try:
                await loop.create_connection(lambda d=done, i=i: Client(end, d, i), HOST, config["port"])
            except OSError:
                counters["connect"] += 1
                done.set_result(None)
            futures.append(done)
        await asyncio.wait_for(asyncio.gather(*futures), config["seconds"] + 20)
        return time.perf_counter() - started

    elapsed = asyncio.run(main())
    lat = sorted(latencies)
    us = lambda s: int(s * 1e6)  # noqa: E731
    print(
        "BENCHJSON "
        + json.dumps(
            {
                "requests": len(lat),
                "duration_us": us(elapsed),
                "p50": us(percentile(lat, 50)) if lat else 0,
                "p90": us(percentile(lat, 90)) if lat else 0,
                "p99": us(percentile(lat, 99)) if lat else 0,
                "max": us(lat[-1]) if lat else 0,
                "connect": counters["connect"],
                "read": counters["read"],
                "write": 0,
                "status": counters["status"],
                "timeout": 0,
                "bad": counters["bad"],
            }
        ),
        flush=True,
    )
    return 0


# --------------------------------------------------------------------------------------
# Profiling (py-spy) of the full-stack server during one extra run
# --------------------------------------------------------------------------------------


def _frame_path(frame: str) -> str:
    m = re.match(r".* \((.*?)(?::\d+)?\)$", frame)
    return m.group(1) if m else ""


_PACKAGES = {
    "strawberry": "strawberry",
    "graphql": "graphql-core",
    "sqlalchemy": "sqlalchemy",
    "asyncpg": "asyncpg",
    "starlette": "starlette",
    "uvicorn": "uvicorn",
    "joserfc": "joserfc",
    "redis": "redis",
    "uds": "uds",
    "cross_web": "cross_web",
    "asyncio": "stdlib asyncio",
    "json": "stdlib json",
    "<string>": "generated code (<string>)",
}


def _area(frame: str) -> str:
    path = _frame_path(frame)
    for marker in ("site-packages/", "/src/"):
        if marker in path:
            path = path.split(marker, 1)[1]
    top = path.split("/", 1)[0]
    if top in _PACKAGES:
        return _PACKAGES[top]
    if top.endswith(".py") or top.startswith("<frozen"):
        return "stdlib other"
    return top or "other"


# Request phases: each sample goes to the innermost frame matching one of these markers.
_PHASES = (
    ("auth (JWT)", ("uds/auth/",)),
    ("tenant routing", ("uds/tenants/routing.py", "uds/tenants/registry.py")),
    ("strawberry HTTP layer", ("strawberry/http/", "uds/api/view.py")),
    ("GraphQL parse", ("graphql/language/parser.py", "graphql/language/lexer.py")),
    ("GraphQL validation", ("graphql/validation/", "validate_document")),
    ("GraphQL execution", ("graphql/execution/", "strawberry/schema/")),
    ("resolvers (uds)", ("uds/api/",)),
    ("policy", ("uds/policies/", "regopy/")),
    ("DB: SQLAlchemy", ("sqlalchemy/",)),
    ("DB: asyncpg", ("asyncpg/",)),
    ("transaction scope", ("uds/db.py",)),
    ("response JSON", ("json/encoder.py", "encode_json")),
)


def _phase(frames: list[str]) -> str:
    for frame in reversed(frames):
        for name, needles in _PHASES:
            if any(n in frame for n in needles):
                return name
    return "HTTP (uvicorn/starlette/middleware) and event loop"


def summarize_profile(raw_path: Path, top: int = 25) -> dict[str, Any]:
    """Self time by area and function, inclusive time by function, from py-spy's raw output."""
    self_fn: Counter[str] = Counter()
    incl_fn: Counter[str] = Counter()
    self_area: Counter[str] = Counter()
    phases: Counter[str] = Counter()
    total = 0
    for line in raw_path.read_text(errors="replace").splitlines():
        stack, _, count_s = line.rpartition(" ")
        if not stack or not count_s.isdigit():
            continue
        count = int(count_s)
        frames = [f for f in stack.split(";") if f and not f.startswith(("process ", "thread "))]
        if not frames:
            continue
        total += count
        self_fn[_short(frames[-1])] += count
        self_area[_area(frames[-1])] += count
        phases[_phase(frames)] += count
        for name in {_short(f) for f in frames}:
            incl_fn[name] += count

    def pct(counter: Counter[str], n: int = top) -> list[tuple[str, float]]:
        return [(k, 100.0 * v / total) for k, v in counter.most_common(n)] if total else []

    # Inclusive figures without the frames every sample shares (runpy, click, uvicorn main ...).
    common = {
        k
        for k in incl_fn
        if k.startswith(
            ("<frozen runpy>", "click/", "uvicorn/main.py", "uvicorn/server.py", "uvicorn/__main__")
        )
        or k.startswith(
            ("uvicorn/_compat.py", "asyncio/runners.py", "asyncio/base_events.py", "asyncio/events.py")
        )
    }
    return {
        "samples": total,
        "by_phase": pct(phases, 50),
        "self_by_area": pct(self_area),
        "self_by_function": pct(self_fn),
        "inclusive_by_function": [(k, v) for k, v in pct(incl_fn, top + len(common)) if k not in common][
            :top
        ],
    }


def _short(frame: str) -> str:
    """`func (/long/path/site-packages/pkg/mod.py)` -> `pkg/mod.py:func`."""
    m = re.match(r"(.*) \((.*?)(?::\d+)?\)$", frame)
    if not m:
        return frame
    func, path = m.groups()
    for marker in ("site-packages/", "/src/", "/lib/python3.11/", "/lib/python3.12/", "/lib/python3.13/"):
        if marker in path:
            path = path.split(marker, 1)[1]
            break
    return f"{path}:{func}"


def print_profile(summary: dict[str, Any], out: Callable[[str], None], what: str) -> None:
    out(
        f"py-spy profile ({what}): {summary['samples']} samples"
        f" at 250 Hz (on-CPU only), {summary.get('rps_while_profiled', 0):.0f} req/s while profiled"
    )
    out("  by request phase (innermost matching frame):")
    for name, value in summary["by_phase"]:
        out(f"    {value:5.1f}%  {name}")
    out("  self time by package: " + ", ".join(f"{k} {v:.1f}%" for k, v in summary["self_by_area"][:9]))
    out("  top self-time functions:")
    for name, value in summary["self_by_function"][:12]:
        out(f"    {value:5.1f}%  {name}")
    out("  top inclusive functions (frames shared by every sample left out):")
    for name, value in summary["inclusive_by_function"][:25]:
        out(f"    {value:5.1f}%  {name}")


# --------------------------------------------------------------------------------------
# The benchmark
# --------------------------------------------------------------------------------------


@dataclass
class Plan:
    run_s: int
    warmup_s: int
    ping_s: int
    pairs: int
    limit_s: int
    tenants: int


def plan_for(args: argparse.Namespace) -> Plan:
    if args.quick:
        plan = Plan(run_s=3, warmup_s=1, ping_s=1, pairs=2, limit_s=66, tenants=args.tenants)
    else:
        plan = Plan(run_s=10, warmup_s=2, ping_s=3, pairs=2, limit_s=200, tenants=args.tenants)
    if args.duration:
        plan.run_s = args.duration
    # The ops_off server (metrics and rate limits off): its start, warm-up and runs; the
    # persisted-operation runs; the plain-path server's (--plain).
    plan.limit_s += plan.pairs * plan.run_s + plan.warmup_s + 10
    plan.limit_s += plan.pairs * plan.run_s + plan.warmup_s + 5
    if args.plain:
        plan.limit_s += plan.pairs * plan.run_s + plan.warmup_s + 10
    if args.profile:  # the profiled runs are extra: give them their own time
        plan.limit_s += 2 * (plan.run_s + 5)
    return plan


def check_answers(
    full_url: str, bare_url: str, target_full: Target, target_bare: Target, ids: list[str]
) -> None:
    import httpx

    full = httpx.post(full_url, content=target_full.body, headers=target_full.header_sets[0], timeout=10)
    if full.status_code != 200:
        raise RuntimeError(f"full stack answered {full.status_code}: {full.text[:500]}")
    data = full.json()
    if data.get("errors"):
        raise RuntimeError(f"full stack answered with errors: {data['errors']}")
    subject = data["data"]["me"]["subject"]
    full_ids = [e["node"]["id"] for e in data["data"]["auditLog"]["edges"]]
    bare = httpx.post(bare_url, content=target_bare.body, headers=target_bare.header_sets[0], timeout=10)
    bare.raise_for_status()
    bare_ids = [r["id"] for r in bare.json()["rows"]]
    if subject != BENCH_SUBJECT:
        raise RuntimeError(f"full stack says me.subject = {subject!r}")
    if not (len(full_ids) == PAGE and full_ids == bare_ids == ids):
        raise RuntimeError(f"answers differ: full {full_ids} bare {bare_ids} expected {ids}")


def check_policy_off(full_url: str, off_url: str, target: Target) -> None:
    """The swap really applies: a query the policy denies the bench token (a tenant admin,
    not a platform admin) is refused by the full stack and answered by the policy-off server."""
    import httpx

    body = json.dumps({"query": ADMIN_QUERY})
    # No X-Tenant-ID: a platform action; the full stack records the denial in the platform log.
    headers = {k: v for k, v in target.header_sets[0].items() if k != "X-Tenant-ID"}
    answers = {}
    for name, url in (("full stack", full_url), ("policy-off server", off_url)):
        response = httpx.post(url, content=body, headers=headers, timeout=10)
        try:
            answers[name] = response.json()
        except ValueError:
            raise RuntimeError(f"{name} answered {response.status_code}: {response.text[:500]}") from None
    denied, allowed = answers["full stack"], answers["policy-off server"]
    if not denied.get("errors"):
        raise RuntimeError(f"the full stack allowed {ADMIN_QUERY} to a non-admin: {denied}")
    edges = ((allowed.get("data") or {}).get("admin") or {}).get("tenants", {}).get("edges")
    if allowed.get("errors") or not edges:
        raise RuntimeError(f"the policy-off server did not allow {ADMIN_QUERY}: {allowed}")


def persisted_body() -> str:
    """The bench read named by its hash only (Apollo's automatic persisted queries)."""
    digest = hashlib.sha256(QUERY.encode()).hexdigest()
    return json.dumps({"extensions": {"persistedQuery": {"version": 1, "sha256Hash": digest}}})


def check_persisted(url: str, full: Target, persisted: Target) -> None:
    """Register the document (hash + query, as a client does after PERSISTED_QUERY_NOT_FOUND)
    and check the hash alone answers the same bytes as the full query."""
    import httpx

    headers = full.header_sets[0]
    first = httpx.post(url, content=persisted.body, headers=headers, timeout=10).json()
    code = (first.get("errors") or [{}])[0].get("extensions", {}).get("code")
    if code != "PERSISTED_QUERY_NOT_FOUND":
        raise RuntimeError(f"an unregistered hash should be PERSISTED_QUERY_NOT_FOUND: {first}")
    register = {**json.loads(persisted.body), "query": QUERY}
    httpx.post(url, content=json.dumps(register), headers=headers, timeout=10).raise_for_status()
    by_hash = httpx.post(url, content=persisted.body, headers=headers, timeout=10)
    by_text = httpx.post(url, content=full.body, headers=headers, timeout=10)
    if by_hash.content != by_text.content or by_hash.status_code != 200:
        raise RuntimeError(
            f"persisted answer differs: {by_hash.content[:300]!r} vs {by_text.content[:300]!r}"
        )


def per_decision(quick: bool) -> dict[str, Any]:
    """bench/policy_decisions.py's measurement (its `main`), run in this process."""
    if str(BENCH_DIR) not in sys.path:
        sys.path.insert(0, str(BENCH_DIR))
    import policy_decisions

    return asyncio.run(policy_decisions.main(argparse.Namespace(quick=quick, opa_url=None)))


def best(results: list[Result]) -> Result:
    """The better run: the one with the most requests/s."""
    return max(results, key=lambda r: r.rps)


def run(args: argparse.Namespace) -> dict[str, Any]:
    plan = plan_for(args)
    t0 = time.monotonic()
    hard_end = t0 + plan.limit_s

    def on_alarm(signum: int, frame: Any) -> None:
        raise Deadline(f"the run took longer than {plan.limit_s} s")

    signal.signal(signal.SIGALRM, on_alarm)
    signal.alarm(plan.limit_s)
    signal.signal(signal.SIGINT, signal.default_int_handler)  # also when started in the background
    signal.signal(signal.SIGTERM, signal.default_int_handler)

    work = Path(tempfile.mkdtemp(prefix="uds-bench-"))
    procs = Processes(work)
    stop_servers: Callable[[], None] = lambda: None  # noqa: E731
    admin_url = redis_url = ""
    db_name = f"uds_bench_{uuid.uuid4().hex[:8]}"
    redis_prefix = f"uds-bench-{uuid.uuid4().hex[:8]}:"
    db_created = False
    report: dict[str, Any] = {"db_name": db_name}
    out_lines: list[str] = []

    def out(line: str = "") -> None:
        out_lines.append(line)
        print(line, flush=True)

    try:
        # 1. Servers and a database of our own.
        env_db = os.environ.get("UDS_DATABASE_URL", "").strip()
        env_redis = os.environ.get("UDS_REDIS_URL", "").strip()
        if env_db and env_redis:
            admin_url, redis_url = env_db, env_redis
            servers_from = "UDS_DATABASE_URL / UDS_REDIS_URL"
        else:
            from uds.embedded import start_embedded

            say("starting embedded PostgreSQL and Valkey ...")
            embedded = start_embedded(work / "servers", progress=say)
            stop_servers = embedded.stop
            admin_url, redis_url = embedded.database_url, embedded.redis_url
            servers_from = "embedded (uds.embedded)"
        asyncio.run(create_database(admin_url, db_name))
        db_created = True
        db_url = with_database(admin_url, db_name)
        data_dir = work / "data"
        data_dir.mkdir()

        from uds.auth.keys import SigningKey
        from uds.settings import Settings
        from uds.tenants.slugs import tenant_schema

        settings = Settings(database_url=db_url, redis_url=redis_url, data_dir=data_dir, mode=args.mode)
        say(f"database {db_name}: migrating, creating {BASE_TENANTS} tenants ...")
        setup = asyncio.run(setup_database(settings, BASE_TENANTS - 1))
        say("per-decision time (bench/policy_decisions.py, in process, before the servers start) ...")
        decisions = per_decision(args.quick)
        key = SigningKey.load_or_create(data_dir)
        token = key.issue(BENCH_SUBJECT, issuer=settings.own_issuer, audience=settings.audience, ttl=3600)
        root_token = key.issue(
            ROOT_SUBJECT,
            issuer=settings.own_issuer,
            audience=settings.audience,
            ttl=3600,
            roles=["platform-admin"],
        )

        # 2. The two servers, same flags, same process count.
        server_env = {k: v for k, v in os.environ.items() if not k.startswith(("UDS_", "BENCH_"))}
        full_env = {
            **server_env,
            "UDS_DATABASE_URL": db_url,
            "UDS_REDIS_URL": redis_url,
            # Keys of this run only (persisted queries, tenant change announcements).
            "UDS_REDIS_PREFIX": redis_prefix,
            "UDS_DATA_DIR": str(data_dir),
            "UDS_MODE": args.mode,
            "UDS_SECRET_KEYS": secret_key(),
        }
        bare_env = {
            **server_env,
            "BENCH_BARE_CONNECT": json.dumps(asyncpg_kwargs(db_url)),
            "BENCH_BARE_SCHEMA": tenant_schema(BENCH_TENANT),
            "BENCH_BARE_POOL": str(settings.db_pool_size),
        }
        off_env = {**full_env, "BENCH_FULL_FACTORY": args.full_factory}
        plain_env = {**full_env, "UDS_FAST_PATHS": "off"}
        ops_off_env = {**full_env, "UDS_METRICS": "off", "UDS_RATE_LIMITS": "off"}
        ops_off_port, plain_port = free_port(), free_port()
        full_port, bare_port, off_port = free_port(), free_port(), free_port()
        say(
            f"starting servers: full stack :{full_port}, bare :{bare_port}, policy off :{off_port}"
            f" ({args.workers} worker(s) each) ..."
        )
        full_proc = procs.start("full", uvicorn_argv(args.full_factory, full_port, args.workers), full_env)
        bare_proc = procs.start(
            "bare",
            uvicorn_argv("graphql_read:bare_app", bare_port, args.workers, app_dir=BENCH_DIR),
            bare_env,
        )
        off_proc = procs.start(
            "policy_off",
            uvicorn_argv("graphql_read:policy_off_app", off_port, args.workers, app_dir=BENCH_DIR),
            off_env,
        )
        plain_proc = None
        if args.plain:
            plain_proc = procs.start(
                "plain", uvicorn_argv(args.full_factory, plain_port, args.workers), plain_env
            )
        wait_http(f"http://{HOST}:{full_port}/healthz", full_proc, "full", procs)
        wait_http(f"http://{HOST}:{bare_port}/ping", bare_proc, "bare", procs)
        wait_http(f"http://{HOST}:{off_port}/readyz", off_proc, "policy_off", procs)
        if plain_proc is not None:
            wait_http(f"http://{HOST}:{plain_port}/healthz", plain_proc, "plain", procs)
        ops_off_proc = procs.start(
            "ops_off", uvicorn_argv(args.full_factory, ops_off_port, args.workers), ops_off_env
        )
        wait_http(f"http://{HOST}:{ops_off_port}/healthz", ops_off_proc, "ops_off", procs)

        body = json.dumps({"query": QUERY})
        common = {"Content-Type": "application/json"}
        full = Target(
            full_port,
            "/graphql",
            body,
            [{**common, "Authorization": f"Bearer {token}", "X-Tenant-ID": BENCH_TENANT}],
        )
        bare = Target(
            bare_port,
            "/audit",
            body,
            [{**common, "Authorization": f"Bearer {token}", "X-Tenant-ID": BENCH_TENANT}],
        )
        ping = Target(bare_port, "/ping", body, bare.header_sets, check_body=False)
        off = Target(off_port, "/graphql", body, full.header_sets)
        ops_off = Target(ops_off_port, "/graphql", body, full.header_sets)
        check_answers(
            f"http://{HOST}:{full_port}/graphql", f"http://{HOST}:{bare_port}/audit", full, bare, setup["ids"]
        )
        check_answers(
            f"http://{HOST}:{off_port}/graphql", f"http://{HOST}:{bare_port}/audit", off, bare, setup["ids"]
        )
        persisted = Target(full_port, "/graphql", persisted_body(), full.header_sets)
        check_persisted(f"http://{HOST}:{full_port}/graphql", full, persisted)
        plain = Target(plain_port, "/graphql", body, full.header_sets)
        if args.plain:
            check_answers(
                f"http://{HOST}:{plain_port}/graphql",
                f"http://{HOST}:{bare_port}/audit",
                plain,
                bare,
                setup["ids"],
            )
        check_answers(
            f"http://{HOST}:{ops_off_port}/graphql",
            f"http://{HOST}:{bare_port}/audit",
            ops_off,
            bare,
            setup["ids"],
        )
        say("all servers answer the same 20 rows; the persisted operation answers the same bytes")
        from observability_cost import tracing_off_cost

        tracing_cost = tracing_off_cost(
            Settings.from_env(full_env),
            QUERY,
            {"Authorization": f"Bearer {token}", "X-Tenant-ID": BENCH_TENANT},
        )
        check_policy_off(f"http://{HOST}:{full_port}/graphql", f"http://{HOST}:{off_port}/graphql", full)
        say("policy switched off: a query the policy denies is allowed only on the policy-off server")

        # 3. Load generator.
        kind = args.load
        if kind == "auto":
            kind = "wrk" if shutil.which("wrk") else "python"
            if kind == "python":
                say("wrk is not installed (apt-get install wrk); using the Python load generator")
        elif kind == "wrk" and not shutil.which("wrk"):
            raise RuntimeError("wrk is not installed: apt-get install wrk (or use --load python)")
        threads = args.threads or 1
        load = Load(kind, args.connections, threads, work, procs)
        results: list[Result] = []

        # Each leads its own process group.
        group_of = {
            full_port: full_proc.pid,
            bare_port: bare_proc.pid,
            off_port: off_proc.pid,
            ops_off_port: ops_off_proc.pid,
        }
        if plain_proc is not None:
            group_of[plain_port] = plain_proc.pid

        def measure(target: Target, label: str, tenants: int, seconds: int | None = None) -> Result:
            pgids = {group_of[target.port]}
            result = load.run(
                target, seconds or plan.run_s, label, tenants, cpu=lambda: cpu_snapshot(pgids, db_name)
            )
            results.append(result)
            say(f"  {result.row()}")
            return result

        def warm(target: Target, label: str) -> None:
            say(f"  warm-up {label} ({plan.warmup_s} s)")
            load.run(target, plan.warmup_s, f"warmup {label}", 0)

        say(f"load: {load.describe()}")
        say(HEADER)
        ceiling = measure(ping, "ceiling: trivial /ping (bare server)", setup["tenants"], plan.ping_s)

        # 4. Full vs policy off vs bare, alternately, with BASE_TENANTS tenants present.
        warm(full, "full stack")
        warm(persisted, "persisted")
        warm(off, "policy off")
        warm(bare, "bare")
        if args.plain:
            warm(plain, "plain path")
        warm(ops_off, "metrics and rate limits off")
        full_10: list[Result] = []
        persisted_10: list[Result] = []
        off_10: list[Result] = []
        bare_10: list[Result] = []
        plain_10: list[Result] = []
        ops_off_10: list[Result] = []
        for i in range(plan.pairs):
            full_10.append(measure(full, f"full_stack #{i + 1}", setup["tenants"]))
            persisted_10.append(measure(persisted, f"persisted (APQ hash) #{i + 1}", setup["tenants"]))
            off_10.append(measure(off, f"policy_off #{i + 1}", setup["tenants"]))
            bare_10.append(measure(bare, f"bare #{i + 1}", setup["tenants"]))
            if args.plain:
                plain_10.append(measure(plain, f"plain path (fast paths off) #{i + 1}", setup["tenants"]))
            ops_off_10.append(measure(ops_off, f"ops_off #{i + 1}", setup["tenants"]))

        profile: dict[str, Any] | None = None
        spread_profile: dict[str, Any] | None = None
        if args.profile:
            profile = profile_run(args, load, full, full_proc, plan, Path(args.profile), "full_stack")

        # 5. Provisioning (timed one by one), then up to N tenants (bulk, in parallel processes).
        say(f"provisioning {PROVISION_SAMPLES} tenants one by one ...")
        prov_times = sorted(asyncio.run(provision_samples(settings, PROVISION_SAMPLES)))
        have = setup["tenants"] + len(prov_times)
        # Keep enough time for what follows: warm-ups, runs, shutdown and the drop.
        later_runs = 3 + (0 if args.no_spread else 1)
        reserve = later_runs * (plan.run_s + 1) + (2 if args.no_spread else 1) * plan.warmup_s + 10
        stop_at = time.time() + (hard_end - reserve - time.monotonic())
        want = max(0, plan.tenants - have)
        say(f"creating {want} more tenants ({args.provision_workers} processes) ...")
        started = time.perf_counter()
        bulk_times = bulk_create(
            settings, [f"bulk-{i:05d}" for i in range(want)], args.provision_workers, stop_at, procs
        )
        bulk_s = time.perf_counter() - started
        seed_s = asyncio.run(seed_all(settings))
        slugs = asyncio.run(tenant_slugs(settings))
        many = len(slugs)
        if many < plan.tenants:
            say(f"  stopped at {many} tenants to stay within the {plan.limit_s} s limit")
        prov = {
            "provision_ms": {
                "n": len(prov_times),
                "median": statistics.median(prov_times) * 1000,
                "p90": percentile(prov_times, 90) * 1000,
                "min": prov_times[0] * 1000,
                "max": prov_times[-1] * 1000,
            },
            "bulk": {
                "created": len(bulk_times),
                "processes": args.provision_workers,
                "seconds": bulk_s,
                "tenants_per_s": len(bulk_times) / bulk_s if bulk_s else 0.0,
                "median_ms": statistics.median(bulk_times) * 1000 if bulk_times else 0.0,
                "p90_ms": percentile(sorted(bulk_times), 90) * 1000 if bulk_times else 0.0,
                "seed_audit_rows_s": seed_s,
            },
            "tenants": many,
        }

        # 6. The full stack again with many tenants (and bare once, as a drift check).
        spread = Target(
            full_port,
            "/graphql",
            body,
            [{**common, "Authorization": f"Bearer {root_token}", "X-Tenant-ID": slug} for slug in slugs],
        )
        warm(full, "full stack")
        full_many = [measure(full, f"full_stack {many} tenants #1", many)]
        bare_many = measure(bare, f"bare {many} tenants (drift check)", many)
        full_many.append(measure(full, f"full_stack {many} tenants #2", many))
        spread_res: Result | None = None
        if not args.no_spread:
            warm(spread, "spread")
            spread_res = measure(spread, f"full_stack spread over {many}", many)
            if args.profile:
                spread_profile = profile_run(
                    args, load, spread, full_proc, plan, Path(args.profile + ".spread"), f"spread over {many}"
                )

        report.update(
            summarize(
                out,
                args=args,
                plan=plan,
                servers_from=servers_from,
                load_desc=load.describe(),
                setup=setup,
                prov=prov,
                ceiling=ceiling,
                results=results,
                full_10=full_10,
                persisted_10=persisted_10,
                plain_10=plain_10,
                off_10=off_10,
                bare_10=bare_10,
                ops_off_10=ops_off_10,
                tracing_cost=tracing_cost,
                decisions=decisions,
                full_many=full_many,
                bare_many=bare_many,
                spread=spread_res,
                profile=profile,
                spread_profile=spread_profile,
                elapsed=time.monotonic() - t0,
            )
        )
        if args.json:
            Path(args.json).write_text(json.dumps(report, indent=2, default=str) + "\n")
            say(f"wrote {args.json}")
        return report
    finally:
        signal.alarm(0)
        with contextlib.suppress(BaseException):
            procs.stop_all()
        if redis_url:
            with contextlib.suppress(BaseException):
                asyncio.run(drop_redis_keys(redis_url, redis_prefix))
        if db_created:
            try:
                asyncio.run(drop_database(admin_url, db_name))
            except BaseException as exc:
                say(f"could not drop database {db_name}: {exc!r}")
        with contextlib.suppress(BaseException):
            stop_servers()
        if not args.keep_logs:
            shutil.rmtree(work, ignore_errors=True)
        else:
            say(f"logs kept in {work}")


def profile_run(
    args: argparse.Namespace,
    load: Load,
    target: Target,
    full_proc: subprocess.Popen[bytes],
    plan: Plan,
    raw: Path,
    label: str,
) -> dict[str, Any] | None:
    """One extra (unreported) full-stack run with py-spy sampling the server."""
    spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if not Path(spy).exists():
        say("py-spy not found: .venv/bin/pip install py-spy (profile skipped)")
        return None
    seconds = plan.run_s
    say(f"profiling {label} for {seconds} s (py-spy, raw output -> {raw}) ...")
    gen = load.start(target, seconds + 2)
    time.sleep(1.0)
    argv = [spy, "record", "--pid", str(full_proc.pid), "--rate", "250", "--duration", str(seconds),
            "--format", "raw", "--nonblocking", "-o", str(raw)]  # fmt: skip
    if args.workers > 1:
        argv.append("--subprocesses")
    spied = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 30)
    result = load.finish(gen, f"profiled {label} (not counted)", 0, seconds + 2)
    say(f"  {result.row()}")
    if spied.returncode != 0 or not raw.exists():
        say(f"py-spy failed: {spied.stderr.strip()[-500:]}")
        return None
    summary = summarize_profile(raw)
    summary["raw_file"] = str(raw)
    summary["rps_while_profiled"] = result.rps
    return summary


def ratio(a: float, b: float) -> float:
    return a / b if b else float("nan")


def summarize(out: Callable[[str], None], **k: Any) -> dict[str, Any]:
    args, plan = k["args"], k["plan"]
    results: list[Result] = k["results"]
    f10, b10, o10 = best(k["full_10"]), best(k["bare_10"]), best(k["off_10"])
    p10 = best(k["persisted_10"])
    plain10 = best(k["plain_10"]) if k["plain_10"] else None
    dec: dict[str, Any] = k["decisions"]
    fmany = best(k["full_many"])
    bmany: Result = k["bare_many"]
    spread: Result | None = k["spread"]
    prov, setup, ceiling = k["prov"], k["setup"], k["ceiling"]
    n10, nmany = setup["tenants"], prov["tenants"]

    out("")
    out("UDS GraphQL read benchmark")
    out(
        f"  machine: {os.cpu_count()} CPUs, Python {platform.python_version()}, servers: {k['servers_from']},"
        f" UDS_MODE={args.mode}"
    )
    out(
        f"  servers: uvicorn --loop uvloop --http httptools --workers {args.workers} --no-access-log,"
        " DB pools of 10 (UDS: plans on an asyncpg pool of 10, other reads a SQLAlchemy pool of 10,"
        " writes 10 + 10 overflow; bare: asyncpg pool of 10)"
    )
    out(f"  load: {k['load_desc']}; {plan.run_s} s per run, {plan.warmup_s} s warm-up, runs alternate")
    out(f"  request: POST /graphql {QUERY}")
    out("")
    out(HEADER)
    for r in results:
        out(r.row())
    out("")
    out(
        f"best run of each (by req/s){'':<8} {'tenants':>7} {'req/s':>9} {'p50 ms':>8} {'p90 ms':>8}"
        f" {'p99 ms':>8} {'srv CPU ms/req':>14} {'pg CPU ms/req':>13}"
    )
    for name, r in (
        ("full_stack", f10),
        ("persisted (APQ hash)", p10),
        *((("plain path (fast paths off)", plain10),) if plain10 else ()),
        ("policy_off", o10),
        ("bare", b10),
        ("full_stack", fmany),
        ("bare (drift check)", bmany),
        *((("full_stack spread", spread),) if spread else ()),
    ):
        out(
            f"  {name:<32} {r.tenants:>7} {r.rps:>9.0f} {r.p50_ms:>8.2f} {r.p90_ms:>8.2f} {r.p99_ms:>8.2f}"
            f" {r.server_cpu_ms:>14.3f} {r.db_cpu_ms:>13.3f}"
        )
    out(
        f"  load-generator check: trivial /ping on the bare server = {ceiling.rps:.0f} req/s"
        f" ({ratio(ceiling.rps, b10.rps):.1f}x the bare handler, so the generator is not the limit)"
    )
    out("")
    out("policy cost: full stack (embedded engine, decision cache on) vs. policy checks off,")
    out(f"  same load, runs alternate; best run of each, {n10} tenants")
    for name, r in (("full_stack", f10), ("policy_off", o10)):
        out(
            f"  {name:<12} {r.rps:>9.0f} req/s   p50 {r.p50_ms:>6.2f} ms   p99 {r.p99_ms:>6.2f} ms"
            f"   server CPU {r.server_cpu_ms:.3f} ms/request"
        )
    out(
        f"  server CPU per request, full_stack - policy_off: {f10.server_cpu_ms - o10.server_cpu_ms:+.3f} ms"
        f" ({100 * (1 - ratio(o10.server_cpu_ms, f10.server_cpu_ms)):+.1f} % of the full stack's;"
        " compare with the run-to-run spread in the table)"
    )
    out(
        f"per-decision: uncached {dec['uncached_us']:.1f} us, cached {dec['decide_hit_us']:.1f} us,"
        f" ratio cached/uncached = {dec['ratio_cached_over_uncached']:.3f}"
        f"  (bench/policy_decisions.py{' --quick' if args.quick else ''}: mix of"
        f" {dec['workload_inputs']} inputs; cache miss {dec['decide_miss_us']:.1f} us,"
        f" checks off {dec['policy_off_us']:.1f} us)"
    )
    oo10, tc = best(k["ops_off_10"]), k["tracing_cost"]
    out("")
    out("observability and limits cost: full stack (metrics on, rate limits on, tracing off) vs.")
    out(f"  the same with UDS_METRICS=off UDS_RATE_LIMITS=off; runs alternate; best of each, {n10} tenants")
    for name, r in (("full_stack", f10), ("ops_off", oo10)):
        out(
            f"  {name:<12} {r.rps:>9.0f} req/s   p50 {r.p50_ms:>6.2f} ms   p99 {r.p99_ms:>6.2f} ms"
            f"   server CPU {r.server_cpu_ms:.3f} ms/request"
        )
    out(
        f"  cost: {100 * (1 - ratio(f10.rps, oo10.rps)):+.1f} % req/s,"
        f" {f10.server_cpu_ms - oo10.server_cpu_ms:+.3f} ms server CPU per request (target: <= 5 % req/s)"
    )
    calls = ", ".join(f"{n} x{c} ({tc['ns_per_call'][n]:.0f} ns)" for n, c in tc["calls"].items() if c)
    out(
        f"  tracing off: {calls} per request = {tc['us_per_request']:.2f} us ="
        f" {100 * tc['us_per_request'] / 1000 / f10.server_cpu_ms:.3f} % of the full stack's server CPU"
        " per request (target: < 2 %)"
    )
    pm = prov["provision_ms"]
    bulk = prov["bulk"]
    out("")
    out(
        f"tenant provisioning (create_tenant, own transaction each, n={pm['n']}):"
        f" median {pm['median']:.1f} ms, p90 {pm['p90']:.1f} ms,"
        f" min {pm['min']:.1f} ms, max {pm['max']:.1f} ms"
    )
    out(
        f"bulk: {bulk['created']} more tenants in {bulk['seconds']:.1f} s with {bulk['processes']} processes"
        f" ({bulk['tenants_per_s']:.0f} tenants/s; per tenant median {bulk['median_ms']:.1f} ms,"
        f" p90 {bulk['p90_ms']:.1f} ms) -> {nmany} tenants;"
        f" {AUDIT_ROWS} audit rows each in {bulk['seed_audit_rows_s']:.1f} s"
    )
    errors = sum(r.errors for r in results)
    if errors:
        out(f"WARNING: {errors} failed responses during measured runs (non-200 or GraphQL errors)")
    out(f"total time {k['elapsed']:.0f} s")
    out("")
    out("targets (issue #13; ratios measured in this run)")
    targets = [
        (
            "full stack / bare, req/s (any client)",
            ratio(f10.rps, b10.rps),
            ">= 0.4",
            ratio(f10.rps, b10.rps) >= 0.4,
        ),
        (
            "persisted operation / bare, req/s",
            ratio(p10.rps, b10.rps),
            ">= 0.6",
            ratio(p10.rps, b10.rps) >= 0.6,
        ),
        (
            "server CPU per request, full stack (ms)",
            f10.server_cpu_ms,
            f"<= 0.6 (bare here: {b10.server_cpu_ms:.3f})",
            f10.server_cpu_ms <= 0.6,
        ),
        ("server CPU per request, persisted (ms)", p10.server_cpu_ms, "", None),
        (
            "server CPU, full stack / bare",
            ratio(f10.server_cpu_ms, b10.server_cpu_ms),
            "<= 2.5 (0.6/0.24)",
            None,
        ),
    ]
    if plain10:
        targets.append(
            ("plain path (fast paths off) / bare, req/s", ratio(plain10.rps, b10.rps), "was 0.11", None)
        )
    for name, value, target, met in targets:
        verdict = "" if met is None else ("met" if met else "NOT met")
        out(f"  {name:<44} {value:>9.3f}   target {target:<26} {verdict}")
    ratios = {
        "full_stack/bare": ratio(f10.rps, b10.rps),
        "persisted/bare": ratio(p10.rps, b10.rps),
        "persisted/bare server_cpu_per_request": ratio(p10.server_cpu_ms, b10.server_cpu_ms),
        "full_stack/bare p50_latency": ratio(f10.p50_ms, b10.p50_ms),
        "full_stack/bare p99_latency": ratio(f10.p99_ms, b10.p99_ms),
        "full_stack/bare server_cpu_per_request": ratio(f10.server_cpu_ms, b10.server_cpu_ms),
        "full_stack/bare db_cpu_per_request": ratio(f10.db_cpu_ms, b10.db_cpu_ms),
        "full_stack/policy_off": ratio(f10.rps, o10.rps),
        "full_stack/policy_off p50_latency": ratio(f10.p50_ms, o10.p50_ms),
        "full_stack/policy_off p99_latency": ratio(f10.p99_ms, o10.p99_ms),
        "full_stack/policy_off server_cpu_per_request": ratio(f10.server_cpu_ms, o10.server_cpu_ms),
        "full_stack/ops_off": ratio(f10.rps, oo10.rps),
        "full_stack/ops_off server_cpu_per_request": ratio(f10.server_cpu_ms, oo10.server_cpu_ms),
        "tracing_off_hooks/full_stack server_cpu": ratio(tc["us_per_request"] / 1000, f10.server_cpu_ms),
        f"tenants_{nmany}/tenants_{n10} req_per_s": ratio(fmany.rps, f10.rps),
        f"tenants_{nmany}/tenants_{n10} p50_latency": ratio(fmany.p50_ms, f10.p50_ms),
        f"tenants_{nmany}/tenants_{n10} p99_latency": ratio(fmany.p99_ms, f10.p99_ms),
        f"tenants_{nmany}/tenants_{n10} server_cpu_per_request": ratio(
            fmany.server_cpu_ms, f10.server_cpu_ms
        ),
        f"bare tenants_{nmany}/tenants_{n10} req_per_s (drift check)": ratio(bmany.rps, b10.rps),
    }
    if spread:
        ratios[f"spread_{nmany}/single_tenant req_per_s"] = ratio(spread.rps, fmany.rps)
        ratios[f"spread_{nmany}/single_tenant p50_latency"] = ratio(spread.p50_ms, fmany.p50_ms)
        ratios[f"spread_{nmany}/single_tenant server_cpu_per_request"] = ratio(
            spread.server_cpu_ms, fmany.server_cpu_ms
        )
        ratios[f"spread_{nmany}/single_tenant db_cpu_per_request"] = ratio(spread.db_cpu_ms, fmany.db_cpu_ms)
    if k["profile"]:
        out("")
        print_profile(k["profile"], out, "full stack, one tenant")
    if k.get("spread_profile"):
        out("")
        print_profile(k["spread_profile"], out, f"full stack, spread over {nmany} tenants")
    out("")
    for name, value in ratios.items():
        out(f"ratio {name} = {value:.2f}")
    return {
        "settings": {
            "workers": args.workers,
            "connections": args.connections,
            "mode": args.mode,
            "run_seconds": plan.run_s,
            "load": k["load_desc"],
            "cpus": os.cpu_count(),
        },
        "runs": [asdict(r) for r in results],
        "best": {
            "full_stack": asdict(f10),
            "persisted": asdict(p10),
            **({"plain_path": asdict(plain10)} if plain10 else {}),
            "policy_off": asdict(o10),
            "ops_off": asdict(oo10),
            "bare": asdict(b10),
            "full_stack_many_tenants": asdict(fmany),
            "bare_many_tenants": asdict(bmany),
            **({"full_stack_spread": asdict(spread)} if spread else {}),
        },
        "ceiling_ping": asdict(ceiling),
        "per_decision_us": dec,
        "provisioning_ms": pm,
        "bulk": bulk,
        "tenants": {"base": n10, "many": nmany},
        "ratios": ratios,
        "profile": k["profile"],
        "spread_profile": k.get("spread_profile"),
        "elapsed_s": k["elapsed"],
    }


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--_loadgen"]:
        return loadgen_main(argv[1])
    if argv[:1] == ["--_provision"]:
        return provision_main(argv[1])
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="3 s runs, whole script < 1.2 min")
    parser.add_argument("--workers", type=int, default=1, help="uvicorn processes per server (default 1)")
    parser.add_argument("--connections", type=int, default=DEFAULT_CONNECTIONS, help="concurrent connections")
    parser.add_argument("--threads", type=int, default=0, help="wrk threads (default 1)")
    parser.add_argument("--duration", type=int, default=0, help="seconds per measured run (overrides)")
    parser.add_argument("--tenants", type=int, default=DEFAULT_TENANTS, help="tenants for the 'many' phase")
    parser.add_argument(
        "--provision-workers", type=int, default=2, help="processes for the bulk tenant creation (default 2)"
    )
    parser.add_argument(
        "--full-factory",
        default="uds.app:app_from_env",
        help="uvicorn factory of the full stack (to try a candidate change; PYTHONPATH is passed on)",
    )
    parser.add_argument("--load", choices=("auto", "wrk", "python"), default="auto")
    parser.add_argument("--mode", choices=("prod", "dev"), default="prod", help="UDS_MODE of the full stack")
    parser.add_argument("--no-spread", action="store_true", help="skip the run spread over all tenants")
    parser.add_argument(
        "--plain",
        action="store_true",
        help="also measure a server with the fast paths off (UDS_FAST_PATHS=off)",
    )
    parser.add_argument("--json", metavar="PATH", help="also write the figures as JSON")
    parser.add_argument(
        "--profile",
        metavar="PATH",
        help="py-spy the full stack (extra, unreported runs); raw stacks to PATH (and PATH.spread)",
    )
    parser.add_argument("--keep-logs", action="store_true", help="keep server logs (temp dir)")
    args = parser.parse_args(argv)
    if args.quick:
        args.no_spread = True  # leaves the time for more tenants
    if args.workers < 1 or args.connections < 1:
        parser.error("--workers and --connections must be positive")
    try:
        run(args)
    except KeyboardInterrupt:
        say("interrupted; cleaned up")
        return 130
    except Deadline as exc:
        say(f"aborted: {exc}; cleaned up")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
