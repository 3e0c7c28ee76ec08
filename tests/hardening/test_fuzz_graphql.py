"""Schema-driven fuzzing: schemathesis (GraphQL mode) against a live server, every root field.

Every Query and Mutation field gets generated documents (arguments from the schema, random
strings, NUL characters included), each sent as one of a tenant VIEWER, a tenant ADMIN and
a platform admin (drawn by Hypothesis with the document). Answers like FORBIDDEN, NOT_FOUND, BAD_USER_INPUT or a union's error member are the
API doing its job; the test fails on any 5xx, any INTERNAL error, an error without a
code, or a body that is not JSON. Examples per operation are bounded (EXAMPLES) so the run
takes seconds; set UDS_FUZZ_EXAMPLES to fuzz longer by hand.

The server runs on a database of its own, since generated mutations create tenants,
members and data sources at random.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis.graphql import nodes

from conftest import Server, _create_database, _drop_database, make_tenant, start_server
from uds.db import make_engine
from uds.runtime import migrate_core
from uds.settings import Settings

EXAMPLES = int(os.environ.get("UDS_FUZZ_EXAMPLES", "10"))
ALLOWED = {"UNAUTHENTICATED", "FORBIDDEN", "TENANT_REQUIRED", "NOT_FOUND", "BAD_USER_INPUT", "RATE_LIMITED",
           "QUERY_TOO_COMPLEX", "CONFLICT"}

# Scalars of our own: what a client could send for them.
schemathesis.graphql.scalar("DateTime", st.sampled_from(["2026-01-02T03:04:05Z", "not a date", ""]).map(nodes.String))
schemathesis.graphql.scalar(
    "JSON",
    st.one_of(
        st.text(max_size=20).map(nodes.String),
        st.integers().map(nodes.Int),
        st.booleans().map(nodes.Boolean),
        st.just(nodes.Null),
    ),
)


@pytest.fixture(scope="module")
async def fuzz_server(base_settings: Settings) -> AsyncIterator[Server]:
    from sqlalchemy import make_url

    assert base_settings.database_url
    name = f"uds_fuzz_{uuid.uuid4().hex[:8]}"
    admin_url = make_url(base_settings.database_url).set(database="postgres").render_as_string(hide_password=False)
    await _create_database(admin_url, name)
    settings = replace(
        base_settings,
        database_url=make_url(base_settings.database_url).set(database=name).render_as_string(hide_password=False),
        redis_prefix=f"uds-test-fuzz-{uuid.uuid4().hex[:8]}:",
        source_connect_timeout=1.0,
    )
    engine = make_engine(settings, pool_size=1)
    try:
        await migrate_core(engine)
    finally:
        await engine.dispose()
    try:
        async for server in start_server(settings):
            yield server
    finally:
        await _drop_database(admin_url, name)


def fuzz(url: str, identities: dict[str, dict[str, str]]) -> tuple[int, list[dict[str, Any]]]:
    """Run every operation's examples as every identity (in a thread: the server's loop runs on)."""
    schema = schemathesis.graphql.from_url(url, headers=identities["platform-admin"])
    failures: list[dict[str, Any]] = []
    sent = 0
    session = requests.Session()
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 15, [op.label for op in operations]
    for operation in operations:

        @given(case=operation.as_strategy(), label=st.just(operation.label), who=st.sampled_from(sorted(identities)))
        @settings(
            max_examples=EXAMPLES,
            deadline=None,
            database=None,
            phases=[Phase.explicit, Phase.generate],
            suppress_health_check=list(HealthCheck),
        )
        def run(case: Any, label: str, who: str) -> None:
            nonlocal sent
            response = case.call(session=session, headers=identities[who], timeout=30)
            sent += 1
            problem = judge(response)
            if problem:
                failures.append({"operation": label, "as": who, "problem": problem,
                                 "body": case.body, "status": response.status_code, "answer": response.text[:500]})

        run()
    return sent, failures


def judge(response: requests.Response) -> str | None:
    if response.status_code >= 500:
        return f"HTTP {response.status_code}"
    try:
        body = response.json()
    except ValueError:
        return "not JSON"
    for error in body.get("errors") or ():
        code = (error.get("extensions") or {}).get("code")
        if code not in ALLOWED:
            return f"error code {code!r}: {error.get('message')}"
    return None


async def test_fuzzing_every_operation_finds_no_internal_error(fuzz_server: Server) -> None:
    server = fuzz_server
    slug = await make_tenant(server, members={"viewer@fuzz": "VIEWER", "admin@fuzz": "ADMIN"})
    identities = {
        "member": {"authorization": f"Bearer {server.token('viewer@fuzz')}", "x-tenant-id": slug},
        "admin": {"authorization": f"Bearer {server.token('admin@fuzz')}", "x-tenant-id": slug},
        "platform-admin": {"authorization": f"Bearer {server.token('root@fuzz', admin=True)}"},
    }
    sent, failures = await asyncio.to_thread(fuzz, f"{server.url}/graphql", identities)
    assert sent >= EXAMPLES * 15 // 2, sent  # it really ran (some operations have few distinct examples)
    assert failures == [], "\n".join(f"{f['operation']} as {f['as']}: {f['problem']}\n  {f['body']}\n  {f['answer']}"
                                     for f in failures[:20])
