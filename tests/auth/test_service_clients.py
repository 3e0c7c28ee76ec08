"""Service clients: creation, the client-credentials grant, binding and revocation."""

from __future__ import annotations

import base64
from typing import Any

import httpx
from sqlalchemy import text

from conftest import CREATE_TENANT, Server, make_tenant, unique_slug

CREATE_CLIENT = """mutation($s: String!, $n: String!, $r: TenantRole!) { admin { createServiceClient(slug: $s, name: $n, role: $r) {
  __typename ... on ServiceClient { clientId clientSecret role revoked } ... on NotFound { message }
  ... on ValidationError { message } ... on NotAllowed { reasons } } } }"""
REVOKE_CLIENT = """mutation($s: String!, $c: String!) { admin { revokeServiceClient(slug: $s, clientId: $c) {
  __typename ... on ServiceClient { revoked } ... on NotFound { message } } } }"""
SET_LIMITS = """mutation($s: String!, $l: TenantLimitsInput!) { admin { setTenantLimits(slug: $s, limits: $l) {
  __typename ... on Tenant { plan features limits { maxDataSources maxConcurrentJobs discoveryRowBudget } }
  ... on ValidationError { message } ... on NotAllowed { reasons } } } }"""


async def new_client(server: Server, slug: str, role: str = "EDITOR") -> tuple[str, str]:
    data = await server.admin(CREATE_CLIENT, {"s": slug, "n": "etl", "r": role})
    result = data["admin"]["createServiceClient"]
    assert result["__typename"] == "ServiceClient", result
    return result["clientId"], result["clientSecret"]


async def token_request(
    server: Server, form: dict[str, str], auth: tuple[str, str] | None = None
) -> httpx.Response:
    return await server.http.post(f"{server.url}/oauth/token", data=form, auth=auth)


async def test_client_credentials_flow(server: Server) -> None:
    slug = await make_tenant(server)
    client_id, secret = await new_client(server, slug, "VIEWER")
    assert client_id.startswith("uds_sc_") and len(secret) >= 40

    basic = await token_request(server, {"grant_type": "client_credentials"}, auth=(client_id, secret))
    assert basic.status_code == 200, basic.text
    body = basic.json()
    assert body["token_type"] == "Bearer" and body["expires_in"] == 3600
    assert basic.headers["cache-control"] == "no-store"
    post = await token_request(
        server, {"grant_type": "client_credentials", "client_id": client_id, "client_secret": secret}
    )
    assert post.status_code == 200, post.text

    status, answer = await server.gql(
        "{ me { subject kind } tenant { slug } }", token=body["access_token"], tenant=slug
    )
    assert answer["data"] == {
        "me": {"subject": f"service:{client_id}", "kind": "service"},
        "tenant": {"slug": slug},
    }
    # A viewer service client cannot manage members.
    _, answer = await server.gql(
        'mutation { setMember(subject: "x@x", role: VIEWER) { __typename } }',
        token=body["access_token"],
        tenant=slug,
    )
    assert answer["data"]["setMember"]["__typename"] == "NotAllowed"


async def test_service_token_for_another_tenant(server: Server) -> None:
    mine = await make_tenant(server)
    other = await make_tenant(server)
    client_id, secret = await new_client(server, mine)
    token = (
        await token_request(server, {"grant_type": "client_credentials"}, auth=(client_id, secret))
    ).json()
    status, body = await server.gql("{ tenant { slug } }", token=token["access_token"], tenant=other)
    assert status == 403 and body["errors"][0]["extensions"]["code"] == "FORBIDDEN"


