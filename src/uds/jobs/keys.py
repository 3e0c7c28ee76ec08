"""Every Redis key, channel and queue name of the job system, in one place.

All start with `Settings.redis_prefix` (default `uds:`), so deployments and test sessions
sharing one Redis never see each other's jobs. arq's own per-job keys (`arq:job:<id>`,
`arq:in-progress:<id>`, `arq:retry:<id>`) are not prefixed by arq; job ids are UUIDs, so
they cannot collide either.
"""

from __future__ import annotations

import uuid

from arq.constants import in_progress_key_prefix, job_key_prefix


class JobKeys:
    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        # The arq queue (a sorted set by run-at time). Jobs waiting for a tenant slot are in
        # it too, parked at PARKED_SCORE, so only admitted jobs are ever picked up.
        self.queue = f"{prefix}jobs:queue"
        # Tenants that have jobs waiting for a slot (swept by every worker).
        self.waiting_tenants = f"{prefix}jobs:waiting-tenants"
        # Per-tenant cap on running jobs, refreshed from the tenant's limits on every use.
        self.caps = f"{prefix}jobs:caps"

    def waiting(self, tenant: str) -> str:
        """List of the tenant's job ids waiting for a slot, oldest first."""
        return f"{self.prefix}jobs:waiting:{tenant}"

    def running(self, tenant: str) -> str:
        """Sorted set of the tenant's admitted job ids, scored by lease expiry (ms)."""
        return f"{self.prefix}jobs:running:{tenant}"

    def channel(self, tenant: str, job_id: uuid.UUID | str) -> str:
        """Pub/sub channel of one job's events (`uds:{tenant}:job:{id}` under the prefix)."""
        return f"{self.prefix}{tenant}:job:{job_id}"

    def cancel_flag(self, tenant: str, job_id: uuid.UUID | str) -> str:
        """Set when cancelJob commits: tells the worker at its next heartbeat."""
        return f"{self.prefix}{tenant}:job:{job_id}:cancel"

    @staticmethod
    def arq_job(job_id: uuid.UUID | str) -> str:
        return f"{job_key_prefix}{job_id}"

    @staticmethod
    def arq_in_progress(job_id: uuid.UUID | str) -> str:
        return f"{in_progress_key_prefix}{job_id}"
