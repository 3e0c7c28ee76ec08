"""`uds jobs watch ID --tenant SLUG`: a progress bar until the job ends; exit 0 only on success."""

from __future__ import annotations

import asyncio
import sys
import uuid

from conftest import Server
from jobs.kit import ROOT, running_worker, seed_audit, start, tenant_with, worker_env
from uds.settings import Settings


async def watch(settings: Settings, slug: str, job_id: str) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "uds.cli", "jobs", "watch", job_id, "--tenant", slug,
        cwd=ROOT, env=worker_env(settings), stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert out == b"", "the bar goes to stderr"
    assert proc.returncode is not None
    return proc.returncode, err.decode()


async def test_watch_follows_a_job_to_success_and_to_failure(
    jobs_server: Server, job_settings: Settings
) -> None:
    slug = await tenant_with(jobs_server, ed="EDITOR")
    await seed_audit(jobs_server, slug, 100)
    good = await start(jobs_server, slug, batch_size=10, step_delay=0.05)
    bad = await start(jobs_server, slug, batch_size=10, fail_at_step=2)
    async with running_worker(job_settings):
        (code, err), (bad_code, bad_err) = await asyncio.gather(
            watch(job_settings, slug, str(good.id)), watch(job_settings, slug, str(bad.id))
        )
    assert code == 0, err
    assert "tenant.stats [##############################] 100.0%" in err
    assert err.rstrip().endswith("SUCCEEDED")
    assert err.count("\r") > 5, "the bar is redrawn as the job advances"
    assert bad_code == 1
    assert bad_err.rstrip().endswith("FAILED: RuntimeError: failing at step 2, as asked (fail_at_step)")

    code, err = await watch(job_settings, slug, str(uuid.uuid4()))
    assert code == 1 and "no such job" in err
