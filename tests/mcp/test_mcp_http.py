"""The MCP bridge on streamable HTTP (POST /mcp) against a live UDS, with the SDK's client:
tools, long jobs three ways, the catalog in pages, resources, and errors a model can use."""

from __future__ import annotations

import asyncio
import itertools
import json
from typing import Any

import httpx
import mcp_kit
import pytest
from mcp_kit import WAIT, TasksClient, World, cancel_task, get_task, http_client, poll_task
from mcp_types import ResourceLink

from uds.mcp import catalog as cat
from uds.mcp.gateway import InProcessGateway

# The session's fixtures (tests/mcp has no conftest of its own: a package named `mcp`
# would shadow the SDK).
mcp_settings, mcp_server, mcp_worker, shop_db, world, recorder, slow_source, discovered = (
    mcp_kit.mcp_settings,
    mcp_kit.mcp_server,
    mcp_kit.mcp_worker,
    mcp_kit.shop_db,
    mcp_kit.world,
    mcp_kit.recorder,
    mcp_kit.slow_source,
    mcp_kit.discovered,
)
wide_db, wide = mcp_kit.wide_db, mcp_kit.wide_source

TOOL_NAMES = {
    "generate_dashboard",
    "get_dashboard",
    "get_widget_data",
    "get_widget_image",
    "list_data_sources",
    "register_data_source",
    "test_data_source",
    "start_discovery",
    "get_catalog",
    "get_table",
    "catalog_diff",
    "get_job",
    "cancel_job",
}


async def test_list_tools_have_titles_schemas_and_annotations(world: World) -> None:
    async with http_client(world) as client:
        tools = {t.name: t for t in (await client.list_tools()).tools}
    assert set(tools) == TOOL_NAMES  # exactly the list in API.md "MCP"
    for tool in tools.values():
        assert tool.title and tool.description and tool.input_schema["type"] == "object"
        assert tool.input_schema["additionalProperties"] is False
        assert tool.output_schema and tool.output_schema["type"] == "object"
        assert tool.annotations is not None and tool.annotations.title == tool.title
    for name in ("list_data_sources", "get_catalog", "get_table", "catalog_diff", "get_job"):
        assert tools[name].annotations.read_only_hint is True
        assert tools[name].annotations.idempotent_hint is True
    assert tools["cancel_job"].annotations.destructive_hint is True
    for name in ("register_data_source", "start_discovery"):
        assert tools[name].annotations.read_only_hint is False
        assert tools[name].annotations.destructive_hint is False
    # No tool lets the model pick the tenant.
    assert all("tenant" not in json.dumps(t.input_schema).lower() for t in tools.values())
    # register_data_source's arguments are DataSourceInput's fields, from the schema.
    assert set(tools["register_data_source"].input_schema["required"]) == {
        "name",
        "host",
        "database",
        "user",
        "password",
    }


async def test_discovery_reports_increasing_progress_ending_at_one(discovered: dict[str, Any]) -> None:
    progress = [p for p, _, _ in discovered["progress"]]
    assert len(progress) >= 2, discovered["progress"]
    assert all(b > a for a, b in itertools.pairwise(progress)), progress
    assert progress[-1] == 1.0 and all(t == 1.0 for _, t, _ in discovered["progress"])
    assert any(m and ":" in m for _, _, m in discovered["progress"][:-1])  # the phase as message
    result = discovered["result"]
    assert result["done"] is True and result["job"]["status"] == "SUCCEEDED", result
    assert result["job"]["kind"] == "discovery" and "get_catalog" in result["next"]


async def test_without_progress_token_answers_within_the_bound_and_get_job_finishes(
    world: World, discovered: dict[str, Any]
) -> None:
    async with http_client(world) as client:
        started = asyncio.get_running_loop().time()
        result = await client.call_tool("start_discovery", {"data_source_id": world.source_id})
        took = asyncio.get_running_loop().time() - started
        assert not result.is_error, result
        first = result.structured_content
        assert took < WAIT + 5
        assert first["done"] is False and first["job"]["status"] in ("QUEUED", "RUNNING"), first
        assert f"get_job(id='{first['job']['id']}'" in first["next"]
        # Follow it: each call resumes after the last event it reported.
        last, seqs, followed = first["lastSeq"], [], first
        for _ in range(20):
            answer = await client.call_tool(
                "get_job", {"id": first["job"]["id"], "after_seq": last, "wait_seconds": 30}
            )
            assert not answer.is_error, answer
            followed = answer.structured_content
            seqs += [e["seq"] for e in followed["events"]]
            assert all(s > last for s in [e["seq"] for e in followed["events"]])
            last = followed["lastSeq"]
            if followed["done"]:
                break
        # Asked after the end, from the start: the events are replayed up to the last one.
        again = await client.call_tool(
            "get_job", {"id": first["job"]["id"], "after_seq": 0, "wait_seconds": 5}
        )
        replay = again.structured_content
        assert replay["done"] and replay["lastSeq"] == last == replay["events"][-1]["seq"], replay
    assert followed["done"] and followed["job"]["status"] == "SUCCEEDED", followed
    assert seqs == sorted(set(seqs)) and seqs, seqs  # no event reported twice


