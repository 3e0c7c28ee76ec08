"""Guard the gains: Python function calls for one request of the benchmark read.

bench/graphql_read.py reads `me` and 20 audit entries. This test sends that request to
the ASGI app in this process, with every cache warm, and counts the Python function calls
(cProfile's total, C functions included) of one request: the fewest over a few requests,
so a timer or a pool check that happens to run in between does not count. It fails when
a count grows more than 20 % over the budget recorded in call_budget.json; when a change
makes the read cheaper, lower the budget in the same commit.
"""

from __future__ import annotations

import asyncio
import cProfile
import hashlib
import json
import pstats
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from conftest import Server, make_tenant
from uds.app import create_app
from uds.db import transaction
from uds.settings import Settings
from uds.tenants.service import set_limits
from uds.tenants.slugs import tenant_schema

BUDGET_FILE = Path(__file__).with_name("call_budget.json")
QUERY = "{ me { subject } auditLog(first: 20) { edges { node { id at actor action target } } } }"
HASH = hashlib.sha256(QUERY.encode()).hexdigest()
REQUESTS = {
    "bench read, query text": {"query": QUERY},
    "bench read, persisted hash": {"extensions": {"persistedQuery": {"version": 1, "sha256Hash": HASH}}},
}
GROWTH = 1.2


class App:
    """The ASGI app with its lifespan running, called without a server in between."""

    def __init__(self, app: Any, state: dict[str, Any]) -> None:
        self.app, self.state = app, state

    async def post(self, body: dict[str, Any], headers: dict[str, str]) -> tuple[int, bytes]:
        raw = json.dumps(body).encode()
        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": "POST",
            "scheme": "http",
            "path": "/graphql",
            "raw_path": b"/graphql",
            "query_string": b"",
            "root_path": "",
            "headers": [(k.encode(), v.encode()) for k, v in headers.items()]
            + [(b"content-length", str(len(raw)).encode())],
            "client": ("127.0.0.1", 40000),
            "server": ("127.0.0.1", 80),
            "state": dict(self.state),
        }
        delivered = False

        async def receive() -> dict[str, Any]:
            nonlocal delivered
            if not delivered:
                delivered = True
                return {"type": "http.request", "body": raw, "more_body": False}
            await asyncio.Event().wait()  # the client never goes away
            raise AssertionError  # pragma: no cover

        sent: list[dict[str, Any]] = []

        async def send(message: dict[str, Any]) -> None:
            sent.append(message)

        await self.app(scope, receive, send)
        return sent[0]["status"], b"".join(m.get("body", b"") for m in sent[1:])


@pytest.fixture(scope="module")
async def prod_app(migrated: Settings) -> AsyncIterator[App]:
    # prod: no policy file reload checks, no GraphiQL; rate limits on (the bench tenant's
    # are too high to refuse anything, as in the bench, so the limiter runs and serves the
    # read from prepaid units).
    settings = replace(migrated, mode="prod", secret_keys=("A" * 43,), rate_limits=True)
    app = create_app(settings)
    async with app.router.lifespan_context(app) as state:
        yield App(app, state)


BENCH_LIMITS = {
    "requests_per_second": 1_000_000,
    "request_burst": 10_000_000,
    "member_requests_per_second": 1_000_000,
    "member_request_burst": 10_000_000,
}


async def bench_tenant(server: Server) -> dict[str, str]:
    """A tenant like the bench's (25 audit entries, an ADMIN, limits that never refuse),
    and the headers to read it."""
    slug = await make_tenant(server, members={"ad@x": "ADMIN"})
    async with transaction(server.services.engine) as tx:
        await set_limits(await tx.core(), slug=slug, overrides=BENCH_LIMITS, actor="test")
    async with server.services.engine.begin() as conn:
        await conn.execute(
            text(
                f'insert into "{tenant_schema(slug)}".audit_log (actor, action, target, detail)'
                " select 'bench', 'bench.read', 'target-' || g, '{}' from generate_series(1, 25) g"
            )
        )
    return {
        "content-type": "application/json",
        "authorization": f"Bearer {server.token('ad@x')}",
        "x-tenant-id": slug,
    }


async def test_calls_per_request_stay_within_budget(prod_app: App, server: Server) -> None:
    headers = await bench_tenant(server)
    register = {**REQUESTS["bench read, persisted hash"], "query": QUERY}
    assert (await prod_app.post(register, headers))[0] == 200
    budget = json.loads(BUDGET_FILE.read_text())
    measured = {}
    for name, body in REQUESTS.items():
        for _ in range(30):  # warm every cache: token, tenant, role, decisions, plan, statements
            status, answer = await prod_app.post(body, headers)
            assert status == 200 and b'"errors"' not in answer, answer
            assert answer.count(b'"node"') == 20
        counts = []
        for _ in range(5):
            profile = cProfile.Profile()
            profile.enable()
            await prod_app.post(body, headers)
            profile.disable()
            counts.append(pstats.Stats(profile).total_calls)
        measured[name] = min(counts)
    report = ", ".join(f"{name}: {calls} calls (budget {budget[name]})" for name, calls in measured.items())
    for name, calls in measured.items():
        assert calls <= budget[name] * GROWTH, f"{name} grew over its budget by more than 20 %: {report}"
    print(report)


async def test_the_plain_path_costs_many_times_more(migrated: Settings, server: Server) -> None:
    """The budget is worth guarding: the same read through strawberry is ~10x the calls."""
    headers = await bench_tenant(server)
    settings = replace(migrated, mode="prod", secret_keys=("A" * 43,), fast_paths=False)
    app = create_app(settings)
    async with app.router.lifespan_context(app) as state:
        plain = App(app, state)
        for _ in range(10):
            await plain.post({"query": QUERY}, headers)
        profile = cProfile.Profile()
        profile.enable()
        await plain.post({"query": QUERY}, headers)
        profile.disable()
    budget = json.loads(BUDGET_FILE.read_text())["bench read, query text"]
    calls = pstats.Stats(profile).total_calls
    assert calls > 4 * budget, f"plain path: {calls} calls, budget of the fast path: {budget}"
