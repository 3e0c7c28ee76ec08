"""job and jobs over HTTP: tenant scoping, pagination, input errors."""

from __future__ import annotations

import uuid

from conftest import Server
from jobs.kit import start, tenant_with

PAGE = """
query($first: Int, $after: String) {
  jobs(first: $first, after: $after) { nodes { id kind status } pageInfo { hasNextPage endCursor } }
}"""
ONE = "query($id: ID!) { job(id: $id) { id status } }"


async def test_jobs_are_listed_newest_first_page_by_page(jobs_server: Server) -> None:
    slug = await tenant_with(jobs_server, vi="VIEWER")
    started = [await start(jobs_server, slug) for _ in range(3)]
    token = jobs_server.token("vi@x")
    _, body = await jobs_server.gql(PAGE, {"first": 2}, token=token, tenant=slug)
    page = body["data"]["jobs"]
    assert [n["id"] for n in page["nodes"]] == [str(started[2].id), str(started[1].id)]
    assert page["pageInfo"]["hasNextPage"] is True
    _, body = await jobs_server.gql(
        PAGE, {"first": 2, "after": page["pageInfo"]["endCursor"]}, token=token, tenant=slug
    )
    rest = body["data"]["jobs"]
    assert [n["id"] for n in rest["nodes"]] == [str(started[0].id)]
    assert rest["pageInfo"]["hasNextPage"] is False
    assert rest["nodes"][0] == {"id": str(started[0].id), "kind": "tenant.stats", "status": "QUEUED"}

    _, body = await jobs_server.gql(PAGE, {"after": "not-a-cursor"}, token=token, tenant=slug)
    assert body["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
    _, body = await jobs_server.gql(PAGE, {"first": 1000}, token=token, tenant=slug)
    assert body["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"


async def test_a_job_is_only_found_in_its_own_tenant(jobs_server: Server) -> None:
    mine = await tenant_with(jobs_server, vi="VIEWER")
    theirs = await tenant_with(jobs_server, eve="EDITOR")
    their_job = await start(jobs_server, theirs, by="eve@x")
    token = jobs_server.token("vi@x")
    _, body = await jobs_server.gql(ONE, {"id": str(their_job.id)}, token=token, tenant=mine)
    assert body == {"data": {"job": None}}
    _, body = await jobs_server.gql(ONE, {"id": str(uuid.uuid4())}, token=token, tenant=mine)
    assert body == {"data": {"job": None}}
    _, body = await jobs_server.gql(ONE, {"id": "nope"}, token=token, tenant=mine)
    assert body["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
    _, body = await jobs_server.gql(PAGE, {}, token=token, tenant=mine)
    assert body["data"]["jobs"]["nodes"] == []
    status, body = await jobs_server.gql(ONE, {"id": str(their_job.id)}, token=token, tenant=theirs)
    assert status == 403, "not a member of the other tenant"
    _, body = await jobs_server.gql(ONE, {"id": str(their_job.id)}, token=token)
    assert body["errors"][0]["extensions"]["code"] == "TENANT_REQUIRED"