async def test_tasks_client_gets_a_handle_that_tasks_get_follows_to_the_result(
    world: World, discovered: dict[str, Any]
) -> None:
    async with http_client(world, extensions=[TasksClient()]) as client:
        claimed = await client.session.call_tool(
            "start_discovery", {"data_source_id": world.source_id}, allow_claimed=True
        )
        assert claimed.result_type == "task" and claimed.status == "working", claimed
        task, messages = await poll_task(client.session, claimed.task_id)
        assert task["status"] == "completed" and task["resultType"] == "complete"
        assert task["result"]["structuredContent"]["job"]["status"] == "SUCCEEDED"
        assert messages and all(m for m in messages)
        # The SDK's own call_tool finishes the task transparently through the claim.
        final = await client.call_tool("start_discovery", {"data_source_id": world.source_id})
        assert final.structured_content["job"]["status"] == "SUCCEEDED"
    # A client that does not declare the extension never gets a task.
    async with http_client(world) as client:
        plain = await client.call_tool("get_job", {"id": claimed.task_id})
        assert plain.structured_content["job"]["id"] == claimed.task_id


async def test_tasks_cancel_cancels_the_job_and_other_tenants_cannot_touch_the_task(
    world: World, slow_source: str
) -> None:
    async with http_client(world, extensions=[TasksClient()]) as client:
        claimed = await client.session.call_tool(
            "start_discovery", {"data_source_id": slow_source}, allow_claimed=True
        )
        task_id = claimed.task_id
        async with http_client(world, "bo@b", tenant=world.other, extensions=[TasksClient()]) as intruder:
            with pytest.raises(Exception, match="NOT_FOUND"):
                await get_task(intruder.session, task_id)
            assert (await cancel_task(intruder.session, task_id))["resultType"] == "complete"
        assert (await get_task(client.session, task_id))["status"] == "working"  # untouched by B
        assert (await cancel_task(client.session, task_id))["resultType"] == "complete"
        task, _ = await poll_task(client.session, task_id)
    assert task["status"] == "cancelled", task


async def test_a_cancelled_call_stops_waiting_but_the_job_runs_on(world: World, slow_source: str) -> None:
    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        pass

    async with http_client(world) as client:
        with pytest.raises(Exception):  # noqa: B017 - the client's own timeout, whatever it raises
            await client.call_tool(
                "start_discovery",
                {"data_source_id": slow_source},
                read_timeout_seconds=1.0,
                progress_callback=on_progress,
            )
        jobs = await client.call_tool("list_data_sources", {})  # the session still serves
        assert not jobs.is_error
    status, body = await world.server.gql(
        "{ jobs(first: 1) { nodes { id status cancelRequested kind } } }",
        token=world.token("ed@a"),
        tenant=world.slug,
    )
    job = body["data"]["jobs"]["nodes"][0]
    assert job["kind"] == "discovery" and job["cancelRequested"] is False, job
    async with http_client(world) as client:
        await client.call_tool("cancel_job", {"id": job["id"]})  # tidy up: it would hang 10 s


