"""`uds dashboards generate --source NAME --goal TEXT [--tenant T] [--png FILE]`.

An operator's tool like `uds jobs watch`: it uses the server's own configuration
(database and Redis), so it needs no token. It starts a `dashboard` job for the named
data source of the tenant on behalf of a member (`--as`, default the dev admin
`dev@uds.local`; an EDITOR or ADMIN, audited as `dashboard.generate`), draws the
job's progress bar (uds.jobs.watch), then prints the dashboard's URL on stdout. A worker
must be running (`uds up` runs one). Exit code 0 when the dashboard was generated.
"""

from __future__ import annotations

import asyncio
import os
import sys
import uuid
from pathlib import Path
from typing import Any, TextIO

from sqlalchemy import select

from uds.dashboards import service
from uds.dashboards.links import dashboard_url
from uds.datasources.models import DataSource
from uds.db import transaction
from uds.discovery import service as discovery
from uds.errors import BadUserInput, NotFound, UdsError
from uds.jobs import service as jobs
from uds.jobs.watch import watch
from uds.observability import audit
from uds.settings import Settings

DEFAULT_ACTOR = "dev@uds.local"  # the dev admin `uds up` makes ADMIN of the demo tenant
DEFAULT_URL = "http://127.0.0.1:8000"


def base_url() -> str:
    """Where the API is: UDS_URL, or `uds up`'s default address."""
    return (os.environ.get("UDS_URL") or DEFAULT_URL).rstrip("/")


def dashboard_link(settings: Settings, tenant: str, dashboard_id: uuid.UUID, subject: str) -> str:
    """A signed link to the page for `subject` (absolute with UDS_PUBLIC_URL, else UDS_URL)."""
    link = dashboard_url(settings, tenant, dashboard_id, subject)
    return link if link.startswith("http") else base_url() + link


async def start(
    services: Any,
    *,
    tenant: str,
    source: str,
    goal: str | None,
    tables: list[str],
    max_widgets: int,
    actor: str = DEFAULT_ACTOR,
) -> uuid.UUID:
    """Queue the job (after the same checks as generateDashboard); returns its id."""
    if not 1 <= max_widgets <= 12:
        raise BadUserInput("--max-widgets must be between 1 and 12")
    record = await services.registry.get(tenant)
    if record is None:
        raise NotFound(f"no such tenant: {tenant}")
    role = await services.registry.role_of(record, actor)
    if role not in ("EDITOR", "ADMIN"):
        raise BadUserInput(f"{actor} is not an EDITOR or ADMIN of tenant {tenant} (give a member with --as)")
    async with transaction(services.engine, tenant) as tx:
        session = await tx.tenant()
        row = await session.scalar(select(DataSource).where(DataSource.name == source))
        if row is None:
            raise NotFound(f"tenant {tenant} has no data source named {source!r}")
        if await discovery.latest_successful_run(session, data_source_id=row.id) is None:
            raise BadUserInput(f"data source {source!r} has no catalog yet: run discovery first")
        state = await jobs.start_job(
            session,
            services=services,
            kind="dashboard",
            params={
                "data_source_id": str(row.id),
                "goal": (goal or "").strip(),
                "tables": tables,
                "max_widgets": max_widgets,
            },
            created_by=actor,
        )
        await audit.record(
            await tx.connection(),
            slug=tenant,
            actor=actor,
            action="dashboard.generate",
            target=f"id={row.id}",
        )
    return state.id


async def generate(
    settings: Settings,
    *,
    tenant: str,
    source: str,
    goal: str | None,
    tables: list[str] | None = None,
    max_widgets: int = 8,
    png: Path | None = None,
    actor: str = DEFAULT_ACTOR,
    out: TextIO = sys.stderr,
    stdout: TextIO = sys.stdout,
) -> int:
    from uds.services import Services

    services = await Services.start(settings)
    try:
        try:
            job_id = await start(
                services,
                tenant=tenant,
                source=source,
                goal=goal,
                tables=tables or [],
                max_widgets=max_widgets,
                actor=actor,
            )
        except UdsError as exc:
            print(f"uds: {exc.message}", file=out)
            return 1
        code = await watch(settings, tenant=tenant, job_id=str(job_id), out=out)
        if code != 0:
            return code
        async with transaction(services.engine, tenant) as tx:
            state = await jobs.get_job(await tx.tenant(), job_id=job_id)
        dashboard_id = uuid.UUID(str((state.result or {})["dashboardId"]))
        if state.message:
            print(state.message, file=out)
        print(dashboard_link(settings, tenant, dashboard_id, actor), file=stdout, flush=True)
        if png is not None:
            return await write_png(services, tenant, dashboard_id, png, out=out)
        return 0
    finally:
        await services.close()


async def write_png(services: Any, tenant: str, dashboard_id: uuid.UUID, path: Path, *, out: TextIO) -> int:
    """The dashboard's picture, drawn by the server's renderer (uds.dashboards.render)."""
    from uds.dashboards import render

    async with transaction(services.engine, tenant) as tx:
        record = await service.get_dashboard(await tx.tenant(), dashboard_id)
    if record is None:
        print(f"uds: dashboard {dashboard_id} is gone", file=out)
        return 1
    image = await render.dashboard_png(services, tenant, record)
    await asyncio.to_thread(path.write_bytes, image)
    print(f"wrote {path} ({len(image):,} bytes)", file=out)
    return 0
