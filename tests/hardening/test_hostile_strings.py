"""Strings PostgreSQL cannot store are refused with BAD_USER_INPUT before any resolver runs.

One check covers every argument: the document's literals (a validation rule) and the
variables (the admission gate). Nothing is written, and the answer never echoes the string.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from conftest import Server, make_tenant, unique_slug
from uds.api.storable import check_variables, unstorable
from uds.errors import BadUserInput

CREATE = """mutation($slug: String!, $name: String!) { admin { createTenant(input: {slug: $slug, name: $name}) {
  __typename ... on Tenant { slug name } } } }"""
SET_MEMBER = "mutation($s: String!) { setMember(subject: $s, role: VIEWER) { __typename } }"
REGISTER = """mutation($input: DataSourceInput!) { registerDataSource(input: $input) { __typename } }"""


def codes(body: dict[str, Any]) -> list[str]:
    return [e["extensions"]["code"] for e in body.get("errors", [])]


async def tenant_exists(server: Server, slug: str) -> bool:
    data = await server.admin("query($s: String!) { admin { tenant(slug: $s) { slug } } }", {"s": slug})
    return data["admin"]["tenant"] is not None


async def post_raw(server: Server, body: str, **headers: str) -> tuple[int, dict[str, Any]]:
    """Send a body exactly as written (json.dumps would not let us choose the escapes)."""
    response = await server.http.post(
        f"{server.url}/graphql", content=body.encode(), headers={"content-type": "application/json", **headers}
    )
    return response.status_code, response.json()


@pytest.mark.parametrize("bad", ["a\x00b", "\x00", "ok\ud800", "\udfff tail"])
async def test_variables_refused(server: Server, bad: str) -> None:
    slug = unique_slug()
    request = json.dumps({"query": CREATE, "variables": {"slug": slug, "name": bad}})  # \uXXXX escapes
    status, body = await post_raw(server, request, authorization=f"Bearer {server.token('root@test', admin=True)}")
    assert codes(body) == ["BAD_USER_INPUT"], body
    assert body["data"] is None
    assert "$name" in body["errors"][0]["message"]
    assert json.dumps(bad) not in json.dumps(body)  # the value itself is never echoed
    assert not await tenant_exists(server, slug)


async def test_literal_nul_in_document_refused(server: Server) -> None:
    """The issue's own reproduction: `setMember(subject: "x\\u0000")` as a literal."""
    slug = await make_tenant(server, members={"boss@acme": "ADMIN"})
    body = json.dumps({"query": 'mutation { setMember(subject: "x\\u0000", role: VIEWER) { __typename } }'})
    status, answer = await post_raw(
        server, body, authorization=f"Bearer {server.token('boss@acme')}", **{"x-tenant-id": slug}
    )
    assert codes(answer) == ["BAD_USER_INPUT"], answer
    _, members = await server.gql("{ tenant { members { subject } } }", token=server.token("boss@acme"), tenant=slug)
    assert [m["subject"] for m in members["data"]["tenant"]["members"]] == ["boss@acme"]


async def test_literal_nul_in_nested_input_refused(server: Server) -> None:
    slug = unique_slug()
    query = 'mutation { admin { createTenant(input: {slug: "SLUG", name: "a\\u0000b"}) { __typename } } }'
    query = query.replace("SLUG", slug)
    status, body = await post_raw(
        server, json.dumps({"query": query}), authorization=f"Bearer {server.token('root@test', admin=True)}"
    )
    assert codes(body) == ["BAD_USER_INPUT"], body
    assert not await tenant_exists(server, slug)


async def test_lone_surrogate_escape_in_variables_refused(server: Server) -> None:
    slug = await make_tenant(server, members={"boss@acme": "ADMIN"})
    body = '{"query": ' + json.dumps(SET_MEMBER) + ', "variables": {"s": "x\\ud800y"}}'
    status, answer = await post_raw(
        server, body, authorization=f"Bearer {server.token('boss@acme')}", **{"x-tenant-id": slug}
    )
    assert codes(answer) == ["BAD_USER_INPUT"], answer


async def test_nested_list_in_input_object_refused(server: Server) -> None:
    slug = await make_tenant(server, members={"ed@acme": "ADMIN"})
    source = {"name": "w", "host": "db.example.com", "database": "d", "user": "u", "password": "p",
              "schemas": ["public", "sales\x00"]}
    status, body = await server.gql(REGISTER, {"input": source}, token=server.token("ed@acme"), tenant=slug)
    assert codes(body) == ["BAD_USER_INPUT"], body
    assert "$input.schemas[1]" in body["errors"][0]["message"]
    _, listed = await server.gql("{ dataSources { nodes { name } } }", token=server.token("ed@acme"), tenant=slug)
    assert listed["data"]["dataSources"]["nodes"] == []


async def test_any_other_unicode_is_stored(server: Server) -> None:
    """Second fixture: text PostgreSQL stores fine, astral planes and combining marks included."""
    slug = unique_slug()
    name = "Café Ünïcødé 🚀 \u0301\u200d\U0010fffd"
    data = await server.admin(CREATE, {"slug": slug, "name": name})
    assert data["admin"]["createTenant"] == {"__typename": "Tenant", "slug": slug, "name": name}


def test_check_variables_walks_keys_and_nesting() -> None:
    check_variables({"a": [{"b": "fine", "c": ["é", 1, None, True]}]})
    with pytest.raises(BadUserInput, match=r"\$a\[0\]\.c\[1\]"):
        check_variables({"a": [{"c": ["ok", "n\x00"]}]})
    with pytest.raises(BadUserInput, match="a key in variable"):
        check_variables({"spec": {"bad\x00key": 1}})
    assert unstorable("plain") is None and unstorable("🚀") is None
    assert unstorable("\ud83d") is not None  # half of a surrogate pair