async def test_catalog_pages_stay_under_the_budget_and_cover_every_table(
    world: World, discovered: dict[str, Any]
) -> None:
    budget = 1500
    async with http_client(world) as client:
        for level in ("summary", "detail"):
            names: list[str] = []
            cursor = None
            pages = 0
            while True:
                args = {"data_source_id": world.source_id, "level": level, "max_chars": budget}
                if cursor:
                    args["cursor"] = cursor
                result = await client.call_tool("get_catalog", args)
                assert not result.is_error, result
                page = result.structured_content
                assert page["page"]["chars"] <= budget or page["page"]["tables"] == 1
                assert len(result.content[0].text) == len(json.dumps(page, ensure_ascii=False))
                links = [c for c in result.content if isinstance(c, ResourceLink)]
                assert {str(link.uri) for link in links} >= {t["resource"] for t in page["tables"]}
                names += [t["table"] for t in page["tables"]]
                pages += 1
                cursor = page["page"]["nextCursor"]
                if cursor is None:
                    break
            assert pages > 1 and len(names) == len(set(names)) == page["page"]["totalTables"]
            assert "shop.orders" in names
        summary = (
            await client.call_tool("get_catalog", {"data_source_id": world.source_id})
        ).structured_content
        customers = next(t for t in summary["tables"] if t["table"] == "shop.customers")
        assert customers["rows"] and customers["primaryKey"] and customers["piiColumns"]
        orders = next(t for t in summary["tables"] if t["table"] == "shop.orders")
        assert any("shop.customers" in r for r in orders["references"])
        table = await client.call_tool("get_table", {"data_source_id": world.source_id, "table": "orders"})
        assert (
            table.structured_content["name"] == "orders" and table.structured_content["columns"][0]["profile"]
        )
        resource = await client.read_resource(customers["resource"])
        assert json.loads(resource.contents[0].text)["name"] == "customers"
        bad = await client.call_tool("get_catalog", {"data_source_id": world.source_id, "cursor": "garbage"})
        assert bad.is_error and bad.structured_content["error"]["code"] == "BAD_USER_INPUT"


@pytest.fixture
def operations(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, dict[str, Any], dict[str, Any]]]:
    """The GraphQL operations the HTTP bridge runs (name, variables, data), as they run."""
    seen: list[tuple[str, dict[str, Any], dict[str, Any]]] = []
    execute = InProcessGateway.execute

    async def recording(self: InProcessGateway, operation: str, variables: dict[str, Any]) -> dict[str, Any]:
        data = await execute(self, operation, variables)
        seen.append((operation, dict(variables), data))
        return data

    monkeypatch.setattr(InProcessGateway, "execute", recording)
    return seen


async def test_a_wide_catalog_is_read_a_page_at_a_time(
    world: World, wide: mcp_kit.Wide, operations: list[tuple[str, dict[str, Any], dict[str, Any]]]
) -> None:
    total = mcp_kit.WIDE_TABLES + 4
    async with http_client(world, "vi@w", tenant=wide.slug) as client:
        for level, budget in (("summary", 2500), ("detail", 6000)):
            names: list[str] = []
            cursor, calls, fetches = None, 0, 0
            while True:
                args: dict[str, Any] = {"data_source_id": wide.source_id, "max_chars": budget, "level": level}
                if cursor:
                    args["cursor"] = cursor
                operations.clear()
                result = await client.call_tool("get_catalog", args)
                assert not result.is_error, result
                page = result.structured_content
                shown = page["page"]["tables"]
                assert page["page"]["chars"] == len(result.content[0].text) <= budget
                assert page["page"]["totalTables"] == total and page["page"]["offset"] == len(names)
                # Only about this page's tables were read, never the whole catalog.
                assert {op for op, _, _ in operations} == {"GetCatalog"}
                read = sum(len(data["catalog"]["tablesConnection"]["edges"]) for _, _, data in operations)
                firsts = [variables["first"] for _, variables, _ in operations]
                assert len(firsts) <= cat.MAX_FETCHES and shown <= read <= shown + 2, (shown, read, firsts)
                fetches += len(firsts)
                names += [t["table"] for t in page["tables"]]
                calls += 1
                cursor = page["page"]["nextCursor"]
                if cursor is None:
                    break
            assert len(names) == len(set(names)) == total and calls > 10, (level, calls)
            assert names[:3] == ["Sales.OrderItems", "Sales.dup", "wide.dup"] and names[-1] == "wide.w300"
            assert fetches < 2 * calls, (level, fetches, calls)
    last = next(t for t in page["tables"] if t["table"] == "wide.w300")
    assert last["references"] == ["parent_id -> wide.w299(id)"] and last["primaryKey"] == ["id"]
    assert [c["name"] for c in last["columns"]] == ["id", "parent_id", "note"]
    async with http_client(world, "vi@w", tenant=wide.slug) as client:
        sales = await client.call_tool("get_catalog", {"data_source_id": wide.source_id, "schema": "Sales"})
        page = sales.structured_content
        assert [t["table"] for t in page["tables"]] == ["Sales.OrderItems", "Sales.dup"]
        assert page["page"]["totalTables"] == 2 and page["page"]["nextCursor"] is None
        assert page["tables"][0]["piiColumns"] == ["email"]
        first = (
            await client.call_tool("get_catalog", {"data_source_id": wide.source_id, "max_chars": 1000})
        ).structured_content["page"]["nextCursor"]
        other_schema = await client.call_tool(
            "get_catalog", {"data_source_id": wide.source_id, "cursor": first, "schema": "wide"}
        )
        assert other_schema.structured_content["error"]["code"] == "BAD_USER_INPUT", other_schema
        _, after, offset = cat.decode_cursor(first, None)
        stale = cat.encode_cursor("00000000-0000-0000-0000-000000000000", after, offset, None)
        changed = await client.call_tool("get_catalog", {"data_source_id": wide.source_id, "cursor": stale})
        assert changed.structured_content["error"]["code"] == "CONFLICT", changed


