"""Authentication and tenant routing through the real HTTP stack."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import event

from conftest import Server, make_tenant, unique_slug


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unsigned(header: dict[str, Any], claims: dict[str, Any], signature: str = "") -> str:
    return f"{b64(json.dumps(header).encode())}.{b64(json.dumps(claims).encode())}.{signature}"


def claims(**extra: Any) -> dict[str, Any]:
    now = int(time.time())
    return {"iss": "uds", "aud": "uds", "sub": "mallory@x", "iat": now, "exp": now + 600, **extra}


def forged_tokens(server: Server) -> Iterator[tuple[str, str]]:
    import hashlib
    import hmac

    for alg in ("none", "None", "NONE"):
        yield f"alg {alg}", unsigned({"alg": alg, "typ": "JWT"}, claims(uds_roles=["platform-admin"]))
    public_pem = server.key.public_key.as_pem()
    head_body = unsigned({"alg": "HS256", "kid": server.key.kid}, claims(uds_roles=["platform-admin"]))[:-1]
    mac = hmac.new(public_pem, head_body.encode(), hashlib.sha256).digest()
    yield "HS256 with public key", f"{head_body}.{b64(mac)}"
    good = server.token("mallory@x")
    head, body, sig = good.split(".")
    yield "unknown kid", unsigned({"alg": "ES256", "kid": "nope"}, claims()) + sig
    yield (
        "expired",
        server.key.issue("mallory@x", issuer="uds", audience="uds", ttl=60, now=time.time() - 3600),
    )
    yield "not yet valid", server.key.issue("mallory@x", issuer="uds", audience="uds", now=time.time() + 3600)
    yield "wrong iss", server.key.issue("mallory@x", issuer="evil", audience="uds")
    yield "wrong aud", server.key.issue("mallory@x", issuer="uds", audience="other")
    tampered = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    tampered["uds_roles"] = ["platform-admin"]
    yield "tampered claims", f"{head}.{b64(json.dumps(tampered).encode())}.{sig}"
    yield "garbage", "not-a-token"
    yield "empty parts", ".."


async def test_forged_tokens_are_unauthenticated(server: Server) -> None:
    for name, token in forged_tokens(server):
        status, body = await server.gql("{ me { subject platformRoles } }", token=token)
        assert status == 401, name
        assert body["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED", name
        assert "data" not in body, name


async def test_one_megabyte_token(server: Server) -> None:
    response = await server.http.post(
        f"{server.url}/graphql",
        json={"query": "{ me { subject } }"},
        headers={"authorization": "Bearer " + "a" * 1_000_000},
    )
    # The HTTP server may refuse such a header itself; either way nobody is let in.
    assert response.status_code in (400, 401, 413, 431)
    if response.status_code == 401:
        assert response.json()["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"


async def test_big_token_under_header_limits(server: Server) -> None:
    status, body = await server.gql("{ me { subject } }", token="a" * 20_000)
    assert status == 401
    assert body["errors"][0]["message"] == "token too large"


async def test_non_bearer_scheme(server: Server) -> None:
    status, body = await server.gql("{ me { subject } }", headers={"authorization": "Token abc"})
    assert status == 401


async def test_jwks_serves_the_key_that_signs(server: Server) -> None:
    response = await server.http.get(f"{server.url}/.well-known/jwks.json")
    keys = response.json()["keys"]
    assert [k["kid"] for k in keys] == [server.key.kid]
    assert all("d" not in k for k in keys)


HOSTILE = [
    "../x",
    "t1; drop schema uds cascade",
    "a" * 200,
    "tenánt",
    "",
    "UPPER",
    "x'--",
    "demo\\",
    "t_demo",
]


@pytest.fixture
def statements(server: Server) -> Iterator[list[str]]:
    """Every SQL statement and parameter the server's engine sends while the test runs."""
    seen: list[str] = []
    engine = server.services.engine.sync_engine

    def record(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, many: bool) -> None:
        seen.append(f"{statement} {parameters!r}")

    event.listen(engine, "before_cursor_execute", record)
    yield seen
    event.remove(engine, "before_cursor_execute", record)


