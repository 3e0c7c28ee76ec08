"""Abuse of the graphql-transport-ws protocol: every case ends in a close code or an error,
never in another tenant's events."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from conftest import ADD_MEMBER, Server
from jobs.kit import EVENTS, start, tenant_with, ws_url

PROTOCOL = "graphql-transport-ws"
REMOVE_MEMBER = """
mutation($subject: String!) { removeMember(subject: $subject) { __typename } }"""


async def closed_with(ws: ClientConnection) -> tuple[int, list[Any]]:
    """Read until the server closes; the close code and every message received before it."""
    received = []
    try:
        while True:
            received.append(json.loads(await asyncio.wait_for(ws.recv(), 10)))
    except ConnectionClosed as exc:
        assert exc.rcvd is not None
        return exc.rcvd.code, received


async def init(ws: ClientConnection, token: str | None, slug: str | None) -> None:
    payload = {}
    if token is not None:
        payload["authorization"] = f"Bearer {token}"
    if slug is not None:
        payload["tenant"] = slug
    await ws.send(json.dumps({"type": "connection_init", "payload": payload}))


async def acked(server: Server, token: str, slug: str) -> ClientConnection:
    ws = await connect(ws_url(server), subprotocols=[PROTOCOL])  # type: ignore[list-item]
    await init(ws, token, slug)
    assert json.loads(await ws.recv()) == {"type": "connection_ack"}
    return ws


def subscribe(op: str, job_id: str, after: int | None = None) -> str:
    variables = {"id": job_id, "after": after}
    return json.dumps({"id": op, "type": "subscribe", "payload": {"query": EVENTS, "variables": variables}})


async def test_subscribe_before_connection_init_closes_4401(jobs_server: Server) -> None:
    slug = await tenant_with(jobs_server, ed="EDITOR")
    job = await start(jobs_server, slug)
    async with connect(ws_url(jobs_server), subprotocols=[PROTOCOL]) as ws:  # type: ignore[list-item]
        await ws.send(subscribe("1", str(job.id)))
        assert await closed_with(ws) == (4401, [])


@pytest.mark.parametrize(
    "case", ["bad token", "no token", "unknown tenant", "not a member", "bound elsewhere"]
)
async def test_a_bad_connection_init_closes_4403_with_no_data(jobs_server: Server, case: str) -> None:
    slug = await tenant_with(jobs_server, ed="EDITOR")
    other = await tenant_with(jobs_server, someone="ADMIN")
    token: str | None = jobs_server.token("ed@x")
    tenant = slug
    if case == "bad token":
        token = jobs_server.token("ed@x")[:-4] + "AAAA"
    elif case == "no token":
        token = None
    elif case == "unknown tenant":
        tenant = "no-such-tenant"
    elif case == "not a member":
        tenant = other
    elif case == "bound elsewhere":
        token = jobs_server.token("svc@x", kind="service", tenant=other)
    async with connect(ws_url(jobs_server), subprotocols=[PROTOCOL]) as ws:  # type: ignore[list-item]
        await init(ws, token, tenant)
        await ws.send(subscribe("1", "00000000-0000-0000-0000-000000000000"))
        assert await closed_with(ws) == (4403, [])


async def test_duplicate_operation_ids_close_4409(jobs_server: Server) -> None:
    slug = await tenant_with(jobs_server, ed="EDITOR")
    job = await start(jobs_server, slug)  # no worker: it stays queued, subscriptions stay open
    ws = await acked(jobs_server, jobs_server.token("ed@x"), slug)
    async with ws:
        await ws.send(subscribe("same", str(job.id)))
        first = json.loads(await ws.recv())
        assert first["type"] == "next" and first["payload"]["data"]["jobEvents"]["type"] == "queued"
        await ws.send(subscribe("same", str(job.id)))
        code, _ = await closed_with(ws)
        assert code == 4409


async def test_subscriptions_per_connection_are_capped(jobs_server: Server) -> None:
    slug = await tenant_with(jobs_server, ed="EDITOR")
    job = await start(jobs_server, slug)
    ws = await acked(jobs_server, jobs_server.token("ed@x"), slug)
    async with ws:
        for i in range(20):
            await ws.send(subscribe(str(i), str(job.id)))
        seen = [json.loads(await ws.recv()) for _ in range(20)]
        assert sorted(int(m["id"]) for m in seen) == list(range(20))
        assert all(m["type"] == "next" for m in seen)
        await ws.send(subscribe("20", str(job.id)))
        refused = json.loads(await ws.recv())
        assert refused["id"] == "20" and refused["type"] == "error"
        assert "limit" in refused["payload"][0]["message"]
        # Completing one frees a place.
        await ws.send(json.dumps({"id": "0", "type": "complete"}))
        await asyncio.sleep(0.1)
        await ws.send(subscribe("21", str(job.id)))
        again = json.loads(await ws.recv())
        assert again["id"] == "21" and again["type"] == "next"


async def test_another_tenants_job_is_not_found_and_sends_no_events(jobs_server: Server) -> None:
    mine = await tenant_with(jobs_server, ed="EDITOR")
    theirs = await tenant_with(jobs_server, eve="ADMIN")
    their_job = await start(jobs_server, theirs, by="eve@x")
    ws = await acked(jobs_server, jobs_server.token("ed@x"), mine)
    async with ws:
        await ws.send(subscribe("1", str(their_job.id)))
        answer = json.loads(await ws.recv())
        assert answer["id"] == "1" and answer["type"] == "error"
        assert answer["payload"][0]["extensions"]["code"] == "NOT_FOUND"
        # Not an id at all: a clear input error.
        await ws.send(subscribe("2", "not-a-uuid"))
        answer = json.loads(await ws.recv())
        assert answer["id"] == "2" and answer["payload"][0]["extensions"]["code"] == "BAD_USER_INPUT"
        # The connection is still usable, and nothing else was sent.
        await ws.send(json.dumps({"type": "ping"}))
        assert json.loads(await ws.recv()) == {"type": "pong"}


async def test_each_subscription_is_authorized_when_it_starts(jobs_server: Server) -> None:
    slug = await tenant_with(jobs_server, boss="ADMIN", vi="VIEWER")
    job = await start(jobs_server, slug, by="boss@x")
    ws = await acked(jobs_server, jobs_server.token("vi@x"), slug)
    async with ws:
        await ws.send(subscribe("1", str(job.id)))
        assert json.loads(await ws.recv())["type"] == "next"
        # The viewer is removed while the connection stays open: the next subscription is refused.
        status, body = await jobs_server.gql(
            REMOVE_MEMBER, {"subject": "vi@x"}, token=jobs_server.token("boss@x"), tenant=slug
        )
        assert status == 200 and "errors" not in body, body
        await ws.send(subscribe("2", str(job.id)))
        answer = json.loads(await ws.recv())
        while answer["id"] != "2":
            answer = json.loads(await ws.recv())
        assert answer["type"] == "error" and answer["payload"][0]["extensions"]["code"] == "FORBIDDEN"
        # And back: a member again may subscribe again.
        await jobs_server.admin(ADD_MEMBER, {"slug": slug, "subject": "vi@x", "role": "VIEWER"})
        await ws.send(subscribe("3", str(job.id)))
        answer = json.loads(await ws.recv())
        while answer["id"] != "3":
            answer = json.loads(await ws.recv())
        assert answer["type"] == "next" and answer["payload"]["data"]["jobEvents"]["seq"] == 1


async def test_queries_and_mutations_are_refused_over_websocket(jobs_server: Server) -> None:
    slug = await tenant_with(jobs_server, ed="EDITOR")
    ws = await acked(jobs_server, jobs_server.token("ed@x"), slug)
    async with ws:
        await ws.send(
            json.dumps({"id": "q", "type": "subscribe", "payload": {"query": "{ tenant { slug } }"}})
        )
        answer = json.loads(await ws.recv())
        assert answer["type"] == "error" and answer["payload"][0]["extensions"]["code"] == "BAD_USER_INPUT"


async def test_only_the_graphql_transport_ws_subprotocol_is_spoken(jobs_server: Server) -> None:
    async with connect(ws_url(jobs_server), subprotocols=["graphql-ws"]) as ws:  # type: ignore[list-item]
        code, received = await closed_with(ws)
    assert code == 4406 and received == []


async def test_a_connection_that_outlived_its_token_may_not_subscribe(jobs_server: Server) -> None:
    slug = await tenant_with(jobs_server, ed="EDITOR")
    job = await start(jobs_server, slug)
    # Expired 10 s ago: still accepted at connection_init (30 s clock leeway), as if the
    # connection had been opened before it expired.
    stale = jobs_server.key.issue(
        "ed@x", issuer=jobs_server.settings.own_issuer, audience=jobs_server.settings.audience,
        ttl=10, now=time.time() - 20,
    )  # fmt: skip
    ws = await acked(jobs_server, stale, slug)
    async with ws:
        await ws.send(subscribe("1", str(job.id)))
        answer = json.loads(await ws.recv())
        assert answer["type"] == "error" and answer["payload"][0]["extensions"]["code"] == "UNAUTHENTICATED"
