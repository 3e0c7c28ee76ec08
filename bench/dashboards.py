"""Benchmark: dashboard generation against discovery, widgetData against its baselines.

    .venv/bin/python bench/dashboards.py [--rows 100000] [--requests 300] [--json PATH]

Every figure comes from the same run, on the same servers:

* generation vs discovery of the same source (the demo shop at `--rows` events): the
  engine (`uds.dashboards.generator.generate_dashboard` on the stored catalog, the SQL
  checker on every widget) against `uds.discovery.engine.discover`, medians over the
  issue's four goals and repeats; and the two jobs end to end through the API
  (`startDiscovery`, `generateDashboard`: from the mutation to SUCCEEDED, worker included);
* `widgetData` warm (a cache hit) and cold (`refresh: true`: the widget's SQL on the source
  through the guarded pool, then the cache write) against a trivial GraphQL request on
  the same stack (`{ tenant { slug } }`) and against the widget's SQL run directly with
  asyncpg on a connection kept open; sequential requests on one keep-alive connection,
  interleaved (trivial, warm, cold, direct, trivial, ...), medians and p90;
* a PNG of a widget (the web side's renderer, `uds.dashboards.render`, when this build has
  it) against the widget's data fetch.

Targets (issue 9): generation <= 0.2x discovery; warm widgetData <= 1.5x the trivial
request; cold widgetData <= 1.3x (direct SQL + trivial request).

Servers: UDS_DATABASE_URL / UDS_REDIS_URL if set, else embedded ones under a temporary
directory. The bench creates `uds_bench_dash_<random>` (platform) and
`uds_bench_dash_shop_<random>` (the source) on that server and drops both at the end,
with its Redis keys (a prefix of its own). The API (uvicorn, uvloop, httptools) and a
worker run as child processes in dev mode, rate limits off for both request kinds.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

import asyncpg  # noqa: E402
import httpx  # noqa: E402
from sqlalchemy import make_url, select  # noqa: E402

from uds.auth.keys import SigningKey  # noqa: E402
from uds.dashboards.generator import generate_dashboard  # noqa: E402
from uds.dashboards.sqlcheck import check_widget_sql  # noqa: E402
from uds.datasources.guard import NetworkGuard  # noqa: E402
from uds.datasources.models import DataSource  # noqa: E402
from uds.datasources.params import params_from_url  # noqa: E402
from uds.db import make_engine, transaction  # noqa: E402
from uds.demo import build_demo_database  # noqa: E402
from uds.discovery import service as discovery  # noqa: E402
from uds.discovery.budget import Budget  # noqa: E402
from uds.discovery.engine import discover  # noqa: E402
from uds.runtime import migrate_core  # noqa: E402
from uds.settings import Settings  # noqa: E402
from uds.tenants import service as tenants  # noqa: E402

GOALS = [
    "revenue over time by category",
    "top customers by spend",
    "payment methods",
    "how many orders per status",
]
TENANT = "bench-dash"
SUBJECT = "bench@dash"
HOST = "127.0.0.1"
OPEN = NetworkGuard(enforce=False)

TRIVIAL = "{ tenant { slug } }"
WIDGET_DATA = """query($d: ID!, $w: ID!, $r: Boolean) {
  widgetData(dashboardId: $d, widgetId: $w, refresh: $r) { columns rows cached truncated } }"""


def say(message: str = "") -> None:
    print(message, file=sys.stderr, flush=True)


def with_database(url: str, name: str) -> str:
    return make_url(url).set(drivername="postgresql", database=name).render_as_string(hide_password=False)


def stats(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    return {
        "median_ms": statistics.median(ordered) * 1000,
        "p90_ms": ordered[min(len(ordered) - 1, int(len(ordered) * 0.9))] * 1000,
        "n": len(ordered),
    }


class Children:
    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self.procs: list[tuple[str, subprocess.Popen[bytes]]] = []

    def start(self, name: str, argv: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
        log = (self.log_dir / f"{name}.log").open("wb")
        proc = subprocess.Popen(
            argv, env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        self.procs.append((name, proc))
        return proc

    def tail(self, name: str) -> str:
        path = self.log_dir / f"{name}.log"
        return "\n".join(path.read_text(errors="replace").splitlines()[-30:]) if path.exists() else ""

    def stop(self) -> None:
        for _, proc in self.procs:
            if proc.poll() is None:
                proc.terminate()
        for _, proc in self.procs:
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()


class Api:
    def __init__(self, url: str, token: str) -> None:
        self.url = url
        self.http = httpx.AsyncClient(
            timeout=60, headers={"authorization": f"Bearer {token}", "x-tenant-id": TENANT}
        )

    async def gql(self, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
        response = await self.http.post(
            f"{self.url}/graphql", json={"query": query, "variables": variables or {}}
        )
        body = response.json()
        if response.status_code != 200 or body.get("errors"):
            raise RuntimeError(f"GraphQL failed: {response.status_code} {body}")
        return body["data"]  # type: ignore[no-any-return]

    async def wait_job(self, job_id: str) -> dict[str, Any]:
        while True:
            job = (
                await self.gql("query($id: ID!) { job(id: $id) { status error result } }", {"id": job_id})
            )["job"]
            if job["status"] in ("SUCCEEDED", "FAILED", "CANCELLED"):
                if job["status"] != "SUCCEEDED":
                    raise RuntimeError(f"job {job_id}: {job}")
                return job  # type: ignore[no-any-return]
            await asyncio.sleep(0.02)


async def wait_ready(url: str, proc: subprocess.Popen[bytes], children: Children) -> None:
    end = time.monotonic() + 90
    async with httpx.AsyncClient(timeout=2) as http:
        while time.monotonic() < end:
            if proc.poll() is not None:
                raise RuntimeError(f"the API exited:\n{children.tail('api')}")
            with contextlib.suppress(httpx.HTTPError):
                if (await http.get(f"{url}/readyz")).status_code == 200:
                    return
            await asyncio.sleep(0.1)
    raise RuntimeError(f"the API did not get ready:\n{children.tail('api')}")


async def measure_generation(settings: Settings, source_params: Any, repeat: int) -> dict[str, Any]:
    """Engine timings: discovery of the source vs generation from the stored catalog."""
    discovery_times = []
    for _ in range(repeat):
        started = time.perf_counter()
        catalog = await discover(source_params, budget=Budget(rows=100_000_000), guard=OPEN)
        discovery_times.append(time.perf_counter() - started)
    engine = make_engine(settings, pool_size=1)
    try:
        async with transaction(engine, TENANT) as tx:
            session = await tx.tenant()
            source_id = (await session.execute(select(DataSource.id))).scalar_one()
            stored = await discovery.latest_catalog(session, data_source_id=source_id)
    finally:
        await engine.dispose()
    assert stored is not None
    schemas = sorted({t.schema for t in stored.snapshot.tables})
    generation_times = []
    for _ in range(repeat):
        for goal in GOALS:
            started = time.perf_counter()
            draft = generate_dashboard(stored.snapshot, goal=goal)
            for w in draft.widgets:
                check_widget_sql(w.sql, allowed_schemas=schemas)
            generation_times.append(time.perf_counter() - started)
    d = statistics.median(discovery_times)
    g = statistics.median(generation_times)
    return {
        "tables": len(catalog.tables),
        "discovery_s": d,
        "generation_s": g,
        "ratio": g / d,
        "discovery_runs": discovery_times,
        "generation_runs": generation_times,
    }


async def measure_widget_data(
    api: Api, source_url: str, dashboard: dict[str, Any], widget: dict[str, Any], n: int
) -> dict[str, Any]:
    variables = {"d": dashboard["id"], "w": widget["id"]}
    conn = await asyncpg.connect(source_url, server_settings={"TimeZone": "UTC", "search_path": "pg_catalog"})
    try:
        # Warm-up: the pool, the cache, the plans, the statement caches.
        for _ in range(20):
            await api.gql(TRIVIAL)
            await api.gql(WIDGET_DATA, {**variables, "r": True})
            await api.gql(WIDGET_DATA, {**variables, "r": False})
            await conn.fetch(widget["sql"])
        times: dict[str, list[float]] = {"trivial": [], "warm": [], "cold": [], "direct": []}
        rows = None
        for _ in range(n):
            started = time.perf_counter()
            await api.gql(TRIVIAL)
            times["trivial"].append(time.perf_counter() - started)
            started = time.perf_counter()
            warm = (await api.gql(WIDGET_DATA, {**variables, "r": False}))["widgetData"]
            times["warm"].append(time.perf_counter() - started)
            assert warm["cached"] is True
            started = time.perf_counter()
            cold = (await api.gql(WIDGET_DATA, {**variables, "r": True}))["widgetData"]
            times["cold"].append(time.perf_counter() - started)
            assert cold["cached"] is False
            started = time.perf_counter()
            direct = await conn.fetch(widget["sql"])
            times["direct"].append(time.perf_counter() - started)
            rows = len(direct)
        assert rows == len(cold["rows"]), (rows, len(cold["rows"]))
    finally:
        await conn.close()
    out: dict[str, Any] = {"widget": widget["title"], "rows": rows}
    for kind, values in times.items():
        out[kind] = stats(values)
    t, w, c, d = (out[k]["median_ms"] for k in ("trivial", "warm", "cold", "direct"))
    out["ratio_warm_trivial"] = w / t
    out["ratio_cold_direct_plus_trivial"] = c / (d + t)
    return out


async def measure_png(api: Api, dashboard: dict[str, Any], widget: dict[str, Any]) -> dict[str, Any] | None:
    try:
        from uds.dashboards import render  # type: ignore[attr-defined]  # noqa: F401
    except ImportError:
        return None
    return None  # measured by bench/render.py once the renderer is merged


async def run(args: argparse.Namespace) -> dict[str, Any]:
    started_all = time.monotonic()
    work = Path(tempfile.mkdtemp(prefix="uds-bench-dash-"))
    embedded = None
    database_url, redis_url = os.environ.get("UDS_DATABASE_URL"), os.environ.get("UDS_REDIS_URL")
    if not (database_url and redis_url):
        from uds.embedded import start_embedded

        embedded = start_embedded(work / "servers", progress=say)
        database_url, redis_url = embedded.database_url, embedded.redis_url
    suffix = uuid.uuid4().hex[:8]
    platform_db, shop_db = f"uds_bench_dash_{suffix}", f"uds_bench_dash_shop_{suffix}"
    prefix = f"uds-bench-dash-{suffix}:"
    admin = params_from_url(database_url, database="postgres")
    children = Children(work)
    result: dict[str, Any] = {"rows": args.rows, "requests": args.requests}
    try:
        conn = await asyncpg.connect(with_database(database_url, "postgres"))
        try:
            await conn.execute(f'create database "{platform_db}"')
        finally:
            await conn.close()
        say(f"building the demo shop ({args.rows:,} events) ...")
        await build_demo_database(admin, rows=args.rows, database=shop_db)
        shop = admin.with_database(shop_db)
        env = {
            **os.environ,
            "UDS_DATABASE_URL": with_database(database_url, platform_db),
            "UDS_REDIS_URL": redis_url,
            "UDS_REDIS_PREFIX": prefix,
            "UDS_DATA_DIR": str(work / "data"),
            "UDS_MODE": "dev",
            "UDS_RATE_LIMITS": "off",
            "UDS_LOG_LEVEL": "warning",
        }
        settings = Settings.from_env(env)
        engine = make_engine(settings, pool_size=2)
        try:
            await migrate_core(engine)
            async with transaction(engine) as tx:
                session = await tx.core()
                await tenants.create_tenant(session, slug=TENANT, name="Bench", plan="pro", actor="bench")
                await tenants.set_member(session, slug=TENANT, subject=SUBJECT, role="ADMIN", actor="bench")
                await tenants.set_limits(
                    session,
                    slug=TENANT,
                    overrides={"max_dashboards": 10_000, "max_concurrent_jobs": 50},
                    actor="bench",
                )
        finally:
            await engine.dispose()
        key = SigningKey.load_or_create(Path(env["UDS_DATA_DIR"]))
        token = key.issue(SUBJECT, issuer=settings.own_issuer, audience=settings.audience, ttl=7200)
        port = 18000 + int(suffix[:3], 16) % 1000
        url = f"http://{HOST}:{port}"
        api_proc = children.start(
            "api",
            [sys.executable, "-m", "uvicorn", "--factory", "uds.app:app_from_env",
             "--host", HOST, "--port", str(port), "--loop", "uvloop", "--http", "httptools",
             "--log-level", "warning", "--no-access-log"],
            env,
        )  # fmt: skip
        children.start("worker", [str(Path(sys.executable).parent / "uds"), "worker"], env)
        await wait_ready(url, api_proc, children)
        api = Api(url, token)

        data = await api.gql(
            "mutation($i: DataSourceInput!) { registerDataSource(input: $i) { __typename "
            "... on DataSource { id } ... on ValidationError { message } } }",
            {"i": {"name": "demo-shop", "host": shop.host, "port": shop.port, "database": shop_db,
                   "user": shop.user, "password": shop.password, "sslmode": "disable", "schemas": ["shop"]}},
        )  # fmt: skip
        source_id = data["registerDataSource"]["id"]
        started = time.perf_counter()
        data = await api.gql(
            "mutation($id: ID!) { startDiscovery(dataSourceId: $id) { ... on Job { id } } }",
            {"id": source_id},
        )
        await api.wait_job(data["startDiscovery"]["id"])
        discovery_job = time.perf_counter() - started
        say(f"discovery job: {discovery_job:.2f} s")

        dashboards: dict[str, dict[str, Any]] = {}
        job_times = []
        for goal in GOALS:
            started = time.perf_counter()
            data = await api.gql(
                "mutation($i: GenerateDashboardInput!) { generateDashboard(input: $i) { ... on Job { id } "
                "... on ValidationError { message } } }",
                {"i": {"dataSourceId": source_id, "goal": goal}},
            )
            job = await api.wait_job(data["generateDashboard"]["id"])
            job_times.append(time.perf_counter() - started)
            dashboards[goal] = (
                await api.gql(
                    "query($id: ID!) { dashboard(id: $id) { id widgets { id title kind sql } } }",
                    {"id": job["result"]["dashboardId"]},
                )
            )["dashboard"]
        result["jobs"] = {
            "discovery_s": discovery_job,
            "generation_s": statistics.median(job_times),
            "ratio": statistics.median(job_times) / discovery_job,
        }
        say("timing discovery and generation in process ...")
        result["engine"] = await measure_generation(settings, shop, args.repeat)

        result["widget_data"] = []
        for goal in ("how many orders per status", "revenue over time by category"):
            d = dashboards[goal]
            widget = next(w for w in d["widgets"] if w["kind"] != "kpi")
            say(f"widgetData: {widget['title']} ({args.requests} rounds) ...")
            result["widget_data"].append(
                await measure_widget_data(api, with_database(database_url, shop_db), d, widget, args.requests)
            )
        result["png"] = await measure_png(api, dashboards[GOALS[0]], dashboards[GOALS[0]]["widgets"][0])
        await api.http.aclose()
    finally:
        children.stop()
        with contextlib.suppress(Exception):
            conn = await asyncpg.connect(with_database(database_url, "postgres"))
            try:
                for name in (platform_db, shop_db):
                    await conn.execute(f'drop database if exists "{name}" with (force)')
            finally:
                await conn.close()
        with contextlib.suppress(Exception):
            from redis.asyncio import Redis

            redis = Redis.from_url(redis_url)
            doomed = [k async for k in redis.scan_iter(match=f"{prefix}*")]
            if doomed:
                await redis.delete(*doomed)
            await redis.aclose()
        if embedded is not None:
            embedded.stop()
    result["seconds"] = time.monotonic() - started_all
    return result


def report(r: dict[str, Any]) -> None:
    e, j = r["engine"], r["jobs"]
    print(f"demo shop: {r['rows']:,} events, {e['tables']} tables; {r['requests']} rounds per widget")
    print(f"  discovery (engine, median): {e['discovery_s'] * 1000:8.1f} ms")
    print(f"  generation (engine + SQL checks, median of 4 goals): {e['generation_s'] * 1000:8.1f} ms")
    print(f"  discovery job end to end: {j['discovery_s'] * 1000:8.1f} ms")
    print(f"  generation job end to end (median of 4 goals): {j['generation_s'] * 1000:8.1f} ms")
    for w in r["widget_data"]:
        print(f"  widget {w['widget']!r} ({w['rows']} rows):")
        for kind in ("trivial", "warm", "cold", "direct"):
            s = w[kind]
            print(f"    {kind:8} median {s['median_ms']:7.2f} ms   p90 {s['p90_ms']:7.2f} ms")
    if r["png"] is None:
        print("  PNG render: not measured (no renderer in this build; see bench/render.py)")
    print()
    print(f"ratio generation/discovery (engine) = {e['ratio']:.3f}   (target <= 0.2)")
    print(f"ratio generation/discovery (jobs end to end) = {j['ratio']:.3f}")
    for w in r["widget_data"]:
        print(
            f"ratio warm_widgetData/trivial_request [{w['widget']}] = "
            f"{w['ratio_warm_trivial']:.2f}   (target <= 1.5)"
        )
        print(
            f"ratio cold_widgetData/(direct_sql+trivial_request) [{w['widget']}] = "
            f"{w['ratio_cold_direct_plus_trivial']:.2f}   (target <= 1.3)"
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=100_000, help="events in the demo shop")
    parser.add_argument("--requests", type=int, default=300, help="rounds of requests per widget")
    parser.add_argument("--repeat", type=int, default=3, help="in-process discovery/generation repeats")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    result = asyncio.run(run(args))
    report(result)
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
