"""Benchmark: policy decisions with and without the embedded engine's decision cache.

    .venv/bin/python bench/policy_decisions.py [--quick] [--opa-url http://127.0.0.1:8181]

Measures, in one process, on the packaged Rego (src/uds/policies/rego):

* bundle compile time (`EmbeddedRegoEngine()`: read the files, check the catalogue, build);
* per decision, over a mix of representative inputs (platform, tenant reads, writes with
  limits, owner rule, service client, denials):
  - uncached: `PolicyInput.to_input()` + one regopy evaluation (what every decision would
    cost without the cache);
  - `decide()` on a cache miss (the above + canonical-JSON key + LRU insert);
  - `decide()` on a cache hit;
  - one evaluation handed to a worker thread (`asyncio.to_thread`), to show what moving
    evaluation off the event loop would cost;
  - baseline "policy checks off": an engine that allows everything without looking;
  - with `--opa-url`, `OpaServerEngine.decide()` against that OPA server.

Prints the ratio cached/uncached and the raw figures (median of several rounds), then one
JSON line with everything.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from uds.auth.principal import PLATFORM_ADMIN, Principal
from uds.policies import EmbeddedRegoEngine, OpaServerEngine, PolicyInput, TenantFacts
from uds.policies.engine import Decision
from uds.tenants.registry import TenantRecord


class AllowAllEngine:
    """Baseline only ("policy checks off"); deliberately not reachable from configuration."""

    async def decide(self, request: PolicyInput) -> Decision:
        return Decision(True)


def workload() -> list[PolicyInput]:
    ana = Principal("ana@acme", "uds", "user")
    root = Principal("root@uds", "uds", "user", frozenset({PLATFORM_ADMIN}))
    svc = Principal("svc-ci", "uds", "service", tenant="acme")
    free = TenantFacts.from_record(TenantRecord(uuid.uuid4(), "acme", "Acme", "active", "free", {}))
    suspended = TenantFacts.from_record(TenantRecord(uuid.uuid4(), "old", "Old", "suspended", "pro", {}))
    return [
        PolicyInput(principal=ana, action="principal.read"),
        PolicyInput(principal=root, action="tenant.create", resource={"slug": "new-co"}),
        PolicyInput(
            principal=ana, action="dashboard.read", tenant_role="VIEWER", tenant=free, resource={"id": "d1"}
        ),
        PolicyInput(
            principal=ana,
            action="datasource.register",
            tenant_role="EDITOR",
            tenant=free,
            resource={"data_sources": 1},
        ),
        PolicyInput(
            principal=ana,
            action="discovery.start",
            tenant_role="EDITOR",
            tenant=free,
            resource={"running_jobs": 2, "row_budget": 5_000_000},
        ),
        PolicyInput(
            principal=ana, action="job.cancel", tenant_role="EDITOR", tenant=free, resource={"owner": "bob"}
        ),
        PolicyInput(principal=svc, action="member.write", tenant_role="ADMIN", tenant=free),
        PolicyInput(principal=ana, action="member.write", tenant_role="ADMIN", tenant=suspended),
    ]


def fresh(request: PolicyInput, n: int) -> PolicyInput:
    """The same question about another object: a distinct cache key."""
    return PolicyInput(
        request.principal,
        request.action,
        request.tenant_role,
        request.tenant,
        {**request.resource, "id": f"obj-{n}"},
    )


async def per_op_us(op: Callable[[int], Awaitable[Any]], count: int, rounds: int) -> float:
    """Median over `rounds` of the mean time of one `op` call, in microseconds."""
    samples = []
    n = 0
    for _ in range(rounds):
        started = time.perf_counter()
        for _ in range(count):
            await op(n)
            n += 1
        samples.append((time.perf_counter() - started) / count * 1e6)
    return statistics.median(samples)


async def main(args: argparse.Namespace) -> dict[str, Any]:
    count, rounds = (500, 5) if args.quick else (3000, 9)
    compiles = []
    for _ in range(5 if args.quick else 20):
        compiles.append(EmbeddedRegoEngine().compile_seconds * 1000)

    inputs = workload()
    documents = [r.to_input() for r in inputs]
    k = len(inputs)
    engine = EmbeddedRegoEngine(cache_size=100_000)
    for request in inputs:  # warm the cache for the hit measurement
        await engine.decide(request)

    async def uncached(n: int) -> Decision:
        return engine.evaluate(inputs[n % k].to_input())

    async def miss(n: int) -> Decision:
        return await engine.decide(fresh(inputs[n % k], n))

    async def hit(n: int) -> Decision:
        return await engine.decide(inputs[n % k])

    async def threaded(n: int) -> Decision:
        return await asyncio.to_thread(engine.evaluate, documents[n % k])

    allow_all = AllowAllEngine()

    async def baseline(n: int) -> Decision:
        return await allow_all.decide(inputs[n % k])

    figures: dict[str, Any] = {
        "compile_ms_median": statistics.median(compiles),
        "compile_ms_min": min(compiles),
        "compile_ms_max": max(compiles),
        "uncached_us": await per_op_us(uncached, count, rounds),
        "decide_miss_us": await per_op_us(miss, count, rounds),
        "decide_hit_us": await per_op_us(hit, count, rounds),
        "evaluate_to_thread_us": await per_op_us(threaded, count // 5, rounds),
        "policy_off_us": await per_op_us(baseline, count, rounds),
        "workload_inputs": k,
    }
    per_action = {}
    for request, document in zip(inputs, documents, strict=True):
        started = time.perf_counter()
        for _ in range(count // 5):
            engine.evaluate(document)
        per_action[request.action] = (time.perf_counter() - started) / (count // 5) * 1e6
    figures["evaluate_us_by_action"] = per_action

    if args.opa_url:
        opa = await OpaServerEngine(args.opa_url, timeout=2.0).start()
        try:

            async def remote(n: int) -> Decision:
                return await opa.decide(inputs[n % k])

            figures["opa_decide_us"] = await per_op_us(remote, count // 10, rounds)
        finally:
            await opa.aclose()
    figures["ratio_cached_over_uncached"] = figures["decide_hit_us"] / figures["uncached_us"]
    return figures


def report(f: dict[str, Any]) -> None:
    print(
        f"bundle compile: {f['compile_ms_median']:.2f} ms median "
        f"(min {f['compile_ms_min']:.2f}, max {f['compile_ms_max']:.2f})"
    )
    print(f"per decision, mix of {f['workload_inputs']} inputs (median of rounds, microseconds):")
    rows = [
        ("uncached (to_input + regopy evaluation)", f["uncached_us"]),
        ("decide(), cache miss", f["decide_miss_us"]),
        ("decide(), cache hit", f["decide_hit_us"]),
        ("evaluation via asyncio.to_thread", f["evaluate_to_thread_us"]),
        ("baseline: policy checks off", f["policy_off_us"]),
    ]
    if "opa_decide_us" in f:
        rows.append(("OpaServerEngine.decide()", f["opa_decide_us"]))
    for label, value in rows:
        print(f"  {label:<42} {value:9.1f}")
    print(
        "uncached evaluation by action (us): "
        + ", ".join(f"{a} {v:.0f}" for a, v in f["evaluate_us_by_action"].items())
    )
    ratio = f["ratio_cached_over_uncached"]
    print(f"ratio cached/uncached: {ratio:.3f} (a cache hit is {1 / ratio:.0f}x faster)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer rounds, a few seconds")
    parser.add_argument("--opa-url", help="also time decisions against this OPA server")
    figures = asyncio.run(main(parser.parse_args()))
    report(figures)
    print(json.dumps(figures), file=sys.stdout, flush=True)
