"""Proof of sameness: the fast paths answer byte for byte what the plain strawberry path does.

Two servers on the same database: one with the fast paths on (read-only queries, JSON
from PostgreSQL, operation plans, persisted queries), one with them off (every query
through strawberry's resolvers in a transaction). Every document of the corpus
(tests/api/corpus.py: every query in the tests and the docs, plus generated variants) is
sent to both, as several principals, and the responses must be identical: status,
content type and every byte of the body. Each document goes to the fast server twice, so
the second request takes the cached plan where there is one.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any

import orjson
import pytest

from api import corpus
from conftest import Server, start_server
from uds.api import compiler, plans
from uds.api.schema import build_schema
from uds.settings import Settings


@pytest.fixture(scope="module")
async def reference(migrated: Settings) -> AsyncIterator[Server]:
    async for s in start_server(replace(migrated, fast_paths=False)):
        yield s


@pytest.fixture(scope="module")
async def seeded(server: Server) -> corpus.Seeded:
    return await corpus.seed(server)


# An internal error carries its request's id (logged with its traceback), in the message
# and in extensions.requestId: the only bytes that may differ between two answers.
_ERROR_ID = re.compile(rb"(internal error \(request id |\"requestId\":\")[0-9a-f]{24}")


async def _post(server: Server, body: dict[str, Any], subject: str, tenant: str) -> tuple[int, str, bytes]:
    response = await server.http.post(
        f"{server.url}/graphql",
        content=orjson.dumps(body),
        headers={
            "authorization": f"Bearer {server.token(subject)}",
            "x-tenant-id": tenant,
            "content-type": "application/json",
        },
    )
    content = _ERROR_ID.sub(rb"\1...", response.content)
    return response.status_code, response.headers.get("content-type", ""), content


async def _same(
    fast: Server, reference: Server, body: dict[str, Any], subject: str, tenant: str
) -> tuple[int, str, bytes]:
    """Send `body` to the reference once and to the fast server twice; all three must agree.

    One thing the reference itself does not repeat: when two root fields fail, which
    error is reported depends on which resolver fails first (they run concurrently). A
    difference therefore counts only if no answer of the reference, asked again, matches.
    """
    expected = await _post(reference, body, subject, tenant)
    for attempt in ("first", "second"):
        got = await _post(fast, body, subject, tenant)
        seen = [expected]
        while got not in seen and len(seen) < 8:
            seen.append(await _post(reference, body, subject, tenant))
        assert got in seen, (
            f"{attempt} request differs for {subject} in {tenant}:\n{body}\n"
            f"fast:      {got[2][:3000]!r}\nreference: {expected[2][:3000]!r}"
        )
    return expected


async def test_every_query_of_the_tests_and_docs(
    server: Server, reference: Server, seeded: corpus.Seeded
) -> None:
    docs = corpus.documents(build_schema()._schema)
    assert len(docs) > 20, "the corpus finds the queries of the tests and docs"
    for document, operation in docs:
        variables = corpus.variables_for(document, operation, seeded)
        for subject, tenant in corpus.principals(seeded, odd=False):
            body: dict[str, Any] = {"query": document, "variables": variables}
            if operation:
                body["operationName"] = operation
            await _same(server, reference, body, subject, tenant)


async def test_generated_variants(server: Server, reference: Server, seeded: corpus.Seeded) -> None:
    before = dict(compiler.STATS)
    planned = dict(plans.STATS)
    for document, variables in corpus.variants():
        for subject, tenant in corpus.principals(seeded):
            await _same(server, reference, {"query": document, "variables": variables}, subject, tenant)
    catalogs = compiler.STATS["json_lists"]
    for document, variables in corpus.catalog_variants(seeded):
        for subject in (seeded.admin, seeded.viewer):
            await _same(server, reference, {"query": document, "variables": variables}, subject, seeded.rich)
    assert compiler.STATS["json_lists"] - catalogs >= 8, "catalog tables and columns were written in PostgreSQL"
    used = compiler.STATS["json_lists"] - before["json_lists"]
    fell_back = compiler.STATS["json_fallbacks"] - before["json_fallbacks"]
    assert used > 100, "the fast server wrote most of these lists in PostgreSQL"
    assert fell_back > 0, "and fell back where the normal path reports an error (a NULL item, a bad list)"
    assert plans.STATS["plans_run"] - planned["plans_run"] > 100, "the second requests took the plans"
    assert plans.STATS["plan_fallbacks"] > planned["plan_fallbacks"], "denials and errors fell back"


async def test_paging_through_every_list(server: Server, reference: Server, seeded: corpus.Seeded) -> None:
    for document in corpus.paging_walks():
        for tenant in (seeded.rich, seeded.odd):
            after = None
            pages = 0
            while True:
                _status, _type, body = await _same(
                    server, reference, {"query": document, "variables": {"a": after}}, seeded.admin, tenant
                )
                data = orjson.loads(body).get("data")
                if not data:
                    break
                page = next(iter(data.values()))["pageInfo"]
                pages += 1
                if not page["hasNextPage"]:
                    break
                after = page["endCursor"]
            assert pages >= 1
