"""Malformed and abusive GraphQL requests: each gets a clear error with a code."""

from __future__ import annotations

from typing import Any

import pytest

from conftest import Server, make_tenant
from uds.api.schema import build_schema
from uds.api.view import TOO_COMPLEX
from uds.settings import Settings


def codes(body: dict[str, Any]) -> list[str]:
    return [e["extensions"]["code"] for e in body.get("errors", [])]


async def test_syntax_error(server: Server) -> None:
    status, body = await server.gql("{ me { subject ", token=server.token("a@x"))
    assert codes(body) == ["BAD_USER_INPUT"]


async def test_unknown_field(server: Server) -> None:
    status, body = await server.gql("{ me { password } }", token=server.token("a@x"))
    assert codes(body) == ["BAD_USER_INPUT"]
    assert body["data"] is None


async def test_not_json(server: Server) -> None:
    response = await server.http.post(
        f"{server.url}/graphql", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert response.status_code == 400
    assert codes(response.json()) == ["BAD_USER_INPUT"]


async def test_no_query(server: Server) -> None:
    response = await server.http.post(f"{server.url}/graphql", json={"variables": {}})
    assert response.status_code == 400
    assert codes(response.json()) == ["BAD_USER_INPUT"]


async def test_mutation_over_get_refused(server: Server) -> None:
    response = await server.http.get(
        f"{server.url}/graphql",
        params={"query": 'mutation { admin { suspendTenant(slug: "abc") { __typename } } }'},
        headers={"accept": "application/json"},
    )
    assert response.status_code == 400
    assert codes(response.json()) == ["BAD_USER_INPUT"]


async def test_too_deep() -> None:
    """A document deeper than the limit is refused at validation, before any resolver runs."""
    schema = build_schema(Settings(max_query_depth=4))
    result = await schema.execute("{ admin { tenants { edges { node { members { subject } } } } } }")
    assert result.errors and result.data is None
    assert TOO_COMPLEX.search(result.errors[0].message)
    shallow = await build_schema(Settings(max_query_depth=12)).execute("{ __typename }")
    assert not shallow.errors


async def test_too_many_aliases(server: Server) -> None:
    query = "{ " + " ".join(f"a{i}: me {{ subject }}" for i in range(40)) + " }"
    status, body = await server.gql(query, token=server.token("a@x"))
    assert codes(body) == ["QUERY_TOO_COMPLEX"]
    assert body["data"] is None


async def test_too_many_tokens(server: Server) -> None:
    query = "{ me { " + " ".join(["subject"] * 3000) + " } }"
    status, body = await server.gql(query, token=server.token("a@x"))
    assert codes(body) == ["QUERY_TOO_COMPLEX"]


async def test_oversized_body(server: Server) -> None:
    big = "{ me { subject } }" + " " * 1_100_000
    response = await server.http.post(
        f"{server.url}/graphql",
        json={"query": big},
        headers={"authorization": f"Bearer {server.token('a@x')}"},
    )
    assert response.status_code == 413
    assert codes(response.json()) == ["BAD_USER_INPUT"]


async def test_oversized_chunked_body(server: Server) -> None:
    async def chunks() -> Any:
        yield b'{"query": "{ me { subject } }", "x": "'
        for _ in range(120):
            yield b"x" * 10_000
        yield b'"}'

    response = await server.http.post(
        f"{server.url}/graphql", content=chunks(), headers={"content-type": "application/json"}
    )
    assert response.status_code == 413


async def test_needs_token(server: Server) -> None:
    status, body = await server.gql("{ me { subject } }")
    assert codes(body) == ["UNAUTHENTICATED"]


async def test_tenant_field_needs_tenant(server: Server) -> None:
    status, body = await server.gql("{ auditLog { edges { cursor } } }", token=server.token("a@x"))
    assert codes(body) == ["TENANT_REQUIRED"]


@pytest.mark.parametrize("first", [0, -1, 101, 10_000])
async def test_page_size_bounds(server: Server, first: int) -> None:
    status, body = await server.gql(
        "query($n: Int) { admin { tenants(first: $n) { edges { cursor } } } }",
        {"n": first},
        token=server.token("root@x", admin=True),
    )
    assert codes(body) == ["BAD_USER_INPUT"]
    assert "between 1 and 100" in body["errors"][0]["message"]


@pytest.mark.parametrize("cursor", ["garbage", "", "dGVuYW50", "YXVkaXQ6MQ", "!!!!", "x" * 500])
async def test_bad_cursor(server: Server, cursor: str) -> None:
    status, body = await server.gql(
        "query($c: String) { admin { tenants(after: $c) { edges { cursor } } } }",
        {"c": cursor},
        token=server.token("root@x", admin=True),
    )
    assert codes(body) == ["BAD_USER_INPUT"], body


async def test_pagination_walks_every_tenant_once(server: Server) -> None:
    made = {await make_tenant(server) for _ in range(5)}
    seen: list[str] = []
    after = None
    while True:
        data = await server.admin(
            "query($a: String) { admin { tenants(first: 2, after: $a) "
            "{ edges { node { slug } } pageInfo { hasNextPage endCursor } } } }",
            {"a": after},
        )
        page = data["admin"]["tenants"]
        seen += [e["node"]["slug"] for e in page["edges"]]
        if not page["pageInfo"]["hasNextPage"]:
            break
        after = page["pageInfo"]["endCursor"]
    assert len(seen) == len(set(seen))
    assert made <= set(seen)


async def test_internal_errors_do_not_leak(server: Server) -> None:
    """An unknown action named in `can` is denied, not an error; nothing internal leaks."""
    status, body = await server.gql(
        '{ me { can(action: "nuke.everything") { allow reasons } } }', token=server.token("a@x")
    )
    assert body["data"]["me"]["can"] == {"allow": False, "reasons": ["unknown action nuke.everything"]}
