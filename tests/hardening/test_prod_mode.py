"""Prod mode (UDS_MODE=prod): each hardening item, checked against a dev server where it differs."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any

import asyncpg
import pytest

from conftest import Server, _asyncpg_dsn, make_tenant, start_server
from uds.datasources.credentials import generate_key
from uds.settings import Settings
from uds.tenants.slugs import tenant_schema

ORIGIN = "https://app.example"
INTROSPECT = "{ __schema { queryType { name } } }"


def prod_settings(migrated: Settings, **overrides: Any) -> Settings:
    return replace(migrated, mode="prod", secret_keys=(generate_key(),), **overrides)


@pytest.fixture(scope="module")
async def prod(migrated: Settings) -> AsyncIterator[Server]:
    async for server in start_server(prod_settings(migrated, cors_origins=(ORIGIN,))):
        yield server


@pytest.fixture(scope="module")
async def prod_introspection(migrated: Settings) -> AsyncIterator[Server]:
    async for server in start_server(prod_settings(migrated, allow_introspection=True)):
        yield server


def messages(body: dict[str, Any]) -> str:
    return json.dumps([e["message"] for e in body.get("errors", [])])


async def test_introspection_is_off_unless_allowed(prod: Server, prod_introspection: Server, server: Server) -> None:
    token = prod.token("a@x")
    _, body = await prod.gql(INTROSPECT, token=token)
    assert body["data"] is None and body["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
    _, body = await prod.gql("{ __type(name: \"Tenant\") { name } }", token=token)
    assert body["data"] is None
    for allowed in (prod_introspection, server):  # allowed by the setting; dev by default
        _, body = await allowed.gql(INTROSPECT, token=allowed.token("a@x"))
        assert body == {"data": {"__schema": {"queryType": {"name": "Query"}}}}


@pytest.mark.parametrize(
    ("query", "variables"),
    [
        ("{ me { subjekt } }", None),  # field
        ("{ auditLog(frist: 1) { nodes { action } } }", None),  # argument
        ("mutation($r: TenantRole!) { setMember(subject: \"a\", role: $r) { __typename } }", {"r": "ADMN"}),
        ("query($i: CreateTenantInput!) { __typename }", None),  # unused input type: no hint either
        ("{ tenant { statuz } }", None),
    ],
)
async def test_no_suggestions_in_errors(prod: Server, server: Server, query: str, variables: Any) -> None:
    slug = await make_tenant(server, members={"ana@acme": "ADMIN"})
    _, body = await prod.gql(query, variables, token=prod.token("ana@acme"), tenant=slug)
    assert body.get("errors"), body
    assert "did you mean" not in messages(body).lower()
    assert all(e["extensions"]["code"] == "BAD_USER_INPUT" for e in body["errors"])


async def test_dev_mode_keeps_suggestions(server: Server) -> None:
    _, body = await server.gql("{ me { subjekt } }", token=server.token("a@x"))
    assert "Did you mean" in messages(body)


async def test_graphiql_is_off(prod: Server, server: Server) -> None:
    html = {"accept": "text/html"}
    response = await prod.http.get(f"{prod.url}/graphql", headers=html)
    assert response.status_code == 404 and "<html" not in response.text.lower()
    assert "graphiql" in (await server.http.get(f"{server.url}/graphql", headers=html)).text.lower()


async def test_batching_is_off(prod: Server) -> None:
    response = await prod.http.post(
        f"{prod.url}/graphql",
        json=[{"query": "{ me { subject } }"}, {"query": "{ me { subject } }"}],
        headers={"authorization": f"Bearer {prod.token('a@x')}"},
    )
    assert response.status_code == 400
    assert response.json()["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"


async def test_internal_errors_are_masked_with_the_request_id(prod: Server, server: Server, migrated: Settings) -> None:
    """A tenant whose schema vanished behind UDS's back: the SQL error never reaches the client."""
    slug = await make_tenant(server, members={"ana@acme": "ADMIN"})
    conn = await asyncpg.connect(**_asyncpg_dsn(migrated.database_url or ""))
    try:
        await conn.execute(f'drop schema "{tenant_schema(slug)}" cascade')
    finally:
        await conn.close()
    try:
        response = await prod.http.post(
            f"{prod.url}/graphql",
            json={"query": "{ auditLog(first: 1) { nodes { action } } }"},
            headers={"authorization": f"Bearer {prod.token('ana@acme')}", "x-tenant-id": slug,
                     "x-request-id": "req-prod-mask-1"},
        )
    finally:  # a tenant without its schema would trip `uds migrate --all-tenants` later on
        await server.admin(
            "mutation($s: String!) { admin { deleteTenant(slug: $s, confirm: $s) { __typename } } }", {"s": slug}
        )
    body = response.json()
    error = body["errors"][0]
    assert error["extensions"] == {"code": "INTERNAL", "requestId": "req-prod-mask-1"}
    assert error["message"] == "internal error (request id req-prod-mask-1)"
    assert response.headers["x-request-id"] == "req-prod-mask-1"
    text = response.text.lower()
    assert "audit_log" not in text and "relation" not in text and tenant_schema(slug) not in text


async def test_cors_comes_from_the_setting(prod: Server, server: Server) -> None:
    preflight = {"origin": ORIGIN, "access-control-request-method": "POST",
                 "access-control-request-headers": "authorization,content-type,x-tenant-id"}
    allowed = await prod.http.options(f"{prod.url}/graphql", headers=preflight)
    assert allowed.status_code == 200
    assert allowed.headers["access-control-allow-origin"] == ORIGIN
    assert "x-tenant-id" in allowed.headers["access-control-allow-headers"].lower()
    foreign = await prod.http.options(f"{prod.url}/graphql", headers={**preflight, "origin": "https://evil.example"})
    assert foreign.status_code == 400 and "access-control-allow-origin" not in foreign.headers
    actual = await prod.http.post(
        f"{prod.url}/graphql", json={"query": "{ __typename }"}, headers={"origin": ORIGIN}
    )
    assert actual.headers["access-control-allow-origin"] == ORIGIN
    assert "ratelimit-remaining" in actual.headers["access-control-expose-headers"].lower()
    # Unset (the dev server here): no CORS headers for anybody.
    none = await server.http.options(f"{server.url}/graphql", headers=preflight)
    assert "access-control-allow-origin" not in none.headers


def test_cors_setting_is_checked() -> None:
    from uds.errors import ConfigError

    assert Settings.from_env({"UDS_CORS_ORIGINS": "https://a.example, http://localhost:3000"}).cors_origins == (
        "https://a.example",
        "http://localhost:3000",
    )
    for bad in ("*", "a.example", "https://a.example/path"):
        with pytest.raises(ConfigError, match="UDS_CORS_ORIGINS"):
            Settings.from_env({"UDS_CORS_ORIGINS": bad})
    assert Settings.from_env({"UDS_MODE": "prod"}).introspection is False
    assert Settings.from_env({"UDS_MODE": "prod", "UDS_ALLOW_INTROSPECTION": "on"}).introspection is True
    assert Settings.from_env({}).introspection is True
