"""Benchmark: what the MCP bridge adds to a GraphQL operation, and to a job's progress.

    .venv/bin/python bench/mcp_bridge.py [--calls N] [--rounds R] [--events N] [--json PATH]

Measures, on 127.0.0.1 only, in one run, against one API process (`uds serve`):

* Tool-call overhead. The same operation (`GetJob` from uds/mcp/operations.graphql, a
  job of the bench tenant) made N times in a row, one at a time, three ways:
  (a) GraphQL over HTTP: `POST /graphql` with httpx on a keep-alive connection (baseline),
  (b) MCP over streamable HTTP: the SDK's `Client` calling the `get_job` tool at `POST /mcp`
      (2026-07-28 mode: one HTTP request per call, executed in process),
  (c) MCP over stdio: `uds mcp --transport stdio` as a child process (the SDK's client on
      its stdin/stdout), which makes the same GraphQL request to the API.
  Alternated a, b, c for R rounds; the better round of each is reported, with the ratios
  b/a and c/a of the median and p99 latency (target: b/a <= 1.5).
* Progress latency. This process plays the worker: it appends job events and publishes
  them (uds.jobs.events.emit + publish), writing the publish time into the event's message
  just before PUBLISH. Two followers of the same job receive every event: the `jobEvents`
  subscription over graphql-transport-ws, and an MCP client holding `get_job` with a
  progress token (its progress notifications carry the message). Latency publish -> receipt,
  p50/p99, and the ratio MCP/GraphQL (target: p99 <= 2x). Both followers run in this
  process, as does the publisher (events are spaced 20 ms apart).

Servers: UDS_DATABASE_URL / UDS_REDIS_URL if set, else embedded ones. The bench works in a
database of its own (`uds_bench_<random>`), a temporary UDS_DATA_DIR and its own Redis
prefix, removed at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import shutil
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

ROOT = Path(__file__).resolve().parent.parent
# Run as a script, this file's folder comes first on sys.path, and this file is `mcp`:
# drop the folder so `import mcp` finds the SDK.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]
HOST = "127.0.0.1"
SUBJECT = "bench-editor@uds.bench"
TENANT = "bench-mcp"


def say(message: str = "") -> None:
    print(message, file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))] if ordered else float("nan")


def figures(ms: list[float]) -> dict[str, float]:
    return {
        "n": len(ms),
        "p50_ms": pct(ms, 50),
        "p99_ms": pct(ms, 99),
        "mean_ms": statistics.fmean(ms) if ms else float("nan"),
    }


def start_api(port: int, env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    """`uds serve` (one uvicorn process), its log in `log`."""
    with log.open("ab") as stderr:
        return subprocess.Popen(
            [sys.executable, "-m", "uds.cli", "serve", "--host", HOST, "--port", str(port)],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
        )


async def timed(calls: int, one: Any) -> list[float]:
    out = []
    for _ in range(calls):
        start = time.perf_counter()
        await one()
        out.append((time.perf_counter() - start) * 1000)
    return out


async def run(args: argparse.Namespace) -> dict[str, Any]:
    import asyncpg
    import httpx
    import httpx2
    from mcp.client.streamable_http import streamable_http_client
    from sqlalchemy import make_url
    from websockets.asyncio.client import connect

    from mcp import Client, StdioServerParameters
    from uds.auth.keys import SigningKey
    from uds.datasources.params import params_from_url
    from uds.db import make_engine, transaction
    from uds.jobs import service
    from uds.jobs.events import emit, publish
    from uds.jobs.keys import JobKeys
    from uds.jobs.models import SUCCEEDED
    from uds.mcp.gateway import operation_texts
    from uds.runtime import migrate_core
    from uds.services import Services
    from uds.settings import Settings
    from uds.tenants import service as tenants

    work = Path(tempfile.mkdtemp(prefix="uds-bench-mcp-"))
    data_dir = work / "data"
    stop_embedded = None
    env_db, env_redis = os.environ.get("UDS_DATABASE_URL"), os.environ.get("UDS_REDIS_URL")
    if env_db and env_redis:
        admin_url, redis_url = env_db, env_redis
    else:
        from uds.embedded import start_embedded

        embedded = start_embedded(work / "servers", progress=say)
        admin_url, redis_url, stop_embedded = embedded.database_url, embedded.redis_url, embedded.stop
    db_name = f"uds_bench_{uuid.uuid4().hex[:8]}"
    connect_args = replace(params_from_url(admin_url), sslmode="disable").asyncpg_kwargs()
    conn = await asyncpg.connect(**connect_args)
    await conn.execute(f'create database "{db_name}"')
    await conn.close()
    prefix = f"uds-bench-{uuid.uuid4().hex[:8]}:"
    settings = Settings(
        database_url=make_url(admin_url).set(database=db_name).render_as_string(hide_password=False),
        redis_url=redis_url,
        data_dir=data_dir,
        redis_prefix=prefix,
        rate_limits=False,
    )
    results: dict[str, Any] = {
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
        },
        "servers": "environment" if stop_embedded is None else "embedded",
    }
    api: subprocess.Popen[bytes] | None = None
    services: Services | None = None
    try:
        say("setting up: database, tenant, API process")
        engine = make_engine(settings, pool_size=2)
        await migrate_core(engine)
        async with transaction(engine) as tx:
            session = await tx.core()
            await tenants.create_tenant(session, slug=TENANT, name="Bench", actor="bench")
            await tenants.set_member(session, slug=TENANT, subject=SUBJECT, role="EDITOR", actor="bench")
        await engine.dispose()
        token = SigningKey.load_or_create(data_dir).issue(
            SUBJECT, issuer=settings.own_issuer, audience=settings.audience, ttl=3600
        )
        port = free_port()
        url = f"http://{HOST}:{port}"
        env = {
            **os.environ,
            "UDS_DATABASE_URL": settings.database_url or "",
            "UDS_REDIS_URL": redis_url,
            "UDS_DATA_DIR": str(data_dir),
            "UDS_REDIS_PREFIX": prefix,
            "UDS_RATE_LIMITS": "off",
        }
        api = start_api(port, env, work / "api.log")
        deadline = time.monotonic() + 60
        async with httpx.AsyncClient() as http:
            while True:
                with contextlib.suppress(httpx.HTTPError):
                    if (await http.get(f"{url}/readyz")).status_code == 200:
                        break
                if api.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"the API did not start; see {work / 'api.log'}")
                await asyncio.sleep(0.2)
        services = await Services.start(replace(settings, db_pool_size=2))
        keys = JobKeys(prefix)

        async def new_job() -> str:
            async with transaction(services.engine, TENANT) as tx:
                state = await service.start_job(
                    await tx.tenant(), services=services, kind="tenant.stats", params={}, created_by=SUBJECT
                )
            return str(state.id)  # no worker runs: this process plays the worker

        job_id = await new_job()
        headers = {"authorization": f"Bearer {token}", "x-tenant-id": TENANT}

        # -- tool-call overhead ------------------------------------------------------
        say(f"tool calls: {args.calls} per way, {args.rounds} rounds")
        query = {"query": operation_texts()["GetJob"], "variables": {"id": job_id}, "operationName": "GetJob"}
        stdio_env = {**env, "UDS_URL": url, "UDS_TOKEN": token, "UDS_TENANT": TENANT}
        stdio = StdioServerParameters(
            command=sys.executable,
            args=["-m", "uds.cli", "mcp", "--transport", "stdio"],
            env=stdio_env,
            cwd=str(ROOT),
        )
        runs: dict[str, list[dict[str, float]]] = {"graphql_http": [], "mcp_http": [], "mcp_stdio": []}
        async with (
            httpx.AsyncClient(headers=headers) as direct,
            httpx2.AsyncClient(headers=headers, timeout=60) as http2,
            Client(streamable_http_client(f"{url}/mcp", http_client=http2)) as over_http,  # type: ignore[arg-type]
            Client(stdio) as over_stdio,
        ):

            async def graphql_call() -> None:
                body = (await direct.post(f"{url}/graphql", json=query)).json()
                assert body["data"]["job"]["id"] == job_id, body

            async def mcp_http_call() -> None:
                result = await over_http.call_tool("get_job", {"id": job_id})
                assert result.structured_content["job"]["id"] == job_id, result

            async def mcp_stdio_call() -> None:
                result = await over_stdio.call_tool("get_job", {"id": job_id})
                assert result.structured_content["job"]["id"] == job_id, result

            ways = {"graphql_http": graphql_call, "mcp_http": mcp_http_call, "mcp_stdio": mcp_stdio_call}
            for one in ways.values():  # warm up
                await timed(min(50, args.calls), one)
            for r in range(args.rounds):
                for name, one in ways.items():
                    runs[name].append(figures(await timed(args.calls, one)))
                    say(f"  round {r + 1} {name:13} p50 {runs[name][-1]['p50_ms']:.2f} ms")
        best = {name: min(rs, key=lambda f: f["p50_ms"]) for name, rs in runs.items()}
        results["tool_calls"] = {"runs": runs, "best": best}

        # -- progress latency --------------------------------------------------------
        say(f"progress: {args.events} events")
        follow_job = await new_job()
        sub_query = "subscription($id: ID!) { jobEvents(jobId: $id) { seq type progress phase message } }"
        graphql_ms: list[float] = []
        mcp_ms: list[float] = []
        ws_ready, mcp_ready = asyncio.Event(), asyncio.Event()

        def latency(message: str | None) -> float | None:
            if not message or "t=" not in message:
                return None
            return (time.time() - float(message.split("t=")[1])) * 1000

        async def ws_follow() -> None:
            async with connect(f"ws://{HOST}:{port}/graphql", subprotocols=["graphql-transport-ws"]) as ws:  # type: ignore[list-item]
                init = {"authorization": f"Bearer {token}", "tenant": TENANT}
                await ws.send(json.dumps({"type": "connection_init", "payload": init}))
                assert json.loads(await ws.recv())["type"] == "connection_ack"
                payload = {"query": sub_query, "variables": {"id": follow_job}}
                await ws.send(json.dumps({"id": "1", "type": "subscribe", "payload": payload}))
                async for raw in ws:
                    message = json.loads(raw)
                    if message["type"] == "complete":
                        return
                    event = message["payload"]["data"]["jobEvents"]
                    ws_ready.set()
                    value = latency(event["message"])
                    if value is not None:
                        graphql_ms.append(value)

        async def mcp_follow() -> None:
            async def on_progress(progress: float, total: float | None, message: str | None) -> None:
                mcp_ready.set()
                value = latency(message)
                if value is not None:
                    mcp_ms.append(value)

            async with (
                httpx2.AsyncClient(headers=headers, timeout=120) as h2,
                Client(streamable_http_client(f"{url}/mcp", http_client=h2)) as client,  # type: ignore[arg-type]
            ):
                result = await client.call_tool(
                    "get_job", {"id": follow_job, "wait_seconds": 120}, progress_callback=on_progress
                )
                assert result.structured_content["done"], result

        followers = [asyncio.create_task(ws_follow()), asyncio.create_task(mcp_follow())]

        async def publish_one(i: int, *, final: bool = False) -> None:
            async with transaction(services.engine, TENANT) as tx:
                session = await tx.tenant()
                if final:
                    record = await service.finish(session, uuid.UUID(follow_job), status=SUCCEEDED)
                else:
                    record = await emit(
                        session,
                        uuid.UUID(follow_job),
                        key=f"bench:{i}",
                        type="progress",
                        progress=i / (args.events + 2),
                        phase="bench",
                        message="-",
                        data={},
                    )
            assert record is not None
            if not final:
                record = replace(record, message=f"t={time.time()!r}")
            await publish(services.events, keys, TENANT, record)

        # Both followers are live once each got a first event (the replayed `queued` for the
        # subscription; a first progress event for MCP).
        await publish_one(0)
        await asyncio.wait_for(asyncio.gather(ws_ready.wait(), mcp_ready.wait()), 30)
        graphql_ms.clear()
        mcp_ms.clear()
        for i in range(1, args.events + 1):
            await publish_one(i)
            await asyncio.sleep(0.02)
        await publish_one(args.events + 1, final=True)
        await asyncio.wait_for(asyncio.gather(*followers), 60)
        results["progress"] = {"graphql_subscription": figures(graphql_ms), "mcp_progress": figures(mcp_ms)}
        return results
    finally:
        if services is not None:
            await services.close()
        if api is not None and api.poll() is None:
            api.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                api.wait(timeout=10)
            if api.poll() is None:
                api.kill()
        with contextlib.suppress(Exception):
            conn = await asyncpg.connect(**connect_args)
            await conn.execute(f'drop database if exists "{db_name}" with (force)')
            await conn.close()
        with contextlib.suppress(Exception):
            from redis.asyncio import Redis

            redis = Redis.from_url(redis_url)
            doomed = [k async for k in redis.scan_iter(match=f"{prefix}*")]
            if doomed:
                await redis.delete(*doomed)
            await redis.aclose()
        if stop_embedded is not None:
            stop_embedded()
        shutil.rmtree(work, ignore_errors=True)


def report(results: dict[str, Any]) -> None:
    best = results["tool_calls"]["best"]
    print(f"servers: {results['servers']}, cpus: {results['machine']['cpus']}")
    print("tool call (same GetJob operation), best round:")
    for name, f in best.items():
        print(
            f"  {name:13} p50 {f['p50_ms']:7.2f} ms  p99 {f['p99_ms']:7.2f} ms"
            f"  mean {f['mean_ms']:7.2f} ms  n={f['n']}"
        )
    base = best["graphql_http"]
    for name in ("mcp_http", "mcp_stdio"):
        for key in ("p50_ms", "p99_ms"):
            print(f"ratio {name}/graphql_http {key[:3]}_latency = {best[name][key] / base[key]:.2f}")
    progress = results["progress"]
    print("publish -> receipt of a job event:")
    for name, f in progress.items():
        print(f"  {name:21} p50 {f['p50_ms']:7.2f} ms  p99 {f['p99_ms']:7.2f} ms  n={f['n']}")
    g, m = progress["graphql_subscription"], progress["mcp_progress"]
    print(f"ratio mcp_progress/graphql_subscription p50_latency = {m['p50_ms'] / g['p50_ms']:.2f}")
    print(f"ratio mcp_progress/graphql_subscription p99_latency = {m['p99_ms'] / g['p99_ms']:.2f}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--calls", type=int, default=300, help="calls per way and round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--events", type=int, default=200, help="progress events published")
    parser.add_argument("--json", type=Path, help="write the figures here")
    args = parser.parse_args()
    results = asyncio.run(run(args))
    report(results)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
