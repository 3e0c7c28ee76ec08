"""Domain events: CloudEvents 1.0 on the Redis stream, one per committed change, none lost.

tests/events/cloudevents-1.0.schema.json is the CloudEvents JSON schema as published with
the specification (cloudevents/spec, `cloudevents/cloudevents.json`, Apache-2.0). It
checks the envelope's shape; `check_envelope` adds what it leaves out (RFC 3339 time,
URI-reference source, extension attribute names).
"""

from __future__ import annotations

import asyncio
import json
import re
import socket
import sys
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from redis.asyncio import Redis
from sqlalchemy import func, select

from conftest import Server, make_tenant, start_server, unique_slug
from jobs.kit import ROOT, running_worker, worker_env
from uds.db import transaction
from uds.jobs import service as jobs
from uds.observability import events
from uds.observability.events import EVENT_TYPES, OUTBOX
from uds.observability.relay import APPEND, SEEN_SECONDS, EventRelay, stream_key
from uds.settings import Settings

SCHEMA = json.loads((Path(__file__).parent / "cloudevents-1.0.schema.json").read_text())
VALIDATOR = jsonschema.Draft7Validator(SCHEMA, format_checker=jsonschema.Draft7Validator.FORMAT_CHECKER)
CONTEXT_ATTRIBUTES = {"specversion", "id", "source", "type", "time", "subject", "datacontenttype", "data"}

ADD_MEMBER = """mutation($slug: String!, $s: String!, $r: TenantRole!) {
  admin { addMember(slug: $slug, subject: $s, role: $r) { __typename } } }"""
REMOVE = """mutation($s: String!) { removeMember(subject: $s) { __typename ... on MemberRemoved { removed } } }"""
SET_STATUS = """mutation($slug: String!) { admin { s: %s(slug: $slug) { __typename } } }"""
REGISTER = """mutation($input: DataSourceInput!) { registerDataSource(input: $input) {
  __typename ... on DataSource { id } ... on ValidationError { message } } }"""
START = """mutation($id: ID!) { startDiscovery(dataSourceId: $id) { __typename ... on Job { id status } } }"""
CANCEL = """mutation($id: ID!) { cancelJob(id: $id) { __typename ... on Job { status } } }"""
DELETE_SOURCE = """mutation($id: ID!) { deleteDataSource(id: $id) { __typename } }"""
DELETE_TENANT = """mutation($slug: String!) { admin { deleteTenant(slug: $slug, confirm: $slug) { __typename } } }"""


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
async def events_server(migrated: Settings) -> AsyncIterator[Server]:
    """A server on a Redis namespace of its own: its stream holds only this module's events."""
    settings = replace(
        migrated,
        redis_prefix=f"uds-test-ev-{uuid.uuid4().hex[:8]}:",
        events_relay=True,
        events_relay_interval_seconds=0.2,
    )
    async for server in start_server(settings):
        yield server
    redis = Redis.from_url(settings.redis_url or "")
    try:
        doomed = [k async for k in redis.scan_iter(match=f"{settings.redis_prefix}*")]
        if doomed:
            await redis.delete(*doomed)
    finally:
        await redis.aclose()


async def stream(settings: Settings, tenant: str | None = None) -> list[dict[str, Any]]:
    redis = Redis.from_url(settings.redis_url or "")
    try:
        entries = await redis.xrange(stream_key(settings.redis_prefix))
    finally:
        await redis.aclose()
    found = []
    for _, fields in entries:
        event = json.loads(fields[b"event"])
        assert fields[b"id"].decode() == event["id"] and fields[b"type"].decode() == event["type"].removeprefix("uds.")
        if tenant is None or event.get("tenant") == tenant:
            found.append(event)
    return found


async def settled(server: Server, tenant: str, count: int, *, within: float = 15.0) -> list[dict[str, Any]]:
    """The tenant's events once `count` have arrived, after one more relay pass (so that an
    extra, unexpected event would have arrived too)."""
    deadline = time.monotonic() + within
    while len(found := await stream(server.settings, tenant)) < count:
        assert time.monotonic() < deadline, [e["type"] for e in found]
        await asyncio.sleep(0.05)
    await server.services.relay.drain()
    return await stream(server.settings, tenant)


def check_envelope(event: dict[str, Any], settings: Settings) -> None:
    VALIDATOR.validate(event)
    assert event["specversion"] == "1.0" and event["datacontenttype"] == "application/json"
    assert uuid.UUID(event["id"])
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)", event["time"]), event["time"]
    assert datetime.fromisoformat(event["time"].replace("Z", "+00:00")).tzinfo is not None
    assert event["type"].removeprefix("uds.") in EVENT_TYPES
    expected = f"{settings.event_source}/tenants/{event['tenant']}" if "tenant" in event else "/uds/platform"
    assert event["source"] == expected
    for name in set(event) - CONTEXT_ATTRIBUTES:  # extension attributes: lower-case a-z0-9, <= 20
        assert re.fullmatch(r"[a-z0-9]{1,20}", name), name
    assert isinstance(event["data"], dict)