async def test_hostile_tenant_ids(server: Server, statements: list[str]) -> None:
    victim = await make_tenant(server, members={"eve@x": "VIEWER"})
    statements.clear()
    for hostile in HOSTILE:
        response = await server.http.post(
            f"{server.url}/graphql",
            json={"query": "{ tenant { slug } }"},
            headers=[("authorization", f"Bearer {server.token('eve@x')}"), ("x-tenant-id", hostile.encode())],
        )
        assert response.status_code == 400, hostile
        error = response.json()["errors"][0]
        assert error["extensions"]["code"] == "BAD_USER_INPUT"
        assert "not a valid tenant slug" in error["message"]
        assert hostile not in error["message"] or hostile in ("", "UPPER")
    assert statements == []  # refused before any SQL at all
    # Non-ASCII bytes in the header are refused the same way.
    raw = await server.http.post(
        f"{server.url}/graphql",
        json={"query": "{ tenant { slug } }"},
        headers=[
            ("authorization", f"Bearer {server.token('eve@x')}"),
            ("x-tenant-id", "t\xe9n".encode("latin-1")),
        ],
    )
    assert raw.status_code == 400
    # Nothing changed: the victim tenant is intact.
    status, body = await server.gql("{ tenant { slug } }", token=server.token("eve@x"), tenant=victim)
    assert body["data"]["tenant"]["slug"] == victim


async def test_unknown_and_foreign_tenant_look_the_same(server: Server) -> None:
    mine = await make_tenant(server, members={"carol@x": "ADMIN"})
    theirs = await make_tenant(server, members={"dave@x": "ADMIN"})
    answers = []
    for slug in (theirs, unique_slug("nobody")):
        status, body = await server.gql("{ tenant { slug } }", token=server.token("carol@x"), tenant=slug)
        answers.append((status, body))
    assert answers[0] == answers[1]
    assert answers[0][0] == 403 and answers[0][1]["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    status, body = await server.gql("{ tenant { slug } }", token=server.token("carol@x"), tenant=mine)
    assert body["data"]["tenant"]["slug"] == mine


async def test_tenant_header_without_token(server: Server) -> None:
    slug = await make_tenant(server)
    status, body = await server.gql("{ tenant { slug } }", tenant=slug)
    assert status == 401 and body["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"


async def test_service_token_bound_to_its_tenant(server: Server) -> None:
    one = await make_tenant(server, members={"svc-1": "VIEWER"})
    two = await make_tenant(server, members={"svc-1": "VIEWER"})
    token = server.token("svc-1", kind="service", tenant=one)
    status, body = await server.gql("{ tenant { slug } me { kind } }", token=token, tenant=one)
    assert body["data"] == {"tenant": {"slug": one}, "me": {"kind": "service"}}
    status, body = await server.gql("{ tenant { slug } }", token=token, tenant=two)
    assert status == 403


async def test_membership_change_takes_effect_at_once(server: Server) -> None:
    slug = await make_tenant(server, members={"owner@x": "ADMIN"})
    status, _ = await server.gql("{ tenant { slug } }", token=server.token("newbie@x"), tenant=slug)
    assert status == 403  # and now cached as "not a member"
    status, body = await server.gql(
        'mutation { setMember(subject: "newbie@x", role: VIEWER) { __typename } }',
        token=server.token("owner@x"),
        tenant=slug,
    )
    assert body["data"]["setMember"]["__typename"] == "Member"
    status, body = await server.gql("{ tenant { slug } }", token=server.token("newbie@x"), tenant=slug)
    assert status == 200 and body["data"]["tenant"]["slug"] == slug
    # A viewer cannot manage members.
    status, body = await server.gql(
        'mutation { setMember(subject: "x@x", role: ADMIN) { __typename ... on NotAllowed { reasons } } }',
        token=server.token("newbie@x"),
        tenant=slug,
    )
    assert body["data"]["setMember"] == {
        "__typename": "NotAllowed",
        "reasons": ["role ADMIN or higher required"],
    }
