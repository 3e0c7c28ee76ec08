"""Policies through the whole stack: GraphQL -> Context.decide -> engine, both backends.

The `opa` variant goes through the opa backend over HTTP. Without UDS_TEST_OPA_URL its
server is tests/policies/opa_fake.py, whose decisions come from the embedded engine: that
variant then proves the HTTP plumbing end to end (ids say `opa-http-fake`), not that OPA
decides the same; with a real OPA configured it does (ids say `real-opa`).

An engine that cannot decide makes queries and mutations fail with POLICY_UNAVAILABLE
(never FORBIDDEN, never a silent allow), changes nothing, and turns /readyz to 503.
"""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from opa_fake import FakeOpa, dead_url, real_opa_url, running_fake_opa
from sqlalchemy import text

from conftest import CREATE_TENANT, Server, make_tenant, start_server, unique_slug
from uds.policies.catalogue import REGO_DIR
from uds.settings import Settings

CAN = "query($a: String!) { me { can(action: $a) { allow reasons } } }"
SET_MEMBER = """mutation($s: String!) { setMember(subject: $s, role: VIEWER) {
  __typename ... on NotAllowed { reasons } } }"""
SUSPEND = "mutation($s: String!) { admin { suspendTenant(slug: $s) { __typename } } }"


async def can(server: Server, token: str, slug: str, action: str) -> dict[str, Any]:
    status, body = await server.gql(CAN, {"a": action}, token=token, tenant=slug)
    assert status == 200 and "errors" not in body, body
    return body["data"]["me"]["can"]  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
async def fake_opa() -> AsyncIterator[FakeOpa]:
    async with running_fake_opa() as fake:
        yield fake


@pytest.fixture(scope="module")
async def opa_server(migrated: Settings, fake_opa: FakeOpa) -> AsyncIterator[Server]:
    """A UDS server deciding through the opa backend (the fake, or UDS_TEST_OPA_URL)."""
    async for server in start_server(replace(migrated, policy_url=real_opa_url() or fake_opa.url)):
        yield server


OPA_ID = "real-opa" if real_opa_url() else "opa-http-fake"


@pytest.fixture(params=["embedded", OPA_ID])
def any_server(request: pytest.FixtureRequest) -> Server:
    return request.getfixturevalue("server" if request.param == "embedded" else "opa_server")  # type: ignore[no-any-return]


async def test_plan_without_a_feature(any_server: Server) -> None:
    slug = await make_tenant(any_server, members={"ed@acme": "EDITOR"})
    token = any_server.token("ed@acme")
    assert await can(any_server, token, slug, "dashboard.export") == {
        "allow": False,
        "reasons": ["plan free does not include feature grafana_export"],
    }
    assert await can(any_server, token, slug, "dashboard.generate") == {"allow": True, "reasons": []}


async def test_suspended_tenant(any_server: Server) -> None:
    slug = await make_tenant(any_server, members={"boss@acme": "ADMIN"})
    token = any_server.token("boss@acme")
    await any_server.admin(SUSPEND, {"s": slug})
    assert await can(any_server, token, slug, "datasource.register") == {
        "allow": False,
        "reasons": ["tenant is suspended: read-only"],
    }
    assert await can(any_server, token, slug, "dashboard.read") == {"allow": True, "reasons": []}
    _, body = await any_server.gql(SET_MEMBER, {"s": "new@acme"}, token=token, tenant=slug)
    assert body["data"]["setMember"] == {
        "__typename": "NotAllowed",
        "reasons": ["tenant is suspended: read-only"],
    }
    _, body = await any_server.gql("{ tenant { status } }", token=token, tenant=slug)
    assert body["data"]["tenant"] == {"status": "SUSPENDED"}


