"""Tenant isolation with the fast paths on, through a read pool of one connection.

Every tenant's reads go through the same connection in turn (so a statement, a prepared
statement or a snapshot left behind by one tenant would show in the next), interleaved
by concurrent requests, by the normal path, the JSON path and the plans, in full and by
persisted-query hash. Every response is checked for anything of another tenant.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest
from sqlalchemy import text

from api.test_persisted_queries import persisted
from conftest import Server, make_tenant, start_server
from uds.api import plans
from uds.datasources.service import secret_context
from uds.db import make_read_engine, make_read_pool
from uds.settings import Settings
from uds.tenants.slugs import tenant_schema

QUERIES = [
    "{ auditLog(first: 50) { edges { cursor node { id action target } } pageInfo { endCursor } } }",
    "{ jobs(first: 50) { nodes { id kind message } } }",
    "{ dataSources(first: 50) { edges { node { name host lastDiscoveryRun { id } } } } }",
    "{ me { subject } tenant { slug } auditLog(first: 5) { nodes { action } } jobs { nodes { kind } } }",
]


@pytest.fixture(scope="module")
async def one_connection(migrated: Settings) -> AsyncIterator[Server]:
    async for server in start_server(migrated):
        services = server.services
        old, services.read_engine = services.read_engine, make_read_engine(migrated, pool_size=1)
        await old.dispose()
        assert services.read_engine.pool.size() == 1 and services.read_engine.pool._max_overflow == 0
        # The plans' raw pool too: one connection.
        old_pool, services.read_pool = services.read_pool, await make_read_pool(migrated, pool_size=1)
        if old_pool is not None:
            await old_pool.close()
        assert services.read_pool.get_max_size() == 1
        yield server


async def seed(server: Server, slug: str) -> None:
    schema = tenant_schema(slug)
    mark = slug.replace("-", "")
    async with server.services.engine.begin() as conn:
        for i in range(5):
            await conn.execute(
                text(
                    f"insert into \"{schema}\".audit_log (actor, action, target, detail) values (:a, :b, :t, '{{}}')"
                ),
                {"a": f"a-{mark}", "b": f"mark.{mark}", "t": f"target-{mark}-{i}"},
            )
            await conn.execute(
                text(
                    f'insert into "{schema}".jobs (id, kind, status, progress, message, params, attempts, last_seq,'
                    " cancel_requested, created_by) values (:id, :kind, 'QUEUED', 0, :m, '{}', 0, 0, false, 'x')"
                ),
                {"id": uuid.uuid4(), "kind": f"k.{mark}", "m": f"msg-{mark}"},
            )
            source_id = uuid.uuid4()
            await conn.execute(
                text(
                    f'insert into "{schema}".data_sources (id, name, host, port, database, username, sslmode,'
                    " schemas, secret, secret_kid, created_by) values (:id, :n, :h, 5432, 'd', 'u', 'prefer',"
                    " '[]', :secret, :kid, 'x')"
                ),
                {
                    "id": source_id,
                    "n": f"src-{mark}-{i}",
                    "h": f"host-{mark}",
                    **_sealed(server, slug, source_id),
                },
            )


def _sealed(server: Server, tenant: str, source_id: uuid.UUID) -> dict[str, str]:
    """A really sealed password, so `uds secrets rotate` in the same session can open it."""
    cipher = server.services.credentials
    return {"secret": cipher.seal("p", context=secret_context(tenant, source_id)), "kid": cipher.current_kid}


async def ask(server: Server, slug: str, body: dict[str, Any]) -> bytes:
    response = await server.http.post(
        f"{server.url}/graphql",
        content=orjson.dumps(body),
        headers={
            "authorization": f"Bearer {server.token('ad@x')}",
            "x-tenant-id": slug,
            "content-type": "application/json",
        },
    )
    assert response.status_code == 200, response.text
    return response.content


async def test_interleaved_tenants_never_see_each_other(one_connection: Server) -> None:
    server = one_connection
    slugs = [await make_tenant(server, members={"ad@x": "ADMIN"}) for _ in range(5)]
    for slug in slugs:
        await seed(server, slug)
    marks = {slug: slug.replace("-", "") for slug in slugs}
    before = plans.STATS["plans_run"]
    for round_ in range(4):
        requests = []
        for query in QUERIES:
            for slug in slugs:
                body: dict[str, Any] = persisted(query) if round_ == 3 else {"query": query}
                requests.append((slug, ask(server, slug, body)))
        answers = await asyncio.gather(*(call for _slug, call in requests))
        for (slug, _call), answer in zip(requests, answers, strict=True):
            assert b'"errors"' not in answer, answer
            others = [text for s, m in marks.items() if s != slug for text in (m, s)]
            leaked = [m for m in others if m.encode() in answer]
            assert not leaked, f"{slug} got another tenant's data: {leaked}\n{answer[:500]!r}"
            assert marks[slug].encode() in answer or b'"me"' in answer
    assert plans.STATS["plans_run"] - before >= len(QUERIES) * len(slugs), "plans ran too"