async def test_get_table_reads_one_table(
    world: World, wide: mcp_kit.Wide, operations: list[tuple[str, dict[str, Any], dict[str, Any]]]
) -> None:
    async with http_client(world, "vi@w", tenant=wide.slug) as client:

        async def get(table: str) -> Any:
            operations.clear()
            result = await client.call_tool("get_table", {"data_source_id": wide.source_id, "table": table})
            assert {op for op, _, _ in operations} <= {"GetCatalogTable"}, operations
            return result.structured_content

        w150 = await get("wide.w150")
        assert (w150["schema"], w150["name"]) == ("wide", "w150") and len(operations) == 1
        assert [c["name"] for c in w150["columns"]] == ["id", "parent_id", "note"]
        assert {(r["fromTable"], r["toTable"]) for r in w150["relationships"]} == {
            ("w150", "w149"),
            ("w151", "w150"),
        }
        for spelled in ('"Sales"."OrderItems"', "Sales.OrderItems", "OrderItems"):
            found = await get(spelled)
            assert (found["schema"], found["name"]) == ("Sales", "OrderItems"), spelled
            assert [c["name"] for c in found["columns"]] == ["id", "Qty", "email"]
        for spelled, code in [
            ("sales.orderitems", "NOT_FOUND"),  # names are exact; unquoted SQL would fold to this
            ("wide.w999", "NOT_FOUND"),
            ("nothing", "NOT_FOUND"),
            ("dup", "BAD_USER_INPUT"),  # in two schemas
            ('"Sales', "BAD_USER_INPUT"),
            ('"a"."b"."c"', "BAD_USER_INPUT"),
        ]:
            error = (await get(spelled))["error"]
            assert error["code"] == code, (spelled, error)
        assert (await get('"Sales".dup'))["schema"] == "Sales"
        for spelled in ("wide.v1.2", '"wide"."v1.2"', "v1.2"):
            assert (await get(spelled))["name"] == "v1.2", spelled
        resource = await client.read_resource(f"uds://datasources/{wide.source_id}/tables/Sales.OrderItems")
        assert json.loads(resource.contents[0].text)["name"] == "OrderItems"


TABLE = """query($id: ID!, $schema: String, $name: String!) { catalog(dataSourceId: $id) {
  tableCount(schema: "Sales") tablesConnection(schema: "Sales") { nodes { name } }
  table(schema: $schema, name: $name) { schema name columns { name pii } relationships { fromTable } } } }"""