async def ok(server: Server, query: str, variables: dict[str, Any], **kw: Any) -> dict[str, Any]:
    status, body = await server.gql(query, variables, **kw)
    assert status == 200 and "errors" not in body, body
    return body["data"]  # type: ignore[no-any-return]


async def test_one_valid_event_per_committed_change(events_server: Server) -> None:
    server = events_server
    root = server.token("root@test", admin=True)
    slug = await make_tenant(server, members={"boss@x": "ADMIN"})
    boss = server.token("boss@x")
    await ok(server, ADD_MEMBER, {"slug": slug, "s": "ana@x", "r": "VIEWER"}, token=root)
    await ok(server, ADD_MEMBER, {"slug": slug, "s": "ana@x", "r": "VIEWER"}, token=root)  # no change: no event
    await ok(server, ADD_MEMBER, {"slug": slug, "s": "ana@x", "r": "EDITOR"}, token=root)
    removed = await ok(server, REMOVE, {"s": "ana@x"}, token=boss, tenant=slug)
    assert removed["removeMember"]["removed"] is True
    removed = await ok(server, REMOVE, {"s": "nobody@x"}, token=boss, tenant=slug)  # nothing removed
    assert removed["removeMember"]["removed"] is False
    await ok(server, SET_STATUS % "suspendTenant", {"slug": slug}, token=root)
    await ok(server, SET_STATUS % "suspendTenant", {"slug": slug}, token=root)  # already suspended
    await ok(server, SET_STATUS % "resumeTenant", {"slug": slug}, token=root)
    source = {"name": "gone", "host": "127.0.0.1", "port": closed_port(), "database": "d", "user": "u",
              "password": "secret-never-in-events", "sslmode": "disable"}
    registered = await ok(server, REGISTER, {"input": source}, token=boss, tenant=slug)
    source_id = registered["registerDataSource"]["id"]
    job = (await ok(server, START, {"id": source_id}, token=boss, tenant=slug))["startDiscovery"]
    assert job["status"] == "QUEUED"  # no worker here: cancelled before it starts
    cancelled = await ok(server, CANCEL, {"id": job["id"]}, token=boss, tenant=slug)
    assert cancelled["cancelJob"]["status"] == "CANCELLED"
    await ok(server, DELETE_SOURCE, {"id": source_id}, token=boss, tenant=slug)
    await ok(server, DELETE_TENANT, {"slug": slug}, token=root)

    expected = [
        "tenant.created", "member.added", "member.added", "member.updated", "member.removed",
        "tenant.suspended", "tenant.resumed", "datasource.registered", "discovery.started",
        "job.cancelled", "datasource.deleted", "tenant.deleted",
    ]  # fmt: skip
    found = await settled(server, slug, len(expected))
    assert [e["type"] for e in found] == [f"uds.{t}" for t in expected]
    assert len({e["id"] for e in found}) == len(found)
    for event in found:
        check_envelope(event, server.settings)
        assert event["tenant"] == slug
    by_type = {e["type"]: e for e in found}
    assert by_type["uds.tenant.created"]["data"] == {"slug": slug, "name": slug.title(), "plan": "free",
                                                     "actor": "root@test"}
    assert by_type["uds.member.updated"]["data"] == {"subject": "ana@x", "role": "EDITOR", "previousRole": "VIEWER",
                                                     "actor": "root@test"}
    assert by_type["uds.member.removed"]["subject"] == "member/ana@x"
    assert by_type["uds.datasource.registered"]["subject"] == f"datasource/{source_id}"
    assert by_type["uds.discovery.started"]["data"]["dataSourceId"] == source_id
    assert by_type["uds.job.cancelled"]["data"] == {"jobId": job["id"], "kind": "discovery", "status": "CANCELLED"}
    assert "secret-never-in-events" not in json.dumps(found)


async def test_a_rolled_back_mutation_emits_nothing(events_server: Server) -> None:
    """createTenant runs, then setMember fails the request (no X-Tenant-ID): all rolled back."""
    server = events_server
    slug = unique_slug()
    query = """mutation($slug: String!) {
      admin { createTenant(input: {slug: $slug, name: "Doomed"}) { __typename } }
      setMember(subject: "a@x", role: VIEWER) { __typename } }"""
    status, body = await server.gql(query, {"slug": slug}, token=server.token("root@test", admin=True))
    assert body["errors"][0]["extensions"]["code"] == "TENANT_REQUIRED"
    await server.services.relay.drain()
    async with server.services.engine.connect() as conn:
        pending = await conn.scalar(select(func.count()).select_from(OUTBOX).where(OUTBOX.c.tenant == slug))
    assert pending == 0
    assert await stream(server.settings, slug) == []
    # A change refused inside its mutation (a union error) emits nothing either.
    existing = await make_tenant(server)
    data = await ok(server, """mutation($s: String!) { admin { createTenant(input: {slug: $s, name: "Again"}) {
        __typename } } }""", {"s": existing}, token=server.token("root@test", admin=True))
    assert data["admin"]["createTenant"]["__typename"] == "Conflict"
    assert [e["type"] for e in await settled(server, existing, 1)] == ["uds.tenant.created"]


