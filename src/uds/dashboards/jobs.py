"""The `dashboard` job kind: generate a dashboard from a data source's latest catalog.

Params: {"data_source_id", "goal", "tables", "max_widgets"}. Phases and progress:
reading catalog (0-20 %), candidates (20-50 %), scoring (50-70 %), checking SQL (70-90 %),
saving (90-100 %). The result is {"dashboardId": "<id>"}; the dashboard's id is derived
from the job's id, so a retried run stores the same dashboard once. The engine is
deterministic: the same catalog and goal give the same widgets.

Bad input ends the job FAILED with a clear message: a source without a successful
discovery, an empty catalog, a table not in the catalog, maxWidgets out of range. A goal
that matches nothing is not an error: the job's last message says so and the dashboard
is the overview. The job's message, once SUCCEEDED, is the generator's: how the goal was
read, or which words matched nothing.
"""

from __future__ import annotations

import uuid
from typing import Any

from uds.dashboards import service
from uds.dashboards.candidates import find_candidates
from uds.dashboards.generator import DEFAULT_WIDGETS, choose
from uds.dashboards.goal import read_goal
from uds.datasources import service as sources
from uds.discovery import service as discovery
from uds.errors import BadUserInput
from uds.jobs.runtime import JobContext, job_kind

KIND = "dashboard"


def _params(params: dict[str, Any]) -> tuple[uuid.UUID, str | None, list[str] | None, int]:
    try:
        source_id = uuid.UUID(str(params["data_source_id"]))
    except (KeyError, ValueError):
        raise BadUserInput("dashboard needs params.data_source_id (a data source id)") from None
    goal = params.get("goal") or None
    tables = list(params.get("tables") or []) or None
    max_widgets = params.get("max_widgets", DEFAULT_WIDGETS)
    if not isinstance(max_widgets, int):
        raise BadUserInput("max_widgets must be an integer")
    return source_id, goal, tables, max_widgets


@job_kind(KIND, timeout=600)
async def dashboard_job(job: JobContext) -> dict[str, Any]:
    source_id, goal, tables, max_widgets = _params(job.params)
    dashboard_id = service.dashboard_id_for_job(job.job_id)

    await job.progress(0.0, phase="reading catalog", message="reading the latest catalog")
    async with job.transaction() as tx:
        session = await tx.tenant()
        source = await sources.get_source(session, source_id=source_id)
        found = await discovery.latest_catalog(session, data_source_id=source.id)
    if found is None:
        raise BadUserInput(
            f"data source {source.name!r} has no catalog yet: run discovery first (startDiscovery)"
        )
    catalog = found.snapshot
    if not catalog.tables:
        raise BadUserInput(
            f"the catalog of data source {source.name!r} is empty (discovery found no tables): "
            "check the source's schemas and run discovery again"
        )
    await job.progress(
        0.2,
        phase="candidates",
        message=f"{len(catalog.tables)} tables, {len(catalog.relationships)} relationships",
    )
    reading = read_goal(goal, catalog)
    candidates = find_candidates(catalog, reading, tables=tables)
    await job.progress(0.5, phase="scoring", message=f"{len(candidates)} candidate widgets")
    draft = choose(candidates, reading, max_widgets=max_widgets)
    await job.progress(0.7, phase="checking SQL", message=f"{len(draft.widgets)} widgets chosen")
    schemas = sorted({t.schema for t in catalog.tables})
    for w in draft.widgets:
        service.check_sql(w.sql, schemas)  # the engine's SQL must pass the checker
    await job.progress(0.9, phase="saving", message=draft.title)
    async with job.step("save") as todo:
        if todo:
            async with job.transaction() as tx:
                await service.create_dashboard(
                    await tx.tenant(),
                    tenant=job.tenant,
                    dashboard_id=dashboard_id,
                    data_source_id=source.id,
                    run_id=found.run.id,
                    job_id=job.job_id,
                    draft=draft,
                    schemas=schemas,
                    created_by=job.created_by,
                )
    await job.progress(1.0, phase="done", message=draft.message)
    job.final_message = draft.message
    return {"dashboardId": str(dashboard_id)}
