"""`tenant.stats`: the built-in job kind, real work in the tenant schema.

It reads the tenant's audit log in id ranges, one resumable step per range; each step
counts its range's entries per (action, allowed) and records the counts with the step
(job_steps.state), in one transaction. The result, written to the job, is the summary
over all ranges: entries per action, allowed and denied. A re-run after kill -9 skips the
ranges already recorded and repeats none (tests/jobs/test_kill.py checks the totals).

Parameters (all optional):
    batch_size      audit entries per step (default 500)
Test knobs, for exercising the machinery:
    step_delay      seconds each step waits inside its transaction, before it commits
    fail_at_step    index of the range step that raises (on every run)
"""

from __future__ import annotations

import asyncio
from typing import Any

from sqlalchemy import func, select

from uds.jobs.runtime import JobContext, job_kind
from uds.observability.models import AuditEntry

AUDIT = AuditEntry.__table__
MAX_BATCH = 100_000


def _number(params: dict[str, Any], name: str, default: float, low: float, high: float) -> float:
    value = params.get(name, default)
    if not isinstance(value, int | float) or isinstance(value, bool) or not low <= value <= high:
        raise ValueError(f"param {name} must be a number from {low:g} to {high:g}")
    return float(value)


@job_kind("tenant.stats", timeout=1800)
async def tenant_stats(job: JobContext) -> dict[str, Any]:
    batch = int(_number(job.params, "batch_size", 500, 1, MAX_BATCH))
    delay = _number(job.params, "step_delay", 0, 0, 3600)
    fail_at = job.params.get("fail_at_step")

    # The first run fixes the range to read, so every run splits it the same way.
    async with job.step("plan") as todo:
        if todo:
            async with job.transaction() as tx:
                session = await tx.tenant()
                query = select(func.min(AUDIT.c.id), func.max(AUDIT.c.id))
                first, last = (await session.execute(query)).one()
            job.save_state({"first": first or 1, "last": last or 0})
    plan = job.step_state("plan") or {}
    first, last = int(plan["first"]), int(plan["last"])
    ranges = [(lo, min(lo + batch - 1, last)) for lo in range(first, last + 1, batch)]
    await job.progress(0.0, phase="scan", message=f"{len(ranges)} ranges of up to {batch} entries")

    for index, (lo, hi) in enumerate(ranges):
        async with job.step(f"scan:{lo}-{hi}") as todo:
            if todo:
                if fail_at is not None and fail_at == index:
                    raise RuntimeError(f"failing at step {index}, as asked (fail_at_step)")
                async with job.transaction() as tx:
                    session = await tx.tenant()
                    counts = await session.execute(
                        select(AUDIT.c.action, AUDIT.c.allowed, func.count())
                        .where(AUDIT.c.id.between(lo, hi))
                        .group_by(AUDIT.c.action, AUDIT.c.allowed)
                        .order_by(AUDIT.c.action, AUDIT.c.allowed)
                    )
                    job.save_state({"counts": [[action, allowed, n] for action, allowed, n in counts]})
                    if delay:
                        await asyncio.sleep(delay)
        await job.progress((index + 1) / len(ranges), phase="scan", message=f"entries {lo}-{hi}")

    actions: dict[str, dict[str, int]] = {}
    for lo, hi in ranges:
        for action, allowed, n in (job.step_state(f"scan:{lo}-{hi}") or {}).get("counts", []):
            actions.setdefault(action, {"allowed": 0, "denied": 0})["allowed" if allowed else "denied"] += n
    total = sum(c["allowed"] + c["denied"] for c in actions.values())
    return {"entries": total, "ranges": len(ranges), "actions": actions}