async def test_refusals(server: Server) -> None:
    slug = await make_tenant(server)
    client_id, secret = await new_client(server, slug)
    cases: list[tuple[dict[str, str], tuple[str, str] | None, int, str]] = [
        ({"grant_type": "client_credentials"}, (client_id, "wrong-secret"), 401, "invalid_client"),
        (
            {"grant_type": "client_credentials"},
            ("uds_sc_000000000000000000000000", secret),
            401,
            "invalid_client",
        ),
        ({"grant_type": "client_credentials"}, ("not-even-ours", secret), 401, "invalid_client"),
        ({"grant_type": "client_credentials"}, None, 401, "invalid_client"),
        (
            {"grant_type": "password", "username": "a", "password": "b"},
            (client_id, secret),
            400,
            "unsupported_grant_type",
        ),
        ({}, (client_id, secret), 400, "invalid_request"),
        ({"grant_type": "implicit"}, (client_id, secret), 400, "unsupported_grant_type"),
    ]
    for form, auth, status, error in cases:
        response = await token_request(server, form, auth)
        assert (response.status_code, response.json()["error"]) == (status, error), (
            form,
            auth,
            response.text,
        )
    garbage = await server.http.post(
        f"{server.url}/oauth/token",
        content=b"\xff\xfe",
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    assert garbage.status_code == 400 and garbage.json()["error"] == "invalid_request"
    as_json = await server.http.post(f"{server.url}/oauth/token", json={"grant_type": "client_credentials"})
    assert as_json.status_code == 400
    bad_basic = await server.http.post(
        f"{server.url}/oauth/token",
        data={"grant_type": "client_credentials"},
        headers={"authorization": "Basic !!!"},
    )
    assert bad_basic.status_code in (400, 401)


async def test_revoked_client(server: Server) -> None:
    slug = await make_tenant(server)
    client_id, secret = await new_client(server, slug)
    token = (
        await token_request(server, {"grant_type": "client_credentials"}, auth=(client_id, secret))
    ).json()
    status, _ = await server.gql("{ tenant { slug } }", token=token["access_token"], tenant=slug)
    assert status == 200
    data = await server.admin(REVOKE_CLIENT, {"s": slug, "c": client_id})
    assert data["admin"]["revokeServiceClient"] == {"__typename": "ServiceClient", "revoked": True}
    refused = await token_request(server, {"grant_type": "client_credentials"}, auth=(client_id, secret))
    assert refused.status_code == 401
    # The token issued before revocation stops working at once.
    status, _ = await server.gql("{ tenant { slug } }", token=token["access_token"], tenant=slug)
    assert status == 403
    data = await server.admin(REVOKE_CLIENT, {"s": slug, "c": "uds_sc_nope"})
    assert data["admin"]["revokeServiceClient"]["__typename"] == "NotFound"


async def test_secret_is_never_readable_again(server: Server) -> None:
    slug = await make_tenant(server)
    client_id, secret = await new_client(server, slug)
    data = await server.admin(
        "query($s: String!) { admin { tenant(slug: $s) { serviceClients { clientId clientSecret } } } }",
        {"s": slug},
    )
    assert data["admin"]["tenant"]["serviceClients"] == [{"clientId": client_id, "clientSecret": None}]
    async with server.services.engine.connect() as conn:
        stored = await conn.scalar(
            text("select secret_hash from uds.service_clients where client_id = :c"), {"c": client_id}
        )
        audit = (await conn.scalars(text("select detail::text from uds.platform_audit"))).all()
    assert secret not in stored and stored.startswith("sha256$")
    assert not any(secret in row for row in audit)


async def test_only_platform_admins_create_clients(server: Server) -> None:
    slug = await make_tenant(server, members={"boss@x": "ADMIN"})
    status, body = await server.gql(
        CREATE_CLIENT, {"s": slug, "n": "x", "r": "ADMIN"}, token=server.token("boss@x")
    )
    assert body["data"]["admin"]["createServiceClient"]["__typename"] == "NotAllowed"
    data = await server.admin(CREATE_CLIENT, {"s": unique_slug(), "n": "x", "r": "ADMIN"})
    assert data["admin"]["createServiceClient"]["__typename"] == "NotFound"
    data = await server.admin(CREATE_CLIENT, {"s": slug, "n": "  ", "r": "ADMIN"})
    assert data["admin"]["createServiceClient"]["__typename"] == "ValidationError"


async def test_tenant_limits(server: Server) -> None:
    slug = await make_tenant(server)
    data = await server.admin(SET_LIMITS, {"s": slug, "l": {"maxDataSources": 7, "features": ["discovery"]}})
    result: dict[str, Any] = data["admin"]["setTenantLimits"]
    assert result["features"] == ["discovery"]
    assert result["limits"]["maxDataSources"] == 7 and result["limits"]["maxConcurrentJobs"] == 2
    for bad in (
        {"maxDataSources": -1},
        {"maxConcurrentJobs": 0},
        {"features": ["teleport"]},
        {"discoveryRowBudget": 1.5},
    ):
        data = await server.admin(SET_LIMITS, {"s": slug, "l": bad})
        assert data["admin"]["setTenantLimits"]["__typename"] == "ValidationError", bad
    data = await server.admin(SET_LIMITS, {"s": slug, "l": {"replace": True}})
    assert data["admin"]["setTenantLimits"]["limits"]["maxDataSources"] == 2
    status, body = await server.gql(
        SET_LIMITS, {"s": slug, "l": {"maxDataSources": 99}}, token=server.token("x@x")
    )
    assert body["data"]["admin"]["setTenantLimits"]["__typename"] == "NotAllowed"


async def test_plan_is_validated(server: Server) -> None:
    status, body = await server.gql(
        'mutation($s: String!) { admin { createTenant(input: {slug: $s, name: "x", plan: "platinum"}) '
        "{ __typename ... on ValidationError { message } } } }",
        {"s": unique_slug()},
        token=server.token("r@x", admin=True),
    )
    assert body["data"]["admin"]["createTenant"]["__typename"] == "ValidationError"
    assert CREATE_TENANT  # the shared helper still creates free-plan tenants


def basic(client_id: str, secret: str) -> str:
    return "Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode()
