"""Benchmark: rendering a widget's PNG against fetching the same widget's data.

    .venv/bin/python bench/render.py [--rows 20000] [--repeat 7] [--goal TEXT] [--json PATH]

One run, everything measured in it:

* setup: a UDS database of its own (`uds_bench_render_<random>`), the demo shop with
  `--rows` events in a database of its own, a UDS server and worker in this process, a
  tenant, the shop registered and discovered, and one dashboard generated for `--goal`
  through GraphQL (as a user would);
* for every widget of that dashboard, alternating, `--repeat` times each:
  - data fetch: `uds.dashboards.service.widget_data(..., refresh=True)`: the widget's SQL
    on the source through the guarded read-only pool, rows to JSON, insights, cache write
    (what a cold `widgetData` does, without the HTTP and GraphQL layers);
  - PNG render: `RenderPool.render` of the widget's spec (rows inlined, sized to its grid
    place) in a render process, bypassing the picture cache (what a picture costs the
    first time);
  - SVG render, the same way;
  - cached picture: `Renderer.widget_picture` when Redis has it (what every later request
    for the same widget version and data costs);
  - HTTP: `GET /dashboards/{id}/widgets/{w}.png` with a bearer token, picture cached;
* medians per widget, and over all widgets the sums of the medians;
  `ratio png_render/data_fetch` (per widget and overall) and raw milliseconds.

Servers: UDS_DATABASE_URL / UDS_REDIS_URL if set, else embedded ones under a temporary
directory. The bench drops its databases and Redis keys at the end.
Targets: none set by the issue; the figures tell whether pictures need their cache
(they do when png_render/data_fetch is well above 1).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import socket
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

import asyncpg  # noqa: E402
import httpx  # noqa: E402
import uvicorn  # noqa: E402
from sqlalchemy import make_url  # noqa: E402

from uds.app import create_app  # noqa: E402
from uds.dashboards import render, service  # noqa: E402
from uds.datasources.params import ConnectionParams, params_from_url  # noqa: E402
from uds.db import make_engine, transaction  # noqa: E402
from uds.demo import build_demo_database  # noqa: E402
from uds.runtime import migrate_core  # noqa: E402
from uds.settings import Settings  # noqa: E402
from uds.workers.settings import make_worker  # noqa: E402

MEMBER = "bench@render"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def _admin_sql(admin: ConnectionParams, sql: str) -> None:
    conn = await asyncpg.connect(**replace(admin, sslmode="disable").asyncpg_kwargs())
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


@contextlib.asynccontextmanager
async def _server(settings: Settings) -> AsyncIterator[tuple[str, Any]]:
    port = _free_port()
    config = uvicorn.Config(
        create_app(settings), host="127.0.0.1", port=port, log_level="warning", lifespan="on"
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()
        await asyncio.sleep(0.02)
    worker = make_worker(settings, handle_signals=False)
    worker_task = asyncio.create_task(worker.async_run())
    try:
        yield f"http://127.0.0.1:{port}", server.lifespan.state["services"]
    finally:
        await worker.close()
        with contextlib.suppress(asyncio.CancelledError):
            await worker_task
        server.should_exit = True
        await task


class Client:
    def __init__(self, http: httpx.AsyncClient, url: str, services: Any) -> None:
        self.http, self.url, self.services = http, url, services
        s = services.settings
        self.admin = services.signing_key.issue(
            "root@bench", issuer=s.own_issuer, audience=s.audience, roles=["platform-admin"]
        )
        self.member = services.signing_key.issue(MEMBER, issuer=s.own_issuer, audience=s.audience)
        self.slug = ""

    async def gql(self, query: str, variables: dict[str, Any] | None = None, *, admin: bool = False) -> Any:
        headers = {"authorization": f"Bearer {self.admin if admin else self.member}"}
        if not admin:
            headers["x-tenant-id"] = self.slug
        r = await self.http.post(
            f"{self.url}/graphql", json={"query": query, "variables": variables or {}}, headers=headers
        )
        body = r.json()
        if "errors" in body:
            raise RuntimeError(body["errors"])
        return body["data"]

    async def wait(self, job_id: str) -> dict[str, Any]:
        while True:
            job = (
                await self.gql("query($id: ID!) { job(id: $id) { status message result } }", {"id": job_id})
            )["job"]
            if job["status"] in ("SUCCEEDED", "FAILED", "CANCELLED"):
                if job["status"] != "SUCCEEDED":
                    raise RuntimeError(job)
                return job  # type: ignore[no-any-return]
            await asyncio.sleep(0.1)


async def _setup(client: Client, source: ConnectionParams, goal: str) -> str:
    client.slug = f"bench-{uuid.uuid4().hex[:8]}"
    await client.gql(
        "mutation($s: String!) { admin { createTenant(input: {slug: $s, name: $s}) { __typename } } }",
        {"s": client.slug},
        admin=True,
    )
    await client.gql(
        "mutation($s: String!, $m: String!) { admin { addMember(slug: $s, subject: $m, role: EDITOR) "
        "{ __typename } } }",
        {"s": client.slug, "m": MEMBER},
        admin=True,
    )
    data = await client.gql(
        "mutation($i: DataSourceInput!) { registerDataSource(input: $i) { ... on DataSource { id } } }",
        {
            "i": {
                "name": "shop",
                "host": source.host,
                "port": source.port,
                "database": source.database,
                "user": source.user,
                "password": source.password,
                "sslmode": "disable",
                "schemas": ["shop"],
            }
        },
    )
    source_id = data["registerDataSource"]["id"]
    job = await client.gql(
        "mutation($id: ID!) { startDiscovery(dataSourceId: $id) { ... on Job { id } } }", {"id": source_id}
    )
    await client.wait(job["startDiscovery"]["id"])
    job = await client.gql(
        "mutation($i: GenerateDashboardInput!) { generateDashboard(input: $i) { ... on Job { id } } }",
        {"i": {"dataSourceId": source_id, "goal": goal, "maxWidgets": 8}},
    )
    done = await client.wait(job["generateDashboard"]["id"])
    return str(done["result"]["dashboardId"])


async def _timed(fn: Callable[[], Awaitable[Any]]) -> float:
    start = time.perf_counter()
    await fn()
    return (time.perf_counter() - start) * 1000


async def bench(settings: Settings, source: ConnectionParams, goal: str, repeat: int) -> dict[str, Any]:
    async with _server(settings) as (url, services), httpx.AsyncClient(timeout=120) as http:
        client = Client(http, url, services)
        dashboard_id = await _setup(client, source, goal)
        async with transaction(services.engine, client.slug) as tx:
            record = await service.get_dashboard(await tx.tenant(), dashboard_id)
        assert record is not None
        renderer = render.Renderer.for_services(services)
        pool = renderer.pool
        await pool.render({"mark": "point", "data": {"values": [{"a": 1}]}}, "png")  # start the worker
        widgets = []
        for widget in record.widgets:
            box = render.widget_box(widget)
            data = await service.widget_data(services, client.slug, record, widget, refresh=True)
            spec = render.sized_spec(data.spec, box)
            await pool.render(spec, "png")  # warm: the first render of a kind compiles more
            path = f"{url}/dashboards/{dashboard_id}/widgets/{widget.id}.png"
            headers = {"authorization": f"Bearer {client.member}", "x-tenant-id": client.slug}
            await http.get(path, headers=headers)  # the picture is cached from here on
            runs: dict[str, list[float]] = {"fetch": [], "png": [], "svg": [], "cached": [], "http": []}
            for _ in range(repeat):

                async def fetch(w: Any = widget) -> None:
                    await service.widget_data(services, client.slug, record, w, refresh=True)

                async def cached(w: Any = widget, d: Any = data, b: Any = box) -> None:
                    pic = await renderer.widget_picture(
                        tenant=client.slug,
                        widget_id=w.id,
                        version=w.version,
                        data_key=d.data_key,
                        spec=d.spec,
                        position=b,
                        fmt="png",
                    )
                    assert pic.cached

                async def get(p: str = path, h: dict[str, str] = headers) -> None:
                    r = await http.get(p, headers=h)
                    assert r.status_code == 200 and r.headers["x-uds-picture-cache"] == "hit"

                runs["fetch"].append(await _timed(fetch))
                runs["png"].append(await _timed(lambda s=spec: pool.render(s, "png")))
                runs["svg"].append(await _timed(lambda s=spec: pool.render(s, "svg")))
                runs["cached"].append(await _timed(cached))
                runs["http"].append(await _timed(get))
            med = {k: statistics.median(v) for k, v in runs.items()}
            widgets.append(
                {
                    "title": widget.title,
                    "kind": widget.kind,
                    "rows": len(data.rows),
                    "box": f"{box.w}x{box.h}",
                    **{f"{k}_ms": round(v, 2) for k, v in med.items()},
                    "ratio_png_fetch": round(med["png"] / med["fetch"], 2),
                }
            )
        totals = {
            k: round(sum(w[f"{k}_ms"] for w in widgets), 2) for k in ("fetch", "png", "svg", "cached", "http")
        }
        return {
            "goal": goal,
            "dashboard": dashboard_id,
            "repeat": repeat,
            "widgets": widgets,
            "totals_ms": totals,
        }


COLUMNS = ("fetch", "png", "svg", "cached", "http")


def report(result: dict[str, Any]) -> None:
    count, repeat = len(result["widgets"]), result["repeat"]
    print(f"\ngoal {result['goal']!r}: {count} widgets, medians of {repeat} runs (ms)")
    print(f"{'widget':44} {'kind':11} {'rows':>5} " + " ".join(f"{c:>8}" for c in COLUMNS) + " png/fetch")
    for w in result["widgets"]:
        figures = " ".join(f"{w[c + '_ms']:>8.2f}" for c in COLUMNS)
        print(f"{w['title'][:44]:44} {w['kind']:11} {w['rows']:>5} {figures} {w['ratio_png_fetch']:>9.2f}")
    t = result["totals_ms"]
    figures = " ".join(f"{t[c]:>8.2f}" for c in COLUMNS)
    print(f"{'all widgets (sum of medians)':44} {'':11} {'':>5} {figures} {t['png'] / t['fetch']:>9.2f}")
    print(f"ratio png_render/data_fetch = {t['png'] / t['fetch']:.2f}")
    print(f"ratio svg_render/data_fetch = {t['svg'] / t['fetch']:.2f}")
    print(f"ratio cached_picture/data_fetch = {t['cached'] / t['fetch']:.3f}")
    print(
        f"raw: data_fetch {t['fetch']:.1f} ms, png_render {t['png']:.1f} ms, svg_render {t['svg']:.1f} ms, "
        f"cached_picture {t['cached']:.2f} ms, http_cached_png {t['http']:.1f} ms"
    )


async def _run(args: argparse.Namespace, db_url: str, redis_url: str, data_dir: Path) -> dict[str, Any]:
    admin = params_from_url(db_url, database="postgres")
    uds_db, shop_db = f"uds_bench_render_{uuid.uuid4().hex[:8]}", f"uds_bench_shop_{uuid.uuid4().hex[:8]}"
    await _admin_sql(admin, f'create database "{uds_db}"')
    prefix = f"uds-bench-render-{uuid.uuid4().hex[:8]}:"
    try:
        await build_demo_database(admin, rows=args.rows, database=shop_db)
        settings = Settings(
            database_url=make_url(db_url).set(database=uds_db).render_as_string(hide_password=False),
            redis_url=redis_url,
            data_dir=data_dir,
            mode="dev",
            redis_prefix=prefix,
            rate_limits=False,
            events_relay=False,
            metrics_enabled=False,
        )
        engine = make_engine(settings, pool_size=1)
        try:
            await migrate_core(engine)
        finally:
            await engine.dispose()
        return await bench(settings, admin.with_database(shop_db), args.goal, args.repeat)
    finally:
        for name in (uds_db, shop_db):
            await _admin_sql(admin, f'drop database if exists "{name}" with (force)')
        from redis.asyncio import Redis

        redis = Redis.from_url(redis_url)
        keys = [k async for k in redis.scan_iter(f"{prefix}*")]
        if keys:
            await redis.delete(*keys)
        await redis.aclose()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=20_000, help="events in the demo shop")
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--goal", default="revenue over time by category")
    parser.add_argument("--json", help="also write the results here")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="uds-bench-render-"))
    stop = None
    db_url, redis_url = os.environ.get("UDS_DATABASE_URL"), os.environ.get("UDS_REDIS_URL")
    if not (db_url and redis_url):
        from uds.embedded import start_embedded

        servers = start_embedded(tmp / "servers", progress=lambda m: print(m))
        db_url, redis_url, stop = servers.database_url, servers.redis_url, servers.stop
    try:
        result = asyncio.run(_run(args, db_url, redis_url, tmp / "data"))
    finally:
        if stop:
            stop()
    report(result)
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