async def test_role_denial_reasons(any_server: Server) -> None:
    slug = await make_tenant(any_server, members={"viewer@acme": "VIEWER"})
    token = any_server.token("viewer@acme")
    assert await can(any_server, token, slug, "discovery.start") == {
        "allow": False,
        "reasons": ["role EDITOR or higher required"],
    }
    status, body = await any_server.gql(
        "{ auditLog(first: 1) { edges { node { action } } } }", token=token, tenant=slug
    )
    assert body["errors"][0]["extensions"] == {
        "code": "FORBIDDEN",
        "reasons": ["role ADMIN or higher required"],
    }


async def test_opa_backend_is_ready(opa_server: Server) -> None:
    response = await opa_server.http.get(f"{opa_server.url}/readyz")
    assert response.status_code == 200 and response.json()["checks"]["policy"] == "ok"


# --- the engine down ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def broken_rego(tmp_path_factory: pytest.TempPathFactory) -> Path:
    target = tmp_path_factory.mktemp("broken") / "rego"
    shutil.copytree(REGO_DIR, target)
    (target / "authz.rego").write_text("package uds.authz\nimport rego.v1\ndecision := {\n")
    return target


@pytest.fixture(scope="module", params=["embedded", "opa"])
async def down_server(
    request: pytest.FixtureRequest, migrated: Settings, broken_rego: Path
) -> AsyncIterator[Server]:
    """A UDS server whose policy engine cannot decide: a bundle that does not compile, or no OPA."""
    if request.param == "embedded":
        settings = replace(migrated, policy_dir=broken_rego)
    else:
        settings = replace(migrated, policy_url=dead_url(), policy_timeout_seconds=0.2, policy_retries=0)
    async for server in start_server(settings):
        yield server


async def test_engine_down_readyz_reports_policy_failing(down_server: Server) -> None:
    response = await down_server.http.get(f"{down_server.url}/readyz")
    assert response.status_code == 503
    assert response.json()["checks"] == {"database": "ok", "redis": "ok", "policy": "failing"}


async def test_engine_down_query_gets_policy_unavailable(down_server: Server, server: Server) -> None:
    slug = await make_tenant(server, members={"ana@acme": "ADMIN"})  # made through a healthy server
    token = down_server.token("ana@acme")
    for query in ("{ me { subject } }", "{ tenant { slug } }"):
        status, body = await down_server.gql(query, token=token, tenant=slug)
        assert not any((body["data"] or {}).values())  # `me` is non-null, so data is null; `tenant` is null
        assert [e["extensions"]["code"] for e in body["errors"]] == ["POLICY_UNAVAILABLE"], body
    status, body = await down_server.gql(CAN, {"a": "tenant.read"}, token=token, tenant=slug)
    assert body["errors"][0]["extensions"]["code"] == "POLICY_UNAVAILABLE"  # not a denial


async def test_engine_down_mutation_gets_policy_unavailable_and_changes_nothing(
    down_server: Server, server: Server
) -> None:
    slug = await make_tenant(server, members={"ana@acme": "ADMIN"})
    status, body = await down_server.gql(
        SET_MEMBER, {"s": "new@acme"}, token=down_server.token("ana@acme"), tenant=slug
    )
    assert body["data"] is None
    assert [e["extensions"]["code"] for e in body["errors"]] == ["POLICY_UNAVAILABLE"], body

    new_slug = unique_slug()
    root = down_server.token("root@test", admin=True)
    status, body = await down_server.gql(CREATE_TENANT, {"slug": new_slug, "name": "New"}, token=root)
    assert [e["extensions"]["code"] for e in body["errors"]] == ["POLICY_UNAVAILABLE"], body
    async with server.services.engine.connect() as conn:
        members = await conn.scalar(
            text(
                "select count(*) from uds.memberships m join uds.tenants t on t.id = m.tenant_id where t.slug = :s"
            ),
            {"s": slug},
        )
        created = await conn.scalar(text("select count(*) from uds.tenants where slug = :s"), {"s": new_slug})
    assert (members, created) == (1, 0)