async def test_discovery_failure_from_a_worker(events_server: Server) -> None:
    server = events_server
    slug = await make_tenant(server, members={"ed@x": "EDITOR"})
    token = server.token("ed@x")
    source = {"name": "down", "host": "127.0.0.1", "port": closed_port(), "database": "d", "user": "u",
              "password": "p", "sslmode": "disable"}
    source_id = (await ok(server, REGISTER, {"input": source}, token=token, tenant=slug))["registerDataSource"]["id"]
    job_id = (await ok(server, START, {"id": source_id}, token=token, tenant=slug))["startDiscovery"]["id"]
    async with running_worker(server.settings):
        found = await settled(server, slug, 5)
    assert [e["type"] for e in found] == [
        "uds.tenant.created", "uds.member.added", "uds.datasource.registered", "uds.discovery.started",
        "uds.discovery.failed",
    ]
    failed = found[-1]
    check_envelope(failed, server.settings)
    assert failed["subject"] == f"job/{job_id}"
    assert failed["data"]["status"] == "FAILED" and failed["data"]["error"]


async def test_discovery_finished_carries_the_summary(events_server: Server) -> None:
    """The job's end and its event commit together (uds.jobs.service.finish)."""
    server = events_server
    slug = await make_tenant(server)
    summary = {"run_id": "r", "tables": 3, "columns": 12, "relationships": 2, "rows_read": 900}
    async with transaction(server.services.engine, slug) as tx:
        session = await tx.tenant()
        state = await jobs.start_job(
            session, services=server.services, kind="discovery", params={"data_source_id": "x"}, created_by="t"
        )
        await jobs.finish(session, state.id, status="SUCCEEDED", result=summary)
    found = await settled(server, slug, 3)
    assert [e["type"] for e in found] == ["uds.tenant.created", "uds.discovery.started", "uds.discovery.finished"]
    assert found[-1]["data"]["summary"] == summary


async def test_concurrent_relays_deliver_each_event_once(events_server: Server) -> None:
    server = events_server
    slug = unique_slug()
    async with transaction(server.services.engine) as tx:
        for i in range(120):
            await events.record(await tx.core(), type="member.added", tenant=slug, subject=f"member/m{i}", data={"i": i})
    relays = [EventRelay(server.services.engine, server.settings) for _ in range(3)]
    try:
        await asyncio.gather(*(relay.drain() for relay in relays), server.services.relay.drain())
        for relay in relays:
            await relay.drain()
    finally:
        for relay in relays:
            await relay.stop()
    found = await settled(server, slug, 120)
    assert [e["data"]["i"] for e in found] == list(range(120))  # once each, in commit order


async def test_an_interrupted_relay_sending_again_is_dropped(events_server: Server) -> None:
    """A pass whose commit failed after the append sends the same ids again: the stream keeps one."""
    server = events_server
    redis = Redis.from_url(server.settings.redis_url or "")
    scratch = f"{server.settings.redis_prefix}scratch-{uuid.uuid4().hex}"
    key, seen = f"{scratch}:events", f"{scratch}:seen"  # the script on keys of this test alone
    try:
        before = 0
        ids = [str(uuid.uuid4()) for _ in range(3)]
        args: list[Any] = [1000, SEEN_SECONDS]
        for i in ids:
            args += [i, "member.added", json.dumps({"id": i})]
        script = redis.register_script(APPEND)
        assert await script(keys=[key, seen], args=args) == 3
        assert await script(keys=[key, seen], args=args) == 0
        assert await redis.xlen(key) == before + 3
        await redis.delete(key, seen)
    finally:
        await redis.aclose()


async def test_events_tail_cli(events_server: Server) -> None:
    server = events_server
    slug = await make_tenant(server, members={"ana@x": "VIEWER"})
    await settled(server, slug, 2)
    env = worker_env(server.settings)
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "uds.cli", "events", "tail", "--from-start", "--tenant", slug,
        "--type", "member.added", "--count", "1",
        cwd=ROOT, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0, err.decode()
    lines = out.decode().splitlines()
    assert len(lines) == 1
    event = json.loads(lines[0])
    assert event["type"] == "uds.member.added" and event["data"]["subject"] == "ana@x"
    check_envelope(event, server.settings)
