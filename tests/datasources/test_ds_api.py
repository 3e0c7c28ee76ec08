"""registerDataSource, testDataSource, deleteDataSource, dataSources over GraphQL: bad input
answered clearly with nothing stored, limits and roles enforced, no password ever returned."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from conftest import Server, make_tenant
from uds.datasources.params import ConnectionParams

REGISTER = """
mutation($input: DataSourceInput!) {
  registerDataSource(input: $input) {
    __typename
    ... on DataSource { id name host port database user sslmode schemas version }
    ... on ValidationError { message } ... on Conflict { message } ... on NotAllowed { message reasons }
  }
}"""
LIST = "{ dataSources(first: 10) { edges { node { id name } } pageInfo { hasNextPage } } }"
TEST = """mutation($id: ID!) { testDataSource(id: $id) { __typename
  ... on DataSourceTest { ok message errorKind } ... on NotFound { message } } }"""
DELETE = """mutation($id: ID!) { deleteDataSource(id: $id) { __typename
  ... on DataSourceDeleted { id } ... on NotFound { message } ... on NotAllowed { message } } }"""


def good(**overrides: Any) -> dict[str, Any]:
    value = {
        "name": "warehouse",
        "host": "db.example.com",
        "port": 5432,
        "database": "shop",
        "user": "reader",
        "password": "pw-" + uuid.uuid4().hex,
        "sslmode": "require",
        "schemas": ["public"],
    }
    value.update(overrides)
    return value


async def call(
    server: Server, query: str, variables: dict[str, Any], slug: str, sub: str = "ed@x"
) -> dict[str, Any]:
    status, body = await server.gql(query, variables, token=server.token(sub), tenant=slug)
    assert status == 200 and "errors" not in body, body
    return body["data"]  # type: ignore[no-any-return]


async def names(server: Server, slug: str) -> list[str]:
    data = await call(server, LIST, {}, slug)
    return [e["node"]["name"] for e in data["dataSources"]["edges"]]


@pytest.mark.parametrize(
    ("overrides", "needle"),
    [
        ({"name": ""}, "name"),
        ({"host": "bad host"}, "host"),
        ({"port": 70000}, "port"),
        ({"sslmode": "sometimes"}, "sslmode"),
        ({"schemas": ["public; drop table x"]}, "schemas"),
        ({"database": "x" * 64}, "database"),
    ],
)
async def test_bad_input_is_a_validation_error_and_nothing_is_stored(
    server: Server, overrides: dict[str, Any], needle: str
) -> None:
    slug = await make_tenant(server, members={"ed@x": "EDITOR"})
    data = await call(server, REGISTER, {"input": good(**overrides)}, slug)
    result = data["registerDataSource"]
    assert result["__typename"] == "ValidationError" and needle in result["message"]
    assert await names(server, slug) == []


async def test_register_list_conflict_limit_and_delete(server: Server) -> None:
    slug = await make_tenant(server, members={"ed@x": "EDITOR", "ad@x": "ADMIN", "vi@x": "VIEWER"})
    first = good()
    data = await call(server, REGISTER, {"input": first}, slug)
    source = data["registerDataSource"]
    assert source["__typename"] == "DataSource"
    assert {k: source[k] for k in ("name", "host", "port", "database", "user", "sslmode", "schemas")} == {
        k: first[k] for k in ("name", "host", "port", "database", "user", "sslmode", "schemas")
    }
    assert first["password"] not in str(data)

    again = await call(server, REGISTER, {"input": good()}, slug)
    assert again["registerDataSource"]["__typename"] == "Conflict"

    # A viewer may list but not register; the free plan allows two sources.
    denied = await call(server, REGISTER, {"input": good(name="v")}, slug, sub="vi@x")
    assert denied["registerDataSource"]["__typename"] == "NotAllowed"
    assert (await call(server, REGISTER, {"input": good(name="second")}, slug))["registerDataSource"][
        "__typename"
    ] == ("DataSource")
    third = (await call(server, REGISTER, {"input": good(name="third")}, slug))["registerDataSource"]
    assert third["__typename"] == "NotAllowed" and any("max_data_sources" in r for r in third["reasons"])
    assert await names(server, slug) == ["second", "warehouse"]

    # Deleting needs ADMIN; an unknown id is NotFound.
    assert (await call(server, DELETE, {"id": source["id"]}, slug))["deleteDataSource"][
        "__typename"
    ] == "NotAllowed"
    assert (await call(server, DELETE, {"id": source["id"]}, slug, sub="ad@x"))["deleteDataSource"] == {
        "__typename": "DataSourceDeleted",
        "id": source["id"],
    }
    missing = await call(server, DELETE, {"id": str(uuid.uuid4())}, slug, sub="ad@x")
    assert missing["deleteDataSource"]["__typename"] == "NotFound"
    assert await names(server, slug) == ["second"]


async def test_test_data_source_reports_the_failure_kind(
    server: Server, admin_params: ConnectionParams
) -> None:
    slug = await make_tenant(server, members={"ed@x": "EDITOR"})
    unreachable = good(name="nowhere", host="127.0.0.1", port=1, sslmode="disable")
    source = (await call(server, REGISTER, {"input": unreachable}, slug))["registerDataSource"]
    result = (await call(server, TEST, {"id": source["id"]}, slug))["testDataSource"]
    assert result["ok"] is False and result["errorKind"] == "unreachable"
    assert unreachable["password"] not in str(result)

    reachable = good(
        name="here",
        host=admin_params.host,
        port=admin_params.port,
        database="postgres",
        user=admin_params.user,
        sslmode="disable",
        schemas=None,
    )
    source = (await call(server, REGISTER, {"input": reachable}, slug))["registerDataSource"]
    result = (await call(server, TEST, {"id": source["id"]}, slug))["testDataSource"]
    assert result["ok"] is True, result
    gone = (await call(server, TEST, {"id": str(uuid.uuid4())}, slug))["testDataSource"]
    assert gone["__typename"] == "NotFound"


def test_the_data_source_type_has_no_password_field() -> None:
    from uds.api.schema import build_schema

    schema = build_schema()._schema
    fields = schema.type_map["DataSource"].fields  # type: ignore[attr-defined]
    assert not [name for name in fields if "pass" in name.lower() or "secret" in name.lower()]
