"""Reads of a job's stored events, shared by the subscribers that ask for the same at once.

When a thousand clients subscribe to one job at the same moment, each needs the job's
state (is there such a job?) and the events stored so far. `EventReads` runs one query
for all the subscribers asking for the same (tenant, job, after, upto) while it is in
flight, and hands each of them the same records; the next ones to arrive start the next
query. Reads go to the engine it is given: the read-only one in the API process.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from uds.db import transaction
from uds.jobs.events import EventRecord, events_and_state
from uds.jobs.models import JobState

Key = tuple[str, uuid.UUID, int, int | None]
PAST_THE_END = 2**31 - 1  # an after_seq beyond any event: a read of the state alone


class EventReads:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._pending: dict[Key, asyncio.Future[tuple[JobState | None, list[EventRecord]]]] = {}
        self.queries = 0  # reads that went to the database (the others shared one)

    async def after(
        self, tenant: str, job_id: uuid.UUID, after_seq: int, *, upto: int | None = None
    ) -> tuple[JobState | None, list[EventRecord]]:
        """The job's state (None: no such job) and its events after `after_seq` (a page)."""
        key = (tenant, job_id, after_seq, upto)
        pending = self._pending.get(key)
        if pending is not None:
            # Shielded: one waiter going away must not cancel the others' read.
            return await asyncio.shield(pending)
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending[key] = future
        try:
            self.queries += 1
            async with transaction(self._engine, tenant) as tx:
                result = await events_and_state(await tx.tenant(), job_id, after_seq, upto=upto)
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved: those who wait on it get it, nobody else must
            raise
        finally:
            del self._pending[key]
        future.set_result(result)
        return result

    async def state(self, tenant: str, job_id: uuid.UUID) -> JobState | None:
        return (await self.after(tenant, job_id, PAST_THE_END))[0]
