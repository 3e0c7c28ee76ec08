"""Benchmark: a job event from the worker's PUBLISH to its subscribers, UDS vs raw Redis.

    .venv/bin/python bench/job_events.py [--events N] [--subscribers N] [--fanout-events N]
                                         [--client-procs K] [--json PATH]

Measures, on 127.0.0.1 only, in one run:

* Latency, one subscriber: from the publish of a job event to its receipt, p50/p99/max,
  (a) raw Redis pub/sub: a redis-py subscriber on a channel (the baseline), and
  (b) UDS: the `jobEvents` subscription over graphql-transport-ws, served by a separate API
      process (`uds serve`): Redis -> the API's event hub -> GraphQL execution -> WebSocket.
  Measured alternately (Redis, UDS, Redis, UDS), and the ratio UDS / Redis.
* Fan-out: one job's events to 1,000 concurrent subscribers of that one API process. Every
  subscriber must receive every event exactly once and in order; latency p50/p99/max, and
  the API process's RSS idle, with all subscriptions open, and at its peak. The same
  fan-out through raw Redis (1,000 pub/sub connections) as the baseline.

The publisher is this process, on the worker's code path: uds.jobs.events.emit (append the
event row and commit) then uds.jobs.events.publish. The publish time is taken just before
PUBLISH and carried in the event's `data`, so latency starts at the publish. Subscribers
run in separate client processes (one clock: the same host). Servers: UDS_DATABASE_URL /
UDS_REDIS_URL if set, else embedded ones. The bench uses a database of its own
(`uds_bench_<random>`), a temporary UDS_DATA_DIR and its own Redis key prefix, all removed
at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import replace
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
ROOT = BENCH_DIR.parent
HOST = "127.0.0.1"
SUBJECT = "bench-editor@uds.bench"
TENANT = "bench-events"
TERMINAL = {"succeeded", "failed", "cancelled"}
SUBSCRIPTION = (
    "subscription($id: ID!) { jobEvents(jobId: $id) { seq type progress phase message data job { status } } }"
)


BENCH_LIMITS = {
    "max_ws_connections_per_member": 10_000,
    "requests_per_second": 1_000_000,
    "request_burst": 10_000_000,
    "member_requests_per_second": 1_000_000,
    "member_request_burst": 10_000_000,
}

def say(message: str = "") -> None:
    print(message, file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def summary(latencies_ms: list[float]) -> dict[str, float]:
    return {
        "n": len(latencies_ms),
        "p50_ms": pct(latencies_ms, 50),
        "p99_ms": pct(latencies_ms, 99),
        "max_ms": max(latencies_ms) if latencies_ms else float("nan"),
        "mean_ms": statistics.fmean(latencies_ms) if latencies_ms else float("nan"),
    }


def raise_fd_limit() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


# --------------------------------------------------------------------------------------
# Client processes: N subscriptions each, over UDS (WebSocket) or raw Redis.
# --------------------------------------------------------------------------------------


async def client_main(config: dict[str, Any]) -> dict[str, Any]:
    """Open the subscriptions, print `ready`, collect until every one has ended."""
    n, mode = int(config["connections"]), config["mode"]
    latencies: list[float] = []
    seqs: list[list[int]] = [[] for _ in range(n)]
    ready = 0
    all_ready = asyncio.Event()

    def mark_ready() -> None:
        nonlocal ready
        ready += 1
        if ready == n:
            all_ready.set()

    async def ws_one(i: int) -> None:
        from websockets.asyncio.client import connect

        async with connect(
            config["url"],
            subprotocols=["graphql-transport-ws"],
            max_queue=None,
            open_timeout=120,  # type: ignore[list-item]
        ) as ws:
            init = {"authorization": f"Bearer {config['token']}", "tenant": config["tenant"]}
            await ws.send(json.dumps({"type": "connection_init", "payload": init}))
            assert json.loads(await ws.recv())["type"] == "connection_ack"
            payload = {"query": SUBSCRIPTION, "variables": {"id": config["job"]}}
            await ws.send(json.dumps({"id": "1", "type": "subscribe", "payload": payload}))
            first = True
            async for raw in ws:
                now = time.time()
                message = json.loads(raw)
                if message["type"] == "complete":
                    return
                if message["type"] != "next":
                    raise RuntimeError(f"unexpected message {message}")
                event = message["payload"]["data"]["jobEvents"]
                if first:  # the replayed `queued` event: the subscription is live
                    first = False
                    mark_ready()
                    continue
                seqs[i].append(event["seq"])
                if "t" in event["data"]:
                    latencies.append((now - event["data"]["t"]) * 1000)

    async def redis_one(i: int) -> None:
        from redis.asyncio import Redis

        redis = Redis.from_url(config["redis_url"])
        pubsub = redis.pubsub()
        try:
            await pubsub.subscribe(config["channel"])
            while True:
                message = await pubsub.get_message(timeout=30)
                if message is None:
                    raise RuntimeError("no message for 30 s")
                if message["type"] == "subscribe":
                    mark_ready()
                    continue
                now = time.time()
                event = json.loads(message["data"])
                seqs[i].append(event["seq"])
                if "t" in event["data"]:
                    latencies.append((now - event["data"]["t"]) * 1000)
                if event["type"] in TERMINAL:
                    return
        finally:
            await pubsub.aclose()
            await redis.aclose()

    one = ws_one if mode == "ws" else redis_one
    # Started and imported: wait for the driver's "go", so the set-up time it measures is
    # the subscriptions' and not this interpreter's start.
    print("started", flush=True)
    await asyncio.to_thread(sys.stdin.readline)
    tasks = []
    for i in range(n):  # connect in waves, as clients arriving
        tasks.append(asyncio.create_task(one(i)))
        if i % 50 == 49:
            await asyncio.sleep(0.05)
    waiter = asyncio.create_task(all_ready.wait())
    done, _ = await asyncio.wait([waiter, *tasks], return_when=asyncio.FIRST_COMPLETED)
    if waiter not in done:
        for task in done:
            task.result()  # raises the connection's error
    print("ready", flush=True)
    await asyncio.gather(*tasks)
    return {"latencies": latencies, "seqs": seqs}


# --------------------------------------------------------------------------------------
# The bench driver
# --------------------------------------------------------------------------------------


class Clients:
    """K client processes holding `total` subscriptions between them."""

    def __init__(self, procs: int, total: int, base: dict[str, Any], work: Path) -> None:
        self.procs: list[subprocess.Popen[bytes]] = []
        self.outputs: list[Path] = []
        self.logs: list[Path] = []
        share = [total // procs + (1 if i < total % procs else 0) for i in range(procs)]
        for i, n in enumerate(x for x in share if x):
            out = work / f"client-{uuid.uuid4().hex[:6]}-{i}.json"
            config = {**base, "connections": n, "out": str(out)}
            self.outputs.append(out)
            self.logs.append(work / f"client-{uuid.uuid4().hex[:6]}-{i}.log")
            with self.logs[-1].open("ab") as stderr:
                self.procs.append(
                    subprocess.Popen(
                        [sys.executable, __file__, "--client", json.dumps(config)],
                        stdin=subprocess.PIPE,
                        stdout=subprocess.PIPE,
                        stderr=stderr,
                        preexec_fn=raise_fd_limit,
                    )
                )

    def wait_line(self, word: bytes, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        for proc in self.procs:
            assert proc.stdout is not None
            while True:
                line = proc.stdout.readline()
                if line.strip() == word:
                    break
                if not line and proc.poll() is not None:
                    raise RuntimeError(f"a client process failed (exit {proc.returncode}):\n{self.tail()}")
                if time.monotonic() > deadline:
                    raise RuntimeError(f"clients did not say {word!r} in time")

    def go(self) -> None:
        for proc in self.procs:
            assert proc.stdin is not None
            proc.stdin.write(b"go\n")
            proc.stdin.flush()

    def results(self, timeout: float = 120) -> tuple[list[float], list[list[int]]]:
        latencies: list[float] = []
        seqs: list[list[int]] = []
        for proc, out in zip(self.procs, self.outputs, strict=True):
            proc.wait(timeout=timeout)
            if proc.returncode != 0:
                raise RuntimeError(f"a client process failed (exit {proc.returncode}):\n{self.tail()}")
            data = json.loads(out.read_text())
            latencies += data["latencies"]
            seqs += data["seqs"]
        return latencies, seqs

    def tail(self) -> str:
        return "\n".join(log.read_text()[-3000:] for log in self.logs if log.exists())

    def kill(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()


def start_api(port: int, env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    """`uds serve` (one uvicorn process), its log in `log`."""
    with log.open("ab") as stderr:
        return subprocess.Popen(
            [sys.executable, "-m", "uds.cli", "serve", "--host", HOST, "--port", str(port)],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
            preexec_fn=raise_fd_limit,
        )


def start_profiler(pid: int, out: Path) -> subprocess.Popen[bytes]:
    """py-spy sampling `pid` into a raw (collapsed stacks) file, until SIGINT."""
    spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    return subprocess.Popen(
        [spy, "record", "-p", str(pid), "-o", str(out), "-f", "raw", "-r", "200"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


async def run(args: argparse.Namespace) -> dict[str, Any]:
    import asyncpg
    import httpx
    import psutil
    from sqlalchemy import make_url

    from uds.auth.keys import SigningKey
    from uds.datasources.params import params_from_url
    from uds.db import make_engine, transaction
    from uds.jobs import service
    from uds.jobs.events import emit, publish
    from uds.jobs.keys import JobKeys
    from uds.jobs.models import SUCCEEDED
    from uds.runtime import migrate_core
    from uds.services import Services
    from uds.settings import Settings
    from uds.tenants import service as tenants

    work = Path(tempfile.mkdtemp(prefix="uds-bench-events-"))
    data_dir = work / "data"
    stop_embedded = None
    env_db, env_redis = os.environ.get("UDS_DATABASE_URL"), os.environ.get("UDS_REDIS_URL")
    if env_db and env_redis:
        admin_url, redis_url = env_db, env_redis
    else:
        from uds.embedded import start_embedded

        embedded = start_embedded(work / "servers", progress=say)
        admin_url, redis_url, stop_embedded = embedded.database_url, embedded.redis_url, embedded.stop
    admin = make_url(admin_url)
    db_name = f"uds_bench_{uuid.uuid4().hex[:8]}"
    connect_args = replace(params_from_url(admin_url), sslmode="disable").asyncpg_kwargs()
    conn = await asyncpg.connect(**connect_args)
    await conn.execute(f'create database "{db_name}"')
    await conn.close()
    prefix = f"uds-bench-{uuid.uuid4().hex[:8]}:"
    settings = Settings(
        database_url=admin.set(database=db_name).render_as_string(hide_password=False),
        redis_url=redis_url,
        data_dir=data_dir,
        redis_prefix=prefix,
    )
    api: subprocess.Popen[bytes] | None = None
    services: Services | None = None
    clients: list[Clients] = []
    results: dict[str, Any] = {
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
        },
        "servers": "environment" if stop_embedded is None else "embedded",
    }
    try:
        say("setting up: database, tenant, API process")
        engine = make_engine(settings, pool_size=2)
        await migrate_core(engine)
        async with transaction(engine) as tx:
            session = await tx.core()
            await tenants.create_tenant(session, slug=TENANT, name="Bench", actor="bench")
            await tenants.set_member(session, slug=TENANT, subject=SUBJECT, role="EDITOR", actor="bench")
            # One member holds every subscriber's socket here: lift the plan's per-member
            # socket cap and the rate limits (docs/limits.md), which would refuse the fan-out.
            await tenants.set_limits(session, slug=TENANT, overrides=BENCH_LIMITS, actor="bench")
        await engine.dispose()
        token = SigningKey.load_or_create(data_dir).issue(
            SUBJECT, issuer=settings.own_issuer, audience=settings.audience, ttl=3600
        )
        port = free_port()
        env = {
            **os.environ,
            "UDS_DATABASE_URL": settings.database_url or "",
            "UDS_REDIS_URL": redis_url,
            "UDS_DATA_DIR": str(data_dir),
            "UDS_REDIS_PREFIX": prefix,
            "UDS_DB_POOL_SIZE": "20",
        }
        api = start_api(port, env, work / "api.log")
        deadline = time.monotonic() + 60
        async with httpx.AsyncClient() as http:
            while True:
                with contextlib.suppress(httpx.HTTPError):
                    if (await http.get(f"http://{HOST}:{port}/readyz")).status_code == 200:
                        break
                if api.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"the API did not start; see {work / 'api.log'}")
                await asyncio.sleep(0.2)
        api_proc = psutil.Process(api.pid)

        def api_cpu() -> float:
            times = api_proc.cpu_times()
            return float(times.user + times.system)

        services = await Services.start(replace(settings, db_pool_size=2))
        keys = JobKeys(prefix)

        async def new_job() -> uuid.UUID:
            async with transaction(services.engine, TENANT) as tx:
                state = await service.start_job(
                    await tx.tenant(), services=services, kind="tenant.stats", params={}, created_by=SUBJECT
                )
            return state.id  # no worker runs: this process plays the worker

        async def publish_events(job_id: uuid.UUID, count: int, gap: float, raw_channel: str | None) -> None:
            """Append and publish `count` progress events, then the terminal one."""
            for i in range(1, count + 2):
                async with transaction(services.engine, TENANT) as tx:
                    session = await tx.tenant()
                    if i <= count:
                        record = await emit(
                            session,
                            job_id,
                            key=f"bench:{i}",
                            type="progress",
                            progress=i / (count + 1),
                            phase="bench",
                            message=f"event {i} of {count}",
                            data={"i": i},
                        )
                    else:
                        record = await service.finish(session, job_id, status=SUCCEEDED)
                assert record is not None
                record.data["t"] = time.time()
                if raw_channel is None:
                    await publish(services.events, keys, TENANT, record)
                else:
                    await services.events.publish(raw_channel, record.to_json())
                await asyncio.sleep(gap)

        def client_config(mode: str, job_id: uuid.UUID, channel: str) -> dict[str, Any]:
            return {
                "mode": mode,
                "url": f"ws://{HOST}:{port}/graphql",
                "token": token,
                "tenant": TENANT,
                "job": str(job_id),
                "redis_url": redis_url,
                "channel": channel,
            }

        async def measure(
            mode: str,
            subscribers: int,
            procs: int,
            count: int,
            gap: float,
            profile: Path | None = None,
            profile_setup: Path | None = None,
        ) -> dict[str, Any]:
            job_id = await new_job()
            channel = f"{prefix}raw:{job_id}"
            group = Clients(procs, subscribers, client_config(mode, job_id, channel), work)
            clients.append(group)
            await asyncio.to_thread(group.wait_line, b"started")
            setup_spy = start_profiler(api_proc.pid, profile_setup) if profile_setup else None
            setup, cpu = time.monotonic(), api_cpu()
            group.go()
            await asyncio.to_thread(group.wait_line, b"ready")
            setup, setup_cpu = time.monotonic() - setup, api_cpu() - cpu
            if setup_spy is not None:
                setup_spy.send_signal(signal.SIGINT)
                await asyncio.to_thread(setup_spy.wait)
            rss_open = api_proc.memory_info().rss
            peak = rss_open
            sampling = True

            async def sample() -> None:
                nonlocal peak
                while sampling:
                    peak = max(peak, api_proc.memory_info().rss)
                    await asyncio.sleep(0.05)

            sampler = asyncio.create_task(sample())
            spy = start_profiler(api_proc.pid, profile) if profile else None  # the events only
            started, cpu = time.monotonic(), api_cpu()
            await publish_events(job_id, count, gap, channel if mode == "redis" else None)
            latencies, seqs = await asyncio.to_thread(group.results)
            events_cpu = api_cpu() - cpu  # with the clients' ends (close) included
            if spy is not None:
                spy.send_signal(signal.SIGINT)
                await asyncio.to_thread(spy.wait)
            took = time.monotonic() - started
            sampling = False
            await sampler
            expected = list(range(2, count + 3)) if mode == "ws" else None
            complete = sum(1 for s in seqs if (s == expected if expected else len(s) == count + 1))
            return {
                "mode": "UDS jobEvents over WebSocket" if mode == "ws" else "raw Redis pub/sub",
                "subscribers": subscribers,
                "events": count + 1,
                "all_received_in_order": complete == subscribers,
                "subscribers_complete": complete,
                "latency": summary(latencies),
                "seconds": took,
                "setup_seconds": setup,
                # The API process's CPU (user + system), per subscription set up and per
                # event delivered to one subscriber: less sensitive to a busy machine than
                # wall time. Zero for raw Redis (the API does nothing there).
                "api_cpu_ms_per_setup": setup_cpu * 1000 / subscribers,
                "api_cpu_ms_per_delivery": events_cpu * 1000 / (subscribers * (count + 1)),
                "api_rss_open_mb": rss_open / 2**20,
                "api_rss_peak_mb": peak / 2**20,
                "_samples": latencies,
            }

        say(f"latency, 1 subscriber: {args.events} events x 2 rounds per mode, alternating")
        await measure("ws", 1, 1, 30, 0.005)  # warm-up (imports, caches, prepared statements)
        await measure("redis", 1, 1, 30, 0.005)
        rounds: dict[str, list[dict[str, Any]]] = {"redis": [], "ws": []}
        for mode in ("redis", "ws", "redis", "ws"):
            rounds[mode].append(await measure(mode, 1, 1, args.events, args.gap))
            say(f"  {mode}: p50 {rounds[mode][-1]['latency']['p50_ms']:.2f} ms")
        latency = {}
        for mode, runs in rounds.items():
            samples = [x for r in runs for x in r["_samples"]]
            latency[mode] = {
                **summary(samples),
                "all_received_in_order": all(r["all_received_in_order"] for r in runs),
            }
        results["latency_one_subscriber"] = latency

        say(f"fan-out: {args.subscribers} subscribers x {args.fanout_events} events")
        fan_redis = await measure(
            "redis", args.subscribers, args.client_procs, args.fanout_events, args.fanout_gap
        )
        fr = fan_redis
        say(f"  redis: p99 {fr['latency']['p99_ms']:.1f} ms, set up in {fr['setup_seconds']:.1f} s")
        rss_idle = api_proc.memory_info().rss
        fan_ws = await measure(
            "ws",
            args.subscribers,
            args.client_procs,
            args.fanout_events,
            args.fanout_gap,
            profile=args.profile,
            profile_setup=args.profile_setup,
        )
        say(f"  ws: p99 {fan_ws['latency']['p99_ms']:.1f} ms (set up in {fan_ws['setup_seconds']:.1f} s)")
        for r in (fan_redis, fan_ws):
            r.pop("_samples")
        results["fanout"] = {"redis": fan_redis, "ws": fan_ws, "api_rss_idle_mb": rss_idle / 2**20}
        return results
    finally:
        for group in clients:
            group.kill()
        if services is not None:
            await _clean_redis(services, prefix)
            await services.close()
        if api is not None and api.poll() is None:
            api.send_signal(signal.SIGTERM)
            try:
                api.wait(timeout=20)
            except subprocess.TimeoutExpired:
                api.kill()
        with contextlib.suppress(Exception):
            conn = await asyncpg.connect(**connect_args)
            await conn.execute(f'drop database if exists "{db_name}" with (force)')
            await conn.close()
        if stop_embedded is not None:
            stop_embedded()
        shutil.rmtree(work, ignore_errors=True)


async def _clean_redis(services: Any, prefix: str) -> None:
    from uds.jobs.keys import JobKeys

    redis = services.redis
    ids = [i.decode() for i in await redis.zrange(JobKeys(prefix).queue, 0, -1)]
    doomed = [k for i in ids for k in (JobKeys.arq_job(i), JobKeys.arq_in_progress(i), f"arq:retry:{i}")]
    doomed += [k async for k in redis.scan_iter(match=f"{prefix}*")]
    for start in range(0, len(doomed), 500):
        await redis.delete(*doomed[start : start + 500])


def report(results: dict[str, Any]) -> None:
    lat = results["latency_one_subscriber"]
    r, w = lat["redis"], lat["ws"]
    print(f"machine: {results['machine']['cpus']} CPUs, Python {results['machine']['python']}; servers: "
          f"{results['servers']}")  # fmt: skip
    print()
    print("Latency, publish -> receipt, one subscriber")
    print(f"  {'':34} {'n':>6} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8}  in order")
    for label, s in (("raw Redis pub/sub (baseline)", r), ("UDS jobEvents over WebSocket", w)):
        print(f"  {label:34} {s['n']:>6} {s['p50_ms']:>8.2f} {s['p99_ms']:>8.2f} {s['max_ms']:>8.2f}  "
              f"{s['all_received_in_order']}")  # fmt: skip
    print(f"  ratio UDS / Redis: p50 {w['p50_ms'] / r['p50_ms']:.1f}x, p99 {w['p99_ms'] / r['p99_ms']:.1f}x")
    fan = results["fanout"]
    print()
    print(f"Fan-out: one job's events to {fan['ws']['subscribers']} subscribers of one API process")
    print(f"  {'':34} {'events':>6} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8}  all got all, in order")
    for label, key in (("raw Redis pub/sub (baseline)", "redis"), ("UDS jobEvents over WebSocket", "ws")):
        f = fan[key]
        s = f["latency"]
        print(f"  {label:34} {f['events']:>6} {s['p50_ms']:>8.1f} {s['p99_ms']:>8.1f} {s['max_ms']:>8.1f}  "
              f"{f['all_received_in_order']} ({f['subscribers_complete']}/{f['subscribers']})")  # fmt: skip
    ws, rd = fan["ws"]["latency"], fan["redis"]["latency"]
    print(
        f"  ratio UDS / Redis: p50 {ws['p50_ms'] / rd['p50_ms']:.1f}x, p99 {ws['p99_ms'] / rd['p99_ms']:.1f}x"
    )
    opened, peak = fan["ws"]["api_rss_open_mb"], fan["ws"]["api_rss_peak_mb"]
    n = fan["ws"]["subscribers"]
    print(f"  API process RSS: idle {fan['api_rss_idle_mb']:.0f} MB, with {n} "
          f"subscriptions open {opened:.0f} MB, peak {peak:.0f} MB")  # fmt: skip
    per_kb = (opened - fan["api_rss_idle_mb"]) * 1024 / n if n else float("nan")
    print(f"  memory per open subscription: {per_kb:.0f} KB (RSS with them open minus idle, / {n})")
    print(f"  set-up of {n} subscriptions: UDS {fan['ws']['setup_seconds']:.2f} s, "
          f"raw Redis {fan['redis']['setup_seconds']:.2f} s (from the clients' go to every first event)")
    print(f"  API process CPU: {fan['ws']['api_cpu_ms_per_setup']:.3f} ms per subscription set up "
          f"(connect, init, subscribe, first event), {fan['ws']['api_cpu_ms_per_delivery'] * 1000:.0f} us "
          "per event delivered to one subscriber")  # fmt: skip
    print()
    print("targets (issue #13; measured in this run)")
    p99 = ws["p99_ms"] / rd["p99_ms"]
    setup = fan["ws"]["setup_seconds"]
    rows = [
        (f"{n} subscribers, publish -> receipt p99, UDS / Redis", p99, "<= 2.0", p99 <= 2.0),
        (f"set-up of {n} subscriptions (s)", setup, "<= 2", setup <= 2),
        (f"API RSS with {n} subscriptions (MB)", opened, "<= 200", opened <= 200),
    ]
    for name, value, target, met in rows:
        print(f"  {name:<52} {value:>8.2f}   target {target:<8} {'met' if met else 'NOT met'}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=300, help="events per latency round (default 300)")
    parser.add_argument("--gap", type=float, default=0.01, help="seconds between latency events")
    parser.add_argument("--subscribers", type=int, default=1000)
    parser.add_argument("--fanout-events", type=int, default=20)
    parser.add_argument("--fanout-gap", type=float, default=0.5, help="seconds between fan-out events")
    parser.add_argument("--client-procs", type=int, default=4)
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument(
        "--profile-setup", type=Path, help="py-spy raw profile of the API during the set-up"
    )
    parser.add_argument("--profile", type=Path, help="py-spy raw profile of the API during the UDS fan-out")
    parser.add_argument("--client", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.client:
        config = json.loads(args.client)
        Path(config["out"]).write_text(json.dumps(asyncio.run(client_main(config))))
        return 0
    sys.path.insert(0, str(ROOT / "src"))
    results = asyncio.run(run(args))
    report(results)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
