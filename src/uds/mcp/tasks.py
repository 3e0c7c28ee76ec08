"""The `io.modelcontextprotocol/tasks` extension (SEP-2663) on the SDK's extension hooks.

The SDK (2.3.0) has no tasks; `mcp.server.extension.Extension` carries this one:
`intercept_tool_call` answers a long-job tool call with a task handle when the request
declares the extension (2026-07-28 connections; a handshake-era connection sieves results
to the core shapes, so it never gets one), and `methods()` serves `tasks/get`,
`tasks/update` and `tasks/cancel`.

A task IS the UDS job: the task id is the job id (a random UUID, unguessable), so the
handle is durable before it is returned (the job row is committed by the mutation) and
survives restarts. Every task call runs as a GraphQL operation with the caller's own
credentials, so rights are checked on each one: another tenant's job does not exist in
the caller's tenant, and a member who may not cancel gets the policy's reasons.

Mapping: QUEUED/RUNNING -> working (statusMessage: phase, message, percent);
SUCCEEDED and FAILED -> completed with the tool's result inlined (a failed job is a tool
result with isError, not a JSON-RPC failure); CANCELLED -> cancelled.
"""

from __future__ import annotations

from typing import Any

from mcp.server.context import CallNext, HandlerResult, ServerRequestContext
from mcp.server.extension import Extension, MethodBinding
from mcp.shared.exceptions import MCPError
from mcp_types import INVALID_PARAMS, CallToolRequestParams, RequestParams
from mcp_types.version import MODERN_PROTOCOL_VERSIONS
from pydantic import Field

from uds.mcp.gateway import GatewayError
from uds.mcp.server import FINAL, ToolFailure, error_result, next_step, unwrap
from uds.mcp.tools import variables_for

IDENTIFIER = "io.modelcontextprotocol/tasks"
POLL_INTERVAL_MS = 1000
FORBIDDEN_CODE = -32003  # a JSON-RPC error in the server range: the caller may not do this


class TaskParams(RequestParams):
    task_id: str = Field(alias="taskId")
    request_state: str | None = Field(default=None, alias="requestState")


class UpdateTaskParams(TaskParams):
    input_responses: dict[str, Any] | None = Field(default=None, alias="inputResponses")


def declared(ctx: ServerRequestContext[Any, Any]) -> bool:
    if ctx.protocol_version not in MODERN_PROTOCOL_VERSIONS:
        return False
    capabilities = ctx.session.client_capabilities
    extensions = capabilities.extensions if capabilities else None
    return bool(extensions) and IDENTIFIER in extensions  # type: ignore[operator]


def status_message(job: dict[str, Any]) -> str:
    parts = [p for p in (job.get("phase"), job.get("message")) if p]
    percent = round(100 * float(job.get("progress") or 0))
    text = ": ".join(parts) if parts else job["status"].lower()
    return f"{text} ({percent}%)"


def task_of(job: dict[str, Any]) -> dict[str, Any]:
    status = job["status"]
    task: dict[str, Any] = {
        "taskId": job["id"],
        "status": "working",
        "statusMessage": status_message(job),
        "createdAt": job["createdAt"],
        "lastUpdatedAt": job.get("finishedAt") or job.get("startedAt") or job["createdAt"],
        "ttlSeconds": None,
        "pollIntervalMilliseconds": POLL_INTERVAL_MS,
    }
    if status == "CANCELLED":
        task["status"] = "cancelled"
    elif status in FINAL:
        from uds.mcp.server import ok_result

        task["status"] = "completed"
        followed = {"job": job, "done": True, "lastSeq": 0, "events": [], "next": next_step(job, 0)}
        result = ok_result(followed)
        if status == "FAILED":
            result = error_result("JOB_FAILED", job.get("error") or "the job failed")
        task["result"] = result.model_dump(by_alias=True, mode="json", exclude_none=True)
    return task


class TasksExtension(Extension):
    identifier = IDENTIFIER

    def __init__(self, server: Any) -> None:
        self.server = server

    def methods(self) -> list[MethodBinding]:
        modern = frozenset(MODERN_PROTOCOL_VERSIONS)
        return [
            MethodBinding("tasks/get", TaskParams, self._get, protocol_versions=modern),
            MethodBinding("tasks/update", UpdateTaskParams, self._update, protocol_versions=modern),
            MethodBinding("tasks/cancel", TaskParams, self._cancel, protocol_versions=modern),
        ]

    async def intercept_tool_call(
        self, params: CallToolRequestParams, ctx: ServerRequestContext[Any, Any], call_next: CallNext
    ) -> HandlerResult:
        spec = self.server.specs.get(params.name)
        if spec is None or not spec.long_job or not declared(ctx):
            return await call_next(ctx)
        try:
            spec, arguments = self.server.checked(params.name, params.arguments)
            gateway = self.server.gateway_for(ctx)
            job = unwrap(await gateway.execute(spec.operation, variables_for(spec, arguments)), "job")
        except ToolFailure as exc:
            return error_result(exc.code, exc.message)
        except GatewayError as exc:
            return error_result(exc.code, exc.message, exc.reasons)
        return {"resultType": "task", **task_of(job)}

    async def _job(self, ctx: ServerRequestContext[Any, Any], task_id: str) -> dict[str, Any]:
        try:
            return unwrap(await self.server.gateway_for(ctx).execute("GetJob", {"id": task_id}), "task")  # type: ignore[no-any-return]
        except GatewayError as exc:
            raise _protocol_error(exc) from None

    async def _get(self, ctx: ServerRequestContext[Any, Any], params: TaskParams) -> HandlerResult:
        return {"resultType": "complete", **task_of(await self._job(ctx, params.task_id))}

    async def _update(self, ctx: ServerRequestContext[Any, Any], params: UpdateTaskParams) -> HandlerResult:
        # UDS jobs never ask for input, so nothing is taken from a caller; the extension
        # requires an acknowledgement even for a task the caller cannot see.
        return {"resultType": "complete"}

    async def _cancel(self, ctx: ServerRequestContext[Any, Any], params: TaskParams) -> HandlerResult:
        gateway = self.server.gateway_for(ctx)
        try:
            unwrap(await gateway.execute("CancelJob", {"id": params.task_id}), "task")
        except GatewayError as exc:
            # An unknown task (another tenant's job is one) is acknowledged, as the extension
            # requires; a refusal of a task the caller can see carries the policy's reasons.
            if exc.code != "NOT_FOUND" and await _visible(gateway, params.task_id):
                raise _protocol_error(exc) from None
        return {"resultType": "complete"}


async def _visible(gateway: Any, task_id: str) -> bool:
    try:
        return (await gateway.execute("GetJob", {"id": task_id})).get("job") is not None
    except GatewayError:
        return False


def _protocol_error(exc: GatewayError) -> MCPError:
    code = INVALID_PARAMS if exc.code in ("NOT_FOUND", "BAD_USER_INPUT") else FORBIDDEN_CODE
    data: dict[str, Any] = {"code": exc.code}
    if exc.reasons:
        data["reasons"] = exc.reasons
    return MCPError(code=code, message=f"{exc.code}: {exc.message}", data=data)
