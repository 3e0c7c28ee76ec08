"""Persisted operations: Apollo's automatic persisted queries, GET by hash, and the safelist."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import orjson
import pytest
from gql import Client, GraphQLRequest
from gql.transport.websockets import WebsocketsTransport

from conftest import Server, make_tenant, start_server
from uds.api.persisted import document_hash, load_manifest
from uds.errors import ConfigError
from uds.settings import Settings

QUERY = "query Audit($n: Int) { me { subject } auditLog(first: $n) { edges { cursor node { id action } } } }"
LISTED = "{ me { subject kind } }"


def persisted(query: str | None = None, digest: str | None = None, **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "extensions": {"persistedQuery": {"version": 1, "sha256Hash": digest or document_hash(query or "")}},
        **extra,
    }
    if query is not None:
        body["query"] = query
    return body


async def post(server: Server, body: dict[str, Any], slug: str | None = None) -> tuple[int, Any, bytes]:
    headers = {"authorization": f"Bearer {server.token('ad@x')}", "content-type": "application/json"}
    if slug:
        headers["x-tenant-id"] = slug
    response = await server.http.post(f"{server.url}/graphql", content=orjson.dumps(body), headers=headers)
    return response.status_code, response.json(), response.content


async def get(server: Server, params: dict[str, Any], slug: str) -> tuple[int, Any, bytes]:
    query = {k: v if isinstance(v, str) else json.dumps(v) for k, v in params.items()}
    response = await server.http.get(
        f"{server.url}/graphql",
        params=query,
        headers={"authorization": f"Bearer {server.token('ad@x')}", "x-tenant-id": slug},
    )
    return response.status_code, response.json(), response.content


def code(body: Any) -> str:
    return str(body["errors"][0]["extensions"]["code"])


async def test_unknown_hash_then_register_then_hash_alone(server: Server) -> None:
    slug = await make_tenant(server, members={"ad@x": "ADMIN"})
    status, body, _ = await post(server, persisted(digest="ab" * 32), slug)
    assert status == 200 and code(body) == "PERSISTED_QUERY_NOT_FOUND"
    assert body["errors"][0]["message"] == "PersistedQueryNotFound" and "data" not in body

    variables = {"n": 2}
    hash_alone = {"extensions": persisted(QUERY)["extensions"], "variables": variables}
    status, body, _ = await post(server, hash_alone, slug)
    assert status == 200 and code(body) == "PERSISTED_QUERY_NOT_FOUND"
    status, body, _ = await post(server, persisted(QUERY, variables=variables), slug)  # the client retries
    assert status == 200 and "errors" not in body, body
    plain_status, _plain, plain = await post(server, {"query": QUERY, "variables": variables}, slug)
    for _ in range(2):  # the first may teach the plan, the second takes it
        status, body, raw = await post(server, hash_alone, slug)
        assert status == plain_status == 200 and raw == plain
        assert [e["node"]["action"] for e in body["data"]["auditLog"]["edges"]] == [
            "tenant.member.add",
            "tenant.create",
        ]


async def test_get_with_a_hash(server: Server) -> None:
    slug = await make_tenant(server, members={"ad@x": "ADMIN"})
    await post(server, persisted(QUERY, variables={"n": 1}), slug)  # registers it
    params = {
        "extensions": {"persistedQuery": {"version": 1, "sha256Hash": document_hash(QUERY)}},
        "variables": {"n": 1},
        "operationName": "Audit",
    }
    _status, _body, expected = await post(server, {"query": QUERY, "variables": {"n": 1}}, slug)
    for _ in range(2):
        status, body, raw = await get(server, params, slug)
        assert status == 200 and raw == expected, body
    status, body, _ = await get(server, {"extensions": persisted(digest="cd" * 32)["extensions"]}, slug)
    assert status == 200 and code(body) == "PERSISTED_QUERY_NOT_FOUND"


async def test_a_mutation_by_hash_over_get_is_refused(server: Server) -> None:
    slug = await make_tenant(server, members={"ad@x": "ADMIN"})
    mutation = 'mutation { cancelJob(id: "x") { __typename } }'
    status, body, _ = await post(server, persisted(mutation), slug)
    assert status == 200 and body["data"]["cancelJob"]["__typename"] == "NotFound"
    response = await server.http.get(
        f"{server.url}/graphql",
        params={"extensions": json.dumps(persisted(mutation)["extensions"])},
        headers={"authorization": f"Bearer {server.token('ad@x')}", "x-tenant-id": slug},
    )
    assert response.status_code in (400, 405), response.text  # mutations never run over GET


@pytest.mark.parametrize(
    ("extension", "message"),
    [
        ({"version": 1, "sha256Hash": "00" * 32}, "provided sha does not match query"),
        ({"version": 2, "sha256Hash": "00" * 32}, "must be {version: 1, sha256Hash}"),
        ({"version": 1, "sha256Hash": "XYZ"}, "64 lower-case hex digits"),
        ("nope", "must be {version: 1, sha256Hash}"),
    ],
)
async def test_hash_mismatch_and_malformed_extensions(server: Server, extension: Any, message: str) -> None:
    status, body, _ = await post(server, {"query": LISTED, "extensions": {"persistedQuery": extension}})
    assert status == 400 and code(body) == "BAD_USER_INPUT" and message in body["errors"][0]["message"]
    status, body, _ = await post(server, persisted(digest="00" * 32))
    assert code(body) == "PERSISTED_QUERY_NOT_FOUND", "the mismatched document was not registered"


async def test_registered_hashes_are_shared_by_api_processes(server: Server, migrated: Settings) -> None:
    slug = await make_tenant(server, members={"ad@x": "ADMIN"})
    query = "{ me { platformRoles } }"
    await post(server, persisted(query), slug)
    async for other in start_server(migrated):
        status, body, _ = await post(other, {"extensions": persisted(query)["extensions"]}, slug)
        assert status == 200 and body["data"]["me"]["platformRoles"] == []


async def test_switched_off(migrated: Settings) -> None:
    async for off in start_server(replace(migrated, persisted_queries="off")):
        status, body, _ = await post(off, persisted(LISTED))
        assert status == 400 and code(body) == "PERSISTED_QUERY_NOT_SUPPORTED"
        status, body, _ = await post(off, {"query": LISTED})
        assert status == 200 and body["data"]["me"]["kind"] == "user"


@pytest.fixture(scope="module")
async def safelisted(migrated: Settings, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Server]:
    manifest = tmp_path_factory.mktemp("safelist") / "operations.json"
    subscription = "subscription($id: ID!) { jobEvents(jobId: $id) { seq } }"
    manifest.write_text(
        json.dumps(
            {
                "format": "apollo-persisted-query-manifest",
                "version": 1,
                "operations": [
                    {"id": document_hash(body), "body": body, "name": None, "type": "query"}
                    for body in (LISTED, subscription)
                ],
            }
        )
    )
    settings = replace(migrated, persisted_queries="safelist", persisted_queries_file=manifest)
    async for s in start_server(settings):
        yield s


async def test_the_safelist_runs_listed_documents_only(safelisted: Server) -> None:
    for body in (persisted(LISTED), {"query": LISTED}, persisted(LISTED) | {"query": LISTED}):
        status, answer, _ = await post(safelisted, body)
        assert status == 200 and answer["data"]["me"]["kind"] == "user", answer
    unknown = "{ me { subject } }"
    for body in ({"query": unknown}, persisted(unknown) | {"query": unknown}):
        status, answer, _ = await post(safelisted, body)
        assert status == 400 and code(answer) == "PERSISTED_QUERY_NOT_IN_LIST", answer
    status, answer, _ = await post(safelisted, {"extensions": persisted(unknown)["extensions"]})
    assert code(answer) == "PERSISTED_QUERY_NOT_FOUND", "refused documents are never registered"


async def test_the_safelist_applies_to_subscriptions(safelisted: Server, server: Server) -> None:
    slug = await make_tenant(server, members={"ad@x": "ADMIN"})  # admin mutations are not listed
    transport = WebsocketsTransport(
        url=safelisted.url.replace("http", "ws") + "/graphql",
        subprotocols=[WebsocketsTransport.GRAPHQLWS_SUBPROTOCOL],
        init_payload={"authorization": f"Bearer {safelisted.token('ad@x')}", "tenant": slug},
    )
    async with Client(transport=transport) as session:
        with pytest.raises(Exception) as caught:
            async for _ in session.subscribe(
                GraphQLRequest('subscription { jobEvents(jobId: "x") { type } }')
            ):
                pass
    assert "safelist" in str(caught.value)


def test_manifests_are_checked(tmp_path: Path) -> None:
    good = tmp_path / "good.json"
    good.write_text(json.dumps({document_hash(LISTED): LISTED}))
    assert load_manifest(good) == {document_hash(LISTED): LISTED}
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"00" * 32: LISTED}))
    with pytest.raises(ConfigError, match="not the SHA-256"):
        load_manifest(bad)
    with pytest.raises(ConfigError, match="UDS_PERSISTED_QUERIES_FILE"):
        Settings.from_env({"UDS_PERSISTED_QUERIES": "safelist"})
    with pytest.raises(ConfigError, match="'apq', 'safelist' or 'off'"):
        Settings.from_env({"UDS_PERSISTED_QUERIES": "sometimes"})
