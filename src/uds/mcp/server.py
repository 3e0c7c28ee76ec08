"""The UDS MCP server: one tool set for both transports, on the SDK's `MCPServer`.

Tools come from uds.mcp.tools (named GraphQL operations); each call runs through a
`Gateway` (uds.mcp.gateway) chosen per request by `gateway_for`: in process as the
verified caller on `POST /mcp`, or as a GraphQL client for `uds mcp --transport stdio`.

Results: `structuredContent` matching the tool's `outputSchema`, the same JSON as text,
and resource links (catalog profiles) or an image (widget pictures) where they help. A UDS
error is a tool result with `isError` whose JSON carries the UDS code, message and, for a
policy denial, the reasons; bad arguments, unknown tools and oversized arguments likewise.

Long jobs (start_discovery, generate_dashboard, get_job) follow the job's event log:
progress notifications while the caller holds a progress token, otherwise a bounded wait;
a client that declares the tasks extension gets a task handle (uds.mcp.tasks).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import jsonschema
from mcp.server.context import ServerRequestContext
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ResourceError
from mcp_types import CallToolResult, ImageContent, ResourceLink, TextContent
from mcp_types import Tool as MCPTool

from uds.mcp import catalog as cat
from uds.mcp.gateway import Gateway, GatewayError
from uds.mcp.tools import TOOLS, ToolSpec, binding, variables_for
from uds.settings import Settings

log = logging.getLogger(__name__)

FINAL = frozenset({"SUCCEEDED", "FAILED", "CANCELLED"})
TERMINAL_EVENTS = frozenset({"succeeded", "failed", "cancelled"})
# Union members of mutation results that are errors, and the code each stands for.
ERROR_TYPES = {
    "ValidationError": "BAD_USER_INPUT",
    "NotAllowed": "FORBIDDEN",
    "NotFound": "NOT_FOUND",
    "Conflict": "CONFLICT",
}
DEFAULT_ROWS = 50  # rows get_widget_data returns unless asked for more
EVENTS_SHOWN = 20  # the most recent job events a followed-job result lists

INSTRUCTIONS = (
    "UDS discovers what is in a tenant's PostgreSQL databases and builds dashboards from it. "
    "Typical flow: list_data_sources -> start_discovery (a job; follow it with get_job) -> "
    "get_catalog / get_table -> generate_dashboard -> get_dashboard / get_widget_image. "
    "You act with the rights of the user whose credentials this server holds; a refusal "
    "explains which role is needed."
)

GatewayFor = Callable[[ServerRequestContext[Any, Any]], Gateway]


class ToolFailure(Exception):
    """A tool error the model can act on (bad arguments, unknown tool)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def error_result(code: str, message: str, reasons: list[str] | None = None) -> CallToolResult:
    error: dict[str, Any] = {"code": code, "message": message}
    if reasons:
        error["reasons"] = reasons
    text = f"{code}: {message}" + (f" ({'; '.join(reasons)})" if reasons else "")
    body = {"error": error}
    return CallToolResult(
        content=[TextContent(type="text", text=text + "\n" + json.dumps(body))],
        structured_content=body,
        is_error=True,
    )


def ok_result(structured: dict[str, Any], extra: list[Any] | None = None) -> CallToolResult:
    return CallToolResult(
        content=[TextContent(type="text", text=json.dumps(structured, ensure_ascii=False)), *(extra or [])],
        structured_content=structured,
    )


def unwrap(data: dict[str, Any], what: str) -> Any:
    """The single root field of an operation's data; union error members raise."""
    value = next(iter(data.values())) if data else None
    if value is None:
        raise GatewayError("NOT_FOUND", f"no such {what} in this tenant")
    if isinstance(value, dict) and "__typename" in value:
        typename = value["__typename"]
        if typename in ERROR_TYPES:
            raise GatewayError(ERROR_TYPES[typename], value.get("failure") or typename, value.get("reasons"))
        value = {k: v for k, v in value.items() if k != "__typename"}
    return value


def progress_token(ctx: ServerRequestContext[Any, Any] | None) -> Any:
    meta = getattr(ctx, "meta", None) or {}
    return meta.get("progress_token", meta.get("progressToken"))