async def test_catalog_table_field_viewers_read_other_tenants_do_not(
    world: World, wide: mcp_kit.Wide
) -> None:
    async def ask(sub: str, tenant: str, **variables: Any) -> dict[str, Any]:
        _, body = await world.server.gql(
            TABLE, {"id": wide.source_id, **variables}, token=world.token(sub), tenant=tenant
        )
        return body

    body = await ask("vi@w", wide.slug, schema="Sales", name="OrderItems")
    catalog = body["data"]["catalog"]
    assert catalog["tableCount"] == 2 and [t["name"] for t in catalog["tablesConnection"]["nodes"]] == [
        "OrderItems",
        "dup",
    ]
    assert catalog["table"]["name"] == "OrderItems" and catalog["table"]["columns"][2] == {
        "name": "email",
        "pii": True,
    }
    assert (await ask("vi@w", wide.slug, name="w007"))["data"]["catalog"]["table"]["schema"] == "wide"
    assert (await ask("vi@w", wide.slug, schema="wide", name="OrderItems"))["data"]["catalog"][
        "table"
    ] is None
    ambiguous = await ask("vi@w", wide.slug, name="dup")
    assert ambiguous["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT", ambiguous
    assert "Sales.dup" in ambiguous["errors"][0]["message"]
    intruder = await ask("bo@b", world.other, schema="Sales", name="OrderItems")
    assert intruder["data"] is None or intruder["data"]["catalog"] is None
    assert intruder["errors"][0]["extensions"]["code"] == "NOT_FOUND", intruder


async def test_resources_jobs_and_catalog(world: World, discovered: dict[str, Any]) -> None:
    job_id = discovered["result"]["job"]["id"]
    async with http_client(world) as client:
        templates = {t.uri_template for t in (await client.list_resource_templates()).resource_templates}
        assert {"uds://datasources/{id}/catalog", "uds://jobs/{id}"} <= templates
        job = json.loads((await client.read_resource(f"uds://jobs/{job_id}")).contents[0].text)
        assert job["status"] == "SUCCEEDED"
        catalog = json.loads(
            (await client.read_resource(f"uds://datasources/{world.source_id}/catalog")).contents[0].text
        )
        assert any(t["name"] == "orders" for t in catalog["tables"])
    async with http_client(world, "bo@b", tenant=world.other) as intruder:
        with pytest.raises(Exception, match="NOT_FOUND"):
            await intruder.read_resource(f"uds://jobs/{job_id}")


async def test_errors_are_tool_results_and_the_server_keeps_serving(world: World) -> None:
    async with http_client(world) as client:
        cases = [
            ("get_job", {}, "BAD_USER_INPUT"),
            ("get_job", {"id": 5}, "BAD_USER_INPUT"),
            ("get_job", {"id": "x", "tenant": "other"}, "BAD_USER_INPUT"),
            ("get_catalog", {"data_source_id": world.source_id, "max_chars": 10}, "BAD_USER_INPUT"),
            ("no_such_tool", {}, "UNKNOWN_TOOL"),
            (
                "register_data_source",
                {"name": "x" * 70_000, "host": "h", "database": "d", "user": "u", "password": "p"},
                "BAD_USER_INPUT",
            ),
            ("get_job", {"id": "00000000-0000-0000-0000-000000000000"}, "NOT_FOUND"),
            ("get_job", {"id": "not-a-uuid"}, None),
        ]
        for name, args, code in cases:
            result = await client.call_tool(name, args)
            assert result.is_error, (name, args, result)
            error = result.structured_content["error"]
            assert error["message"] and (code is None or error["code"] == code), (name, error)
        assert not (await client.call_tool("list_data_sources", {})).is_error


async def test_viewer_cannot_start_discovery_and_is_told_why(world: World) -> None:
    async with http_client(world, "vi@a") as client:
        result = await client.call_tool("start_discovery", {"data_source_id": world.source_id})
        assert result.is_error
        error = result.structured_content["error"]
        assert error["code"] == "FORBIDDEN" and error["reasons"], error
        assert any("EDITOR" in r or "role" in r.lower() for r in error["reasons"]), error
        assert not (await client.call_tool("list_data_sources", {})).is_error  # reading is allowed


async def test_tenant_b_cannot_reach_tenant_a_by_guessed_ids(
    world: World, discovered: dict[str, Any]
) -> None:
    job_id = discovered["result"]["job"]["id"]
    async with http_client(world, "bo@b", tenant=world.other) as client:
        listed = (await client.call_tool("list_data_sources", {})).structured_content
        assert [s["id"] for s in listed["dataSources"]] == [world.other_source_id]
        for name, args in [
            ("get_job", {"id": job_id}),
            ("get_job", {"id": job_id, "wait_seconds": 1}),
            ("cancel_job", {"id": job_id}),
            ("get_catalog", {"data_source_id": world.source_id}),
            ("get_table", {"data_source_id": world.source_id, "table": "shop.orders"}),
            ("start_discovery", {"data_source_id": world.source_id}),
        ]:
            result = await client.call_tool(name, args)
            # cancelJob decides before it looks (the same refusal for every id it cannot see).
            codes = {"NOT_FOUND", "FORBIDDEN"} if name == "cancel_job" else {"NOT_FOUND"}
            assert result.is_error and result.structured_content["error"]["code"] in codes, (name, result)
    # Nor by naming tenant A in the header: not a member.

    async with httpx.AsyncClient() as http:
        response = await http.post(
            world.mcp_url,
            headers={"authorization": f"Bearer {world.token('bo@b')}", "x-tenant-id": world.slug},
            json={"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {}},
        )
    assert response.status_code == 403


async def test_wait_seconds_is_capped_by_the_bound_without_a_progress_token(
    world: World, slow_source: str
) -> None:
    async with http_client(world) as client:
        started = await client.call_tool("start_discovery", {"data_source_id": slow_source})
        job_id = started.structured_content["job"]["id"]
        loop = asyncio.get_running_loop()
        begin = loop.time()
        answer = await client.call_tool("get_job", {"id": job_id, "wait_seconds": 600})
        assert loop.time() - begin < WAIT + 3, "asked 600 s, bound by UDS_MCP_WAIT_SECONDS"
        assert answer.structured_content["done"] is False and "get_job" in answer.structured_content["next"]
        cancelled = await client.call_tool("cancel_job", {"id": job_id})
        assert cancelled.structured_content["job"]["cancelRequested"] is True
