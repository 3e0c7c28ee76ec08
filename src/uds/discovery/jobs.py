"""The `discovery` job kind: one resumable step per table, then relationships and quality.

Params: {"data_source_id": "<uuid>"}. The run's id is the job's id, so every row a run
writes is keyed by it and a retried run (worker killed, redeployed) upserts the same
rows: tables profiled by an earlier run are read back, not profiled again, and the row
budget continues from what was already spent. The structure is read again on every run
(four catalog queries), so a table dropped in between simply disappears.

Phases and progress: structure (0-5 %), profiles (5-85 %, one event per table),
relationships (85-95 %), quality and storing (95-100 %). Any SourceError (unreachable,
wrong password, access denied, the database dropped mid-run, a catalog query timing out)
ends the job FAILED with its message; the run row says the same. Cancelling ends both
CANCELLED within a table's work.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import uuid
from typing import Any

from uds.datasources import service as sources
from uds.datasources.connect import SourceLimits, open_source
from uds.datasources.guard import NetworkGuard
from uds.discovery import service
from uds.discovery.budget import Budget
from uds.discovery.engine import (
    PROFILES_END,
    RELATIONSHIPS_END,
    STRUCTURE_END,
    DiscoveryOptions,
    DiscoverySession,
    open_extra,
)
from uds.discovery.models import CANCELLED, FAILED
from uds.discovery.snapshot import TableSnapshot
from uds.errors import BadUserInput, UdsError
from uds.jobs.runtime import JobCancelled, JobContext, job_kind
from uds.tenants.plans import effective

log = logging.getLogger(__name__)

KIND = "discovery"


def step_key(table: TableSnapshot) -> str:
    """`profile:<schema>.<table>`, or a digest of it when that is over 120 characters."""
    key = f"profile:{table.schema}.{table.name}"
    if len(key) <= 120:
        return key
    return "profile#" + hashlib.sha256(key.encode()).hexdigest()[:40]


def _source_id(params: dict[str, Any]) -> uuid.UUID:
    try:
        return uuid.UUID(str(params["data_source_id"]))
    except (KeyError, ValueError):
        raise BadUserInput("discovery needs params.data_source_id (a data source id)") from None


@job_kind(KIND, timeout=3600)
async def discovery_job(job: JobContext) -> dict[str, Any]:
    services = job.services
    settings = services.settings
    run_id = job.job_id
    source_id = _source_id(job.params)

    async with job.transaction() as tx:
        session = await tx.tenant()
        row = await sources.get_source(session, source_id=source_id)
        params = sources.connection_params(row, tenant=job.tenant, cipher=services.credentials)
        record = await services.registry.get(job.tenant)
        limits = effective(record.plan, record.limits)[1] if record is not None else {}
        row_budget = int(limits.get("discovery_row_budget", 1_000_000))
        run = await service.start_run(
            session,
            run_id=run_id,
            data_source_id=row.id,
            row_budget=row_budget,
            created_by=job.created_by,
            job_id=job.job_id,
        )
        spent = run.rows_read
    budget = Budget(rows=row_budget, seconds=settings.discovery_time_budget_seconds, rows_read=spent)

    try:
        return await _run(job, params, budget)
    except JobCancelled:
        await _end_run(job, CANCELLED, "cancelled")
        raise
    except asyncio.CancelledError:
        if job.cancel_seen:
            await asyncio.shield(_end_run(job, CANCELLED, "cancelled"))
        raise  # otherwise the worker is stopping: the run resumes later
    except UdsError as exc:
        await _end_run(job, FAILED, exc.message)
        raise
    except Exception as exc:
        await _end_run(job, FAILED, f"internal error ({type(exc).__name__})")
        raise


async def _run(job: JobContext, params: Any, budget: Budget) -> dict[str, Any]:
    settings = job.services.settings
    run_id = job.job_id
    guard = NetworkGuard.from_settings(settings)
    limits = SourceLimits.from_settings(settings)
    async with contextlib.AsyncExitStack() as stack:
        conn = await stack.enter_async_context(open_source(params, guard=guard, limits=limits))
        discovery = DiscoverySession(
            conn, params, budget=budget, options=DiscoveryOptions(concurrency=settings.discovery_connections)
        )
        snapshot = await discovery.read_structure(params.schemas)
        await job.progress(
            STRUCTURE_END, phase="structure", message=f"{len(snapshot.tables)} tables and views"
        )
        async with job.transaction() as tx:
            session = await tx.tenant()
            await service.record_progress(
                session,
                run_id=run_id,
                rows_read=budget.rows_read,
                server_version=snapshot.server_version,
                database=snapshot.database,
            )
            stored = await service.load_tables(session, run_id=run_id)

        # Tables profiled by an earlier run of this job: take what it stored.
        pending: list[TableSnapshot] = []
        for index, table in enumerate(snapshot.tables):
            if job.step_state(step_key(table)) is not None and table.key in stored:
                snapshot.tables[index] = stored[table.key]
            else:
                pending.append(table)
        weights = discovery.weights()
        total = sum(weights.values()) or 1.0
        todo = {t.key for t in pending}
        done = sum(weights[t.key] for t in snapshot.tables if t.key not in todo)
        extra = await open_extra(
            stack, params, guard=guard, limits=limits, count=discovery.extra_connections()
        )
        # Tables are profiled on several connections at once; each is stored, with its step,
        # as it finishes.
        async with contextlib.aclosing(discovery.profile_many(pending, extra)) as finished:
            async for table, present in finished:
                async with job.step(step_key(table)) as new:
                    if new:
                        async with job.transaction() as tx:
                            session = await tx.tenant()
                            if present:
                                await service.store_table(session, run_id=run_id, table=table)
                            await service.record_progress(session, run_id=run_id, rows_read=budget.rows_read)
                done += weights.get(table.key, 0.0)
                await job.progress(
                    STRUCTURE_END + (PROFILES_END - STRUCTURE_END) * done / total,
                    phase="profiles",
                    message=table.qualified,
                )

        await job.progress(PROFILES_END, phase="relationships", message="inferring relationships")
        async with job.step("relationships") as todo:
            if todo:
                await discovery.infer_relationships()
                await job.progress(RELATIONSHIPS_END, phase="quality", message="scoring quality")
                discovery.assess_quality()
                async with job.transaction() as tx:
                    session = await tx.tenant()
                    await service.remove_tables(session, run_id=run_id, keep={t.key for t in snapshot.tables})
                    await service.store_tables(session, run_id=run_id, tables=snapshot.tables)
                    await service.store_relationships(
                        session, run_id=run_id, relationships=discovery.snapshot.relationships
                    )
                    await service.finish_run(
                        session,
                        run_id=run_id,
                        status="SUCCEEDED",
                        rows_read=budget.rows_read,
                        warnings=snapshot.warnings + [w for t in snapshot.tables for w in t.warnings],
                    )
        if not todo:
            async with job.transaction() as tx:
                session = await tx.tenant()
                run = await service.get_run(session, run_id=run_id)
                discovery.snapshot = await service.load_snapshot(session, run=run)
        summary = discovery.summary()
    await job.progress(1.0, phase="done", message=summary)
    relationships = discovery.snapshot.relationships
    return {
        "run_id": str(run_id),
        "tables": len(snapshot.tables),
        "columns": sum(len(t.columns) for t in snapshot.tables),
        "relationships": len(relationships),
        "inferred_relationships": sum(1 for r in relationships if not r.declared),
        "rows_read": budget.rows_read,
    }


async def _end_run(job: JobContext, status: str, error: str) -> None:
    """Record how the run ended, in its own transaction (the failing step rolled back)."""
    try:
        async with job.transaction() as tx:
            await service.fail_run(await tx.tenant(), run_id=job.job_id, error=error, status=status)
    except Exception:
        log.warning("discovery run %s: could not record its end (%s)", job.job_id, status, exc_info=True)