class Progress:
    """Progress notifications from job events: increasing, phase as message, 1 at the end."""

    def __init__(self, report: Callable[[float, float | None, str | None], Awaitable[None]]) -> None:
        self.report = report
        self.sent = 0.0
        self.count = 0

    async def event(self, event: dict[str, Any]) -> None:
        if event["type"] in TERMINAL_EVENTS:
            return  # the final notification follows the job's last state
        value = min(max(float(event.get("progress") or 0.0), self.sent + 0.001), 0.999)
        if value <= self.sent:
            return
        self.sent = value
        self.count += 1
        await self.report(value, 1.0, describe(event))

    async def final(self, job: dict[str, Any]) -> None:
        self.sent = 1.0
        self.count += 1
        await self.report(
            1.0, 1.0, f"{job['status'].lower()}" + (f": {job['error']}" if job.get("error") else "")
        )


def describe(event: dict[str, Any]) -> str:
    phase, message = event.get("phase"), event.get("message")
    return ": ".join(p for p in (phase, message) if p) or event["type"]


async def follow_job(
    gateway: Gateway,
    job_id: str,
    *,
    after_seq: int,
    wait: float,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """The job after waiting up to `wait` seconds for it to end, with the events seen."""
    events: list[dict[str, Any]] = []
    last = after_seq
    job = unwrap(await gateway.execute("GetJob", {"id": job_id}), "job")
    # An ended job's events are replayed (then the stream ends), so a follower that asks
    # after the end still gets the events it has not seen and an up-to-date lastSeq.
    if wait > 0:

        async def consume() -> None:
            nonlocal last
            async with contextlib.aclosing(gateway.events(job_id, after_seq)) as stream:  # type: ignore[type-var]
                async for event in stream:
                    last = max(last, int(event["seq"]))
                    events.append({k: event.get(k) for k in ("seq", "type", "progress", "phase", "message")})
                    if progress is not None:
                        await progress.event(event)
                    if event["type"] in TERMINAL_EVENTS:
                        return

        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(consume(), wait)
        if job["status"] not in FINAL:
            job = unwrap(await gateway.execute("GetJob", {"id": job_id}), "job")
    done = job["status"] in FINAL
    if done and progress is not None:
        await progress.final(job)
    return {
        "job": job,
        "done": done,
        "lastSeq": last,
        "events": events[-EVENTS_SHOWN:],
        "next": next_step(job, last),
    }


def next_step(job: dict[str, Any], last_seq: int) -> str:
    status = job["status"]
    if status == "SUCCEEDED":
        if job["kind"] == "discovery":
            return "Discovery finished. Read what it found with get_catalog."
        result = job.get("result") or {}
        if isinstance(result, dict) and result.get("dashboardId"):
            dashboard = result["dashboardId"]
            return f"The dashboard is ready: get_dashboard(id='{dashboard}'), then get_widget_image."
        return "The job finished; its result is in job.result."
    if status == "FAILED":
        return f"The job failed: {job.get('error') or 'no reason given'}."
    if status == "CANCELLED":
        return "The job was cancelled."
    percent = round(100 * float(job.get("progress") or 0))
    return (
        f"Still {status} ({percent}%). To wait for it call get_job(id='{job['id']}', after_seq={last_seq}, "
        "wait_seconds=45); to stop it call cancel_job."
    )


class UdsMcpServer(MCPServer[Any]):
    """MCPServer whose tools are UDS's GraphQL operations."""

    def __init__(
        self, settings: Settings, gateway_for: GatewayFor, *, tools: tuple[ToolSpec, ...] = TOOLS
    ) -> None:
        from uds.mcp.tasks import TasksExtension

        self.uds_settings = settings
        self.gateway_for = gateway_for
        self.specs = {spec.name: spec for spec in tools}
        super().__init__(
            "uds",
            title="UDS",
            instructions=INSTRUCTIONS,
            version="0.1.0",
            extensions=[TasksExtension(self)],
        )
        self._register_resources()

    # -- tools ---------------------------------------------------------------------------

    async def list_tools(self) -> list[MCPTool]:
        return [
            MCPTool(
                name=spec.name,
                title=spec.title,
                description=spec.description,
                input_schema=binding(spec).input_schema,
                output_schema=spec.output,
                annotations=spec.annotations,
            )
            for spec in self.specs.values()
        ]

    def _tool_input_schema(self, name: str) -> dict[str, Any] | None:
        spec = self.specs.get(name)
        return None if spec is None else binding(spec).input_schema

    async def call_tool(
        self, name: str, arguments: dict[str, Any], context: Context[Any, Any] | None = None
    ) -> CallToolResult:
        ctx = context.request_context if context is not None else None
        try:
            spec, arguments = self.checked(name, arguments)
            assert ctx is not None
            gateway = self.gateway_for(ctx)
            handler = getattr(self, f"_tool_{spec.name}", None)
            if handler is not None:
                return await handler(spec, arguments, gateway, context)  # type: ignore[no-any-return]
            data = await gateway.execute(spec.operation, variables_for(spec, arguments))
            return ok_result(unwrap(data, spec.name.split("_", 1)[1].replace("_", " ")))
        except ToolFailure as exc:
            return error_result(exc.code, exc.message)
        except GatewayError as exc:
            return error_result(exc.code, exc.message, exc.reasons)

    def checked(self, name: str, arguments: dict[str, Any] | None) -> tuple[ToolSpec, dict[str, Any]]:
        """The tool and its arguments, or ToolFailure with what is wrong."""
        spec = self.specs.get(name)
        if spec is None:
            raise ToolFailure(
                "UNKNOWN_TOOL", f"there is no tool {name!r}; the tools are: {', '.join(self.specs)}"
            )
        arguments = dict(arguments or {})
        size = len(json.dumps(arguments))
        limit = self.uds_settings.mcp_max_argument_bytes
        if size > limit:
            raise ToolFailure(
                "BAD_USER_INPUT", f"arguments are {size} bytes as JSON; at most {limit} are accepted"
            )
        error = jsonschema.exceptions.best_match(validator(spec).iter_errors(arguments))
        if error is not None:
            where = ".".join(str(p) for p in error.absolute_path) or "arguments"
            raise ToolFailure("BAD_USER_INPUT", f"{where}: {error.message}")
        return spec, arguments

    def wait_bound(self, context: Context[Any, Any] | None, asked: float | None) -> tuple[float, bool]:
        """How long a long-job call may wait, and whether it streams progress."""
        streaming = progress_token(context.request_context if context is not None else None) is not None
        bound = (
            self.uds_settings.mcp_progress_wait_seconds if streaming else self.uds_settings.mcp_wait_seconds
        )
        return (bound if asked is None else min(float(asked), bound)), streaming

    async def run_long_job(
        self, spec: ToolSpec, arguments: dict[str, Any], gateway: Gateway, context: Context[Any, Any] | None
    ) -> CallToolResult:
        job = unwrap(await gateway.execute(spec.operation, variables_for(spec, arguments)), "job")
        wait, streaming = self.wait_bound(context, arguments.get("wait_seconds"))
        progress = Progress(context.report_progress) if streaming and context is not None else None
        followed = await follow_job(gateway, job["id"], after_seq=0, wait=wait, progress=progress)
        return ok_result(followed)

    async def _tool_start_discovery(
        self, spec: ToolSpec, arguments: dict[str, Any], gateway: Gateway, context: Any
    ) -> CallToolResult:
        return await self.run_long_job(spec, arguments, gateway, context)

    async def _tool_generate_dashboard(
        self, spec: ToolSpec, arguments: dict[str, Any], gateway: Gateway, context: Any
    ) -> CallToolResult:
        return await self.run_long_job(spec, arguments, gateway, context)

    async def _tool_get_dashboard(
        self, spec: ToolSpec, arguments: dict[str, Any], gateway: Gateway, context: Any
    ) -> CallToolResult:
        dashboard = unwrap(await gateway.execute("GetDashboard", {"id": arguments["id"]}), "dashboard")
        link = ResourceLink(
            type="resource_link",
            uri=f"uds://dashboards/{dashboard['id']}.png",
            name=f"{dashboard['title']} (picture)",
            description="The whole dashboard as a PNG picture",
            mime_type="image/png",
        )
        return ok_result(dashboard, [link])

    async def _tool_get_widget_data(
        self, spec: ToolSpec, arguments: dict[str, Any], gateway: Gateway, context: Any
    ) -> CallToolResult:
        data = unwrap(await gateway.execute(spec.operation, variables_for(spec, arguments)), "widget")
        cap = int(arguments.get("max_rows", DEFAULT_ROWS))
        rows = data["rows"] if isinstance(data["rows"], list) else []
        capped = len(rows) > cap
        note = None
        if capped:
            note = (
                f"Only the first {cap} of {len(rows)} rows are shown (max_rows). Aggregate, or read "
                "the picture with get_widget_image, rather than paging through rows."
            )
        elif data["truncated"]:
            note = "The widget's query returned more rows than UDS's row limit; these are the first ones."
        return ok_result(
            {
                "columns": data["columns"],
                "rows": rows[:cap],
                "rowsReturned": min(cap, len(rows)),
                "rowsAvailable": len(rows),
                "rowsCapped": capped,
                "truncated": data["truncated"],
                "cached": data["cached"],
                "insights": data["insights"],
                "note": note,
            }
        )

    async def _tool_get_widget_image(
        self, spec: ToolSpec, arguments: dict[str, Any], gateway: Gateway, context: Any
    ) -> CallToolResult:
        data = await gateway.execute(spec.operation, variables_for(spec, arguments))
        image, dashboard = data.get("widgetImage"), data.get("dashboard")
        if image is None or dashboard is None:
            raise GatewayError("NOT_FOUND", "no such dashboard or widget in this tenant")
        structured = {
            "dashboardId": arguments["dashboard_id"],
            "widgetId": arguments["widget_id"],
            "mediaType": image["mediaType"],
            "imageUrl": image["url"],
            "dashboardUrl": dashboard["url"],
            "dashboardTitle": dashboard["title"],
        }
        picture = ImageContent(type="image", data=image["base64"], mime_type=image["mediaType"])
        return ok_result(structured, [picture])

    async def _tool_get_job(
        self, spec: ToolSpec, arguments: dict[str, Any], gateway: Gateway, context: Any
    ) -> CallToolResult:
        wait, streaming = self.wait_bound(context, arguments.get("wait_seconds", 0))
        progress = Progress(context.report_progress) if streaming and context is not None else None
        followed = await follow_job(
            gateway,
            arguments["id"],
            after_seq=int(arguments.get("after_seq", 0)),
            wait=wait,
            progress=progress,
        )
        return ok_result(followed)

    async def _tool_cancel_job(
        self, spec: ToolSpec, arguments: dict[str, Any], gateway: Gateway, context: Any
    ) -> CallToolResult:
        job = unwrap(await gateway.execute("CancelJob", {"id": arguments["id"]}), "job")
        return ok_result({"job": job})

    async def _tool_list_data_sources(
        self, spec: ToolSpec, arguments: dict[str, Any], gateway: Gateway, context: Any
    ) -> CallToolResult:
        variables = variables_for(spec, arguments)
        variables.setdefault("first", 20)
        connection = unwrap(await gateway.execute(spec.operation, variables), "data sources")
        return ok_result({"dataSources": connection["nodes"], "pageInfo": connection["pageInfo"]})

    async def _tool_get_catalog(
        self, spec: ToolSpec, arguments: dict[str, Any], gateway: Gateway, context: Any
    ) -> CallToolResult:
        source = arguments["data_source_id"]
        schema = arguments.get("schema")

        async def fetch(first: int, after: str | None, count: bool) -> dict[str, Any]:
            variables = {
                "dataSourceId": source,
                "first": first,
                "after": after,
                "schema": schema,
                "count": count,
            }
            return self.found_catalog(await gateway.execute(spec.operation, variables))

        page, names = await cat.read_page(
            fetch,
            source,
            level=arguments.get("level", "summary"),
            cursor=arguments.get("cursor"),
            max_chars=int(arguments.get("max_chars", cat.DEFAULT_MAX_CHARS)),
            schema=schema,
            max_first=self.uds_settings.max_page_size,
            link=lambda table: table_uri(source, table),
        )
        links = [
            ResourceLink(
                type="resource_link",
                uri=table_uri(source, name),
                name=name,
                description=f"Full profile of {name}",
                mime_type="application/json",
            )
            for name in names
        ]
        links.append(
            ResourceLink(
                type="resource_link",
                uri=f"uds://datasources/{source}/catalog",
                name="catalog",
                description="The whole catalog with every profile (large)",
                mime_type="application/json",
            )
        )
        return ok_result(page, links)

    async def _tool_get_table(
        self, spec: ToolSpec, arguments: dict[str, Any], gateway: Gateway, context: Any
    ) -> CallToolResult:
        return ok_result(await self.table(gateway, arguments["data_source_id"], arguments["table"]))

    async def table(self, gateway: Gateway, source: str, wanted: str) -> dict[str, Any]:
        """One table of the catalog, read alone (GetCatalogTable), for each name it can mean."""
        for schema, name in cat.table_names(wanted):
            data = await gateway.execute(
                "GetCatalogTable", {"dataSourceId": source, "schema": schema, "name": name}
            )
            found = self.found_catalog(data)["table"]
            if found is not None:
                return found  # type: ignore[no-any-return]
        raise GatewayError("NOT_FOUND", f"no table {wanted!r} in this catalog; list them with get_catalog")

    async def _tool_catalog_diff(
        self, spec: ToolSpec, arguments: dict[str, Any], gateway: Gateway, context: Any
    ) -> CallToolResult:
        first, second = arguments.get("from_run_id"), arguments.get("to_run_id")
        if first is None or second is None:
            source = arguments.get("data_source_id")
            if source is None:
                raise ToolFailure("BAD_USER_INPUT", "give from_run_id and to_run_id, or data_source_id")
            runs = unwrap(
                await gateway.execute("ListDiscoveryRuns", {"dataSourceId": source, "first": 20}), "runs"
            )
            done = [r["id"] for r in runs["nodes"] if r["status"] == "SUCCEEDED"]
            if len(done) < 2:
                raise GatewayError(
                    "NOT_FOUND", "this data source has fewer than two successful discovery runs"
                )
            second, first = done[0], done[1]
        data = await gateway.execute("CatalogDiff", {"fromRunId": first, "toRunId": second})
        return ok_result(unwrap(data, "discovery run"))

    async def catalog(self, gateway: Gateway, source: str) -> dict[str, Any]:
        """The whole catalog with every profile (only the catalog resource reads it)."""
        return self.found_catalog(await gateway.execute("GetCatalogDetail", {"dataSourceId": source}))

    @staticmethod
    def found_catalog(data: dict[str, Any]) -> dict[str, Any]:
        if data.get("catalog") is None:
            raise GatewayError(
                "NOT_FOUND",
                "no catalog for this data source: it does not exist here, or was never discovered "
                "(run start_discovery)",
            )
        return data["catalog"]  # type: ignore[no-any-return]

    # -- resources -----------------------------------------------------------------------

    def _register_resources(self) -> None:
        server = self

        @self.resource(
            "uds://datasources/{id}/catalog",
            name="catalog",
            title="A data source's catalog",
            description="Everything the latest discovery found, with every profile (JSON).",
            mime_type="application/json",
        )
        async def catalog_resource(id: str, ctx: Context[Any, Any]) -> str:
            catalog = await server._resource_call(ctx, lambda g: server.catalog(g, id))
            return json.dumps(catalog, ensure_ascii=False)

        @self.resource(
            "uds://datasources/{id}/tables/{table}",
            name="table",
            title="One table's profile",
            description="One table of a data source's catalog, 'schema.name', with its profiles (JSON).",
            mime_type="application/json",
        )
        async def table_resource(id: str, table: str, ctx: Context[Any, Any]) -> str:
            found = await server._resource_call(ctx, lambda g: server.table(g, id, table))
            return json.dumps(found, ensure_ascii=False)

        @self.resource(
            "uds://dashboards/{id}.png",
            name="dashboard picture",
            title="A dashboard as a picture",
            description="The whole dashboard rendered as one PNG.",
            mime_type="image/png",
        )
        async def dashboard_picture(id: str, ctx: Context[Any, Any]) -> bytes:
            image = await server._resource_read(ctx, "GetDashboardImage", id, "dashboard")
            return base64.b64decode(image["base64"])

        @self.resource(
            "uds://dashboards/{id}",
            name="dashboard",
            title="A dashboard",
            description="A dashboard with its widgets (JSON).",
            mime_type="application/json",
        )
        async def dashboard_resource(id: str, ctx: Context[Any, Any]) -> str:
            dashboard = await server._resource_read(ctx, "GetDashboard", id, "dashboard")
            return json.dumps(dashboard, ensure_ascii=False)

        @self.resource(
            "uds://jobs/{id}",
            name="job",
            title="A job",
            description="A background job's status, progress and result (JSON).",
            mime_type="application/json",
        )
        async def job_resource(id: str, ctx: Context[Any, Any]) -> str:
            return json.dumps(await server._resource_read(ctx, "GetJob", id, "job"), ensure_ascii=False)

    async def _resource_read(self, ctx: Context[Any, Any], operation: str, id: str, what: str) -> Any:
        """The data of `operation` for one id (NOT_FOUND naming `what` when it is null)."""

        async def read(gateway: Gateway) -> Any:
            return unwrap(await gateway.execute(operation, {"id": id}), what)

        return await self._resource_call(ctx, read)

    async def _resource_call(self, ctx: Context[Any, Any], call: Callable[[Gateway], Awaitable[Any]]) -> Any:
        try:
            return await call(self.gateway_for(ctx.request_context))
        except GatewayError as exc:
            raise ResourceError(f"{exc.code}: {exc.message}") from None


_VALIDATORS: dict[str, Any] = {}


def validator(spec: ToolSpec) -> Any:
    """The tool's input-schema validator (checking a schema costs more than using it)."""
    found = _VALIDATORS.get(spec.name)
    if found is None:
        schema = binding(spec).input_schema
        jsonschema.Draft202012Validator.check_schema(schema)
        found = _VALIDATORS[spec.name] = jsonschema.Draft202012Validator(schema)
    return found


def table_uri(source: str, table: str) -> str:
    return f"uds://datasources/{source}/tables/{table}"
