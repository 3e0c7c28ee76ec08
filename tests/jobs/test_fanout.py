"""jobEvents at scale: 200 subscribers of one job, joining and leaving while events flow.

Ten WebSocket connections carry twenty subscriptions each. This process plays the worker
(emit and publish, as uds.workers does). Every subscriber must see each event once, in
order, from where it started until it left or the job ended; the API process holds one
Redis subscription for the job whoever joins, and shares replay reads and executions.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import uuid
from typing import Any

from redis.asyncio import Redis
from websockets.asyncio.client import connect

from conftest import Server
from jobs.kit import start, tenant_with, ws_url
from uds.api import execution
from uds.db import transaction
from uds.jobs import service
from uds.jobs.events import emit, publish
from uds.jobs.models import SUCCEEDED
from uds.settings import Settings

QUERY = "subscription($id: ID!, $after: Int) { jobEvents(jobId: $id, afterSeq: $after) { seq type job { status } } }"
CONNECTIONS = 10
PER_CONNECTION = 20


class Connection:
    """One graphql-transport-ws connection with many subscriptions on it."""

    def __init__(self, ws: Any) -> None:
        self.ws = ws
        self.seqs: dict[str, list[int]] = {}
        self.done: dict[str, asyncio.Event] = {}
        self.started: dict[str, asyncio.Event] = {}
        self.reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        async for raw in self.ws:
            message = json.loads(raw)
            op = message.get("id")
            if message["type"] == "next":
                event = message["payload"]["data"]["jobEvents"]
                self.seqs[op].append(event["seq"])
                self.started[op].set()
            elif message["type"] in ("complete", "error"):
                assert message["type"] == "complete", message
                self.done[op].set()

    async def subscribe(self, op: str, job_id: uuid.UUID, after: int | None) -> None:
        self.seqs[op], self.done[op], self.started[op] = [], asyncio.Event(), asyncio.Event()
        payload = {"query": QUERY, "variables": {"id": str(job_id), "after": after}}
        await self.ws.send(json.dumps({"id": op, "type": "subscribe", "payload": payload}))

    async def leave(self, op: str) -> None:
        await self.ws.send(json.dumps({"id": op, "type": "complete"}))
        self.done[op].set()


async def open_connection(server: Server, token: str, slug: str) -> Connection:
    ws = await connect(ws_url(server), subprotocols=["graphql-transport-ws"], max_queue=None)  # type: ignore[list-item]
    await ws.send(
        json.dumps(
            {"type": "connection_init", "payload": {"authorization": f"Bearer {token}", "tenant": slug}}
        )
    )
    assert json.loads(await ws.recv())["type"] == "connection_ack"
    return Connection(ws)


async def emit_one(server: Server, slug: str, job_id: uuid.UUID, i: int, *, last: bool = False) -> int:
    async with transaction(server.services.engine, slug) as tx:
        session = await tx.tenant()
        if last:
            record = await service.finish(session, job_id, status=SUCCEEDED)
        else:
            record = await emit(
                session, job_id, key=f"fan:{i}", type="progress", progress=i / 100, data={"i": i}
            )
    assert record is not None
    await publish(server.services.events, server.services.queue.keys, slug, record)
    return record.seq


async def test_200_subscribers_get_every_event_once_in_order(
    jobs_server: Server, job_settings: Settings
) -> None:
    server = jobs_server
    slug = await tenant_with(server, vi="VIEWER")
    job = await start(server, slug)  # seq 1: queued; no worker runs: this test emits
    token = server.token("vi@x")
    hub, reads = server.services.events, server.services.event_reads
    connections = [await open_connection(server, token, slug) for _ in range(CONNECTIONS)]
    slots = itertools.cycle(connections)
    starts: dict[tuple[Connection, str], int] = {}
    left: set[tuple[Connection, str]] = set()
    counter = itertools.count()

    async def join(after: int | None) -> tuple[Connection, str]:
        conn, op = next(slots), f"s{next(counter)}"
        await conn.subscribe(op, job.id, after)
        starts[(conn, op)] = (after or 0) + 1
        return conn, op

    queries_before = reads.queries
    shared_before = dict(execution.STATS)
    first = [await join(None) for _ in range(100)]
    await asyncio.wait_for(asyncio.gather(*(c.started[op].wait() for c, op in first)), 30)
    channel = server.services.queue.keys.channel(slug, job.id)
    assert hub.subscribers(channel) == 100
    commands = hub.subscribe_commands
    redis = Redis.from_url(job_settings.redis_url or "")
    try:
        assert (await redis.pubsub_numsub(channel))[0][1] == 1, "one Redis subscription for 100 subscribers"
    finally:
        await redis.aclose()
    assert reads.queries - queries_before < 100, "replays were shared between subscribers"

    seq = 1
    for i in range(1, 31):
        seq = await emit_one(server, slug, job.id, i)
        if i == 10:  # 60 join, some from the start, some from the middle; 30 of the first leave
            for n, key in enumerate(first[:30]):
                await key[0].leave(key[1])
                left.add(key)
                await join(None if n % 2 else seq - 5)
            for _ in range(30):
                await join(seq)
        if i == 20:
            await join(seq + 100)  # past the end: completes when the job ends, with nothing
            for n in range(38):
                await join([None, 0, seq - 1, seq, seq - 15][n % 5])
        await asyncio.sleep(0.01)
    assert hub.subscribe_commands == commands, "subscribers joining an open channel sent no SUBSCRIBE"
    final = await emit_one(server, slug, job.id, 31, last=True)
    late = await join(None)  # after the end: the whole replay, then complete

    remaining = [key for key in starts if key not in left]
    await asyncio.wait_for(asyncio.gather(*(c.done[op].wait() for c, op in remaining)), 60)
    assert len(starts) == 200
    for (conn, op), begin in starts.items():
        got = conn.seqs[op]
        assert got == sorted(set(got)), f"{op}: in order, no duplicates: {got}"
        if (conn, op) in left:
            assert got == list(range(begin, begin + len(got))), f"{op} left: a gapless prefix {got}"
        elif begin > final:
            assert got == [], f"{op} asked past the end: {got}"
        else:
            assert got == list(range(begin, final + 1)), f"{op}: every event from {begin} to {final}: {got}"
    assert late[0].seqs[late[1]][-1] == final
    executions = execution.STATS["event_executions"] - shared_before["event_executions"]
    shared = execution.STATS["shared_results"] - shared_before["shared_results"]
    assert shared > 10 * executions, f"each event's selection ran once for many ({executions} vs {shared})"
    # Caught-up subscribers get live events as frames written by the hub's reader
    # (uds.api.live); replays, gaps and the terminal event take graphql-core's path.
    delivered = sum(len(conn.seqs[op]) for conn, op in starts)
    live = execution.STATS["live_frames"] - shared_before["live_frames"]
    assert delivered / 2 < live < delivered, f"{live} of {delivered} deliveries were live frames"
    for conn in connections:
        await conn.ws.close()
        conn.reader.cancel()
    await asyncio.sleep(0.1)
    assert hub.subscribers(channel) == 0, "every subscription ended released its inbox"
