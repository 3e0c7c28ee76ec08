"""What tracing costs when it is off: its hooks per request, and the time of one hook.

    .venv/bin/python bench/observability_cost.py          (used by bench/graphql_read.py)

With no OTLP endpoint, UDS installs no tracer provider, instruments no library and wraps
no resolver; what stays on the request path are the hooks themselves (`tracing.span()`
returning a shared no-op, `tracing.enabled()`). This counts how many of them one request
of bench/graphql_read.py's query calls (the app run in this process, on the servers of
`settings`) and times each kind of hook, so the report can say how much of a request's
server CPU tracing-off costs. The metrics and rate-limit costs are measured as req/s by
graphql_read.py itself (the full stack against the same stack with them switched off).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

HOOKS = ("span", "enabled", "inject", "set_attributes")


def time_per_call_ns(fn: Callable[[], Any], *, rounds: int = 200_000) -> float:
    """Best of five: nanoseconds one call of `fn` takes."""
    best = float("inf")
    for _ in range(5):
        started = time.perf_counter_ns()
        for _ in range(rounds):
            fn()
        best = min(best, (time.perf_counter_ns() - started) / rounds)
    return best


def hook_times_ns() -> dict[str, float]:
    from uds.observability import tracing

    tracing.shutdown_tracing()

    def span() -> None:
        with tracing.span("policy", action="audit.read"):
            pass

    loop = time_per_call_ns(lambda: None)  # the timing loop's own cost, taken off
    return {
        "span": max(0.0, time_per_call_ns(span) - loop),
        "enabled": max(0.0, time_per_call_ns(tracing.enabled) - loop),
        "inject": max(0.0, time_per_call_ns(tracing.inject) - loop),
        "set_attributes": 0.0,  # only called when tracing is on
    }


async def hook_calls_per_request(settings: Any, query: str, headers: dict[str, str]) -> dict[str, int]:
    """Hooks one request calls: the app in process (its lifespan, real servers), the
    request sent twice (the first warms the caches), hooks counted on the second."""
    from uds.app import create_app
    from uds.observability import tracing

    counts: Counter[str] = Counter()
    originals = {name: getattr(tracing, name) for name in HOOKS}

    def counting(name: str) -> Callable[..., Any]:
        original = originals[name]

        def hook(*args: Any, **kwargs: Any) -> Any:
            counts[name] += 1
            return original(*args, **kwargs)

        return hook

    app = create_app(settings)
    body = json.dumps({"query": query}).encode()
    raw_headers = [
        (k.lower().encode(), v.encode()) for k, v in {**headers, "content-type": "application/json"}.items()
    ]
    async with app.router.lifespan_context(app) as state:
        for counted in (False, True):
            if counted:
                for name in HOOKS:
                    setattr(tracing, name, counting(name))
            try:
                status = await _request(app, dict(state or {}), body, raw_headers)
            finally:
                for name, original in originals.items():
                    setattr(tracing, name, original)
            if status != 200:
                raise RuntimeError(f"the in-process request answered {status}")
    return {name: counts[name] for name in HOOKS}


async def _request(app: Any, state: dict[str, Any], body: bytes, headers: list[tuple[bytes, bytes]]) -> int:
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
        "headers": [*headers, (b"content-length", str(len(body)).encode())],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
        "state": state,
    }
    sent = False
    status = 0

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if sent:
            await asyncio.sleep(3600)
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]

    await app(scope, receive, send)
    return status


def tracing_off_cost(settings: Any, query: str, headers: dict[str, str]) -> dict[str, Any]:
    """Calls per request, ns per call, and the µs tracing-off adds to one request."""
    calls = asyncio.run(hook_calls_per_request(settings, query, headers))
    times = hook_times_ns()
    per_request_us = sum(calls[name] * times[name] for name in HOOKS) / 1000
    return {"calls": calls, "ns_per_call": times, "us_per_request": per_request_us}


if __name__ == "__main__":
    print(json.dumps(hook_times_ns(), indent=2))
