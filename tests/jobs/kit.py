"""Helpers for the job tests: workers in and out of process, starting and reading jobs."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

from gql import Client, GraphQLRequest
from gql.transport.websockets import WebsocketsTransport
from sqlalchemy import text

from conftest import Server, _free_port, make_tenant
from uds.db import transaction
from uds.jobs import service
from uds.jobs.models import JobState
from uds.settings import Settings
from uds.tenants.slugs import tenant_schema
from uds.workers.settings import make_worker, stop_worker

ROOT = Path(__file__).resolve().parents[2]

EVENTS = """
subscription($id: ID!, $after: Int) {
  jobEvents(jobId: $id, afterSeq: $after) { seq type progress phase message job { id status error } }
}"""


@contextlib.asynccontextmanager
async def running_worker(settings: Settings, *, concurrency: int | None = None) -> AsyncIterator[Any]:
    """An arq worker in this process (its own Services), stopped like on SIGTERM."""
    worker = make_worker(settings, concurrency=concurrency, handle_signals=False)
    task = asyncio.create_task(worker.async_run())
    deadline = time.monotonic() + 10
    while "sweeper" not in worker.ctx:
        if task.done():
            task.result()
        assert time.monotonic() < deadline, "worker did not start"
        await asyncio.sleep(0.02)
    try:
        yield worker
    finally:
        await stop_worker(worker)
        with contextlib.suppress(asyncio.CancelledError):
            await task


def worker_env(settings: Settings) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        UDS_DATABASE_URL=settings.database_url or "",
        UDS_REDIS_URL=settings.redis_url or "",
        UDS_DATA_DIR=str(settings.data_dir),
        UDS_REDIS_PREFIX=settings.redis_prefix,
        UDS_JOB_LEASE_SECONDS=str(settings.job_lease_seconds),
    )
    return env


@contextlib.contextmanager
def worker_process(settings: Settings) -> Iterator[subprocess.Popen[bytes]]:
    """`uds worker` as a child process; killed at the end if still running."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "uds.cli", "worker"],
        cwd=ROOT,
        env=worker_env(settings),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
        if proc.stderr:
            proc.stderr.close()


async def tenant_with(server: Server, **members: str) -> str:
    """A new tenant whose members are given as subject=ROLE (subjects without '@x')."""
    return await make_tenant(server, members={f"{name}@x": role for name, role in members.items()})


async def start(
    server: Server, slug: str, *, by: str = "ed@x", kind: str = "tenant.stats", **params: Any
) -> JobState:
    """Start a job the way a mutation would: in a transaction of its own, committed."""
    async with transaction(server.services.engine, slug) as tx:
        return await service.start_job(
            await tx.tenant(), services=server.services, kind=kind, params=params, created_by=by
        )


async def job_row(server: Server, slug: str, job_id: uuid.UUID) -> JobState:
    async with transaction(server.services.engine, slug) as tx:
        state = await service.get_job(await tx.tenant(), job_id=job_id)
    assert state is not None
    return state


async def wait_for(
    server: Server, slug: str, job_id: uuid.UUID, *statuses: str, within: float = 20
) -> JobState:
    deadline = time.monotonic() + within
    while True:
        state = await job_row(server, slug, job_id)
        if state.status in statuses:
            return state
        assert time.monotonic() < deadline, f"job is {state.status}, waited for {statuses}"
        await asyncio.sleep(0.05)


async def events_of(server: Server, slug: str, job_id: uuid.UUID) -> list[dict[str, Any]]:
    async with server.services.engine.connect() as conn:
        rows = await conn.execute(
            text(
                f'select seq, key, type, progress from "{tenant_schema(slug)}".job_events '
                "where job_id = :id order by seq"
            ),
            {"id": job_id},
        )
        return [dict(r._mapping) for r in rows]


async def seed_audit(server: Server, slug: str, rows: int) -> None:
    async with server.services.engine.begin() as conn:
        await conn.execute(
            text(
                f'insert into "{tenant_schema(slug)}".audit_log (actor, action, target, allowed) '
                "select 'seed', 'seed.' || (n % 3), 'x', n % 5 <> 0 from generate_series(1, :n) n"
            ),
            {"n": rows},
        )


def ws_url(server: Server) -> str:
    return server.url.replace("http://", "ws://") + "/graphql"


def ws_client(server: Server, token: str, slug: str) -> Client:
    transport = WebsocketsTransport(
        url=ws_url(server),
        init_payload={"authorization": f"Bearer {token}", "tenant": slug},
        subprotocols=[WebsocketsTransport.GRAPHQLWS_SUBPROTOCOL],
    )
    return Client(transport=transport)


async def subscribe_all(
    server: Server, token: str, slug: str, job_id: uuid.UUID, after: int | None = None
) -> list[dict[str, Any]]:
    """Every event the subscription delivers, until it completes."""
    got = []
    async with ws_client(server, token, slug) as session:
        request = GraphQLRequest(EVENTS, variable_values={"id": str(job_id), "after": after})
        async for result in session.subscribe(request):
            got.append(result["jobEvents"])
    return got


@contextlib.asynccontextmanager
async def redis_proxy(target: str) -> AsyncIterator[Any]:
    """A TCP proxy in front of Redis that can be taken down and brought back."""
    from redis.asyncio.connection import parse_url

    where = parse_url(target)
    open_target: Any
    if "path" in where:
        open_target = lambda: asyncio.open_unix_connection(where["path"])  # noqa: E731
    else:
        open_target = lambda: asyncio.open_connection(where.get("host", "localhost"), where.get("port", 6379))  # noqa: E731
    port = _free_port()
    writers: list[asyncio.StreamWriter] = []

    async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(Exception):
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        writer.close()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await open_target()
        writers.extend([writer, up_writer])
        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))

    class Proxy:
        url = f"redis://127.0.0.1:{port}/{where.get('db', 0)}"
        server: asyncio.Server | None = None

        async def up(self) -> None:
            self.server = await asyncio.start_server(handle, "127.0.0.1", port)

        async def down(self) -> None:
            if self.server is not None:
                self.server.close()
                for w in writers:
                    w.close()
                writers.clear()
                await self.server.wait_closed()
                self.server = None

    proxy = Proxy()
    await proxy.up()
    try:
        yield proxy
    finally:
        await proxy.down()
