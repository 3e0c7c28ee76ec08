"""A local HTTP server speaking OPA's Data API: a stand-in for OPA at the HTTP level only.

`POST /v1/data/uds/authz/decision` with `{"input": ...}` answers `{"result": decision}`.
In mode "ok" the decision is computed by the embedded regopy engine (so a UDS server wired
to this fake behaves sensibly), in mode "scripted" it is `scripted` as given. Either way it
proves only what travels over HTTP (the input sent, the answer parsed, timeouts, retries,
fail closed), never that OPA would decide like regopy: that parity is tested only against
a real OPA (`UDS_TEST_OPA_URL`, see `real_opa_url`). Other modes misbehave the ways a real
server can: slow, 500, not JSON, no result, a result without `allow`.
"""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from uds.errors import PolicyUnavailable
from uds.policies import EmbeddedRegoEngine

DECISION_PATH = "/v1/data/uds/authz/decision"
MODES = ("ok", "scripted", "slow", "error500", "not_json", "json_garbage", "no_result", "no_allow", "not_object")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class FakeOpa:
    def __init__(self) -> None:
        self.engine = EmbeddedRegoEngine(cache_size=0)
        self.mode = "ok"
        self.slow_seconds = 5.0
        self.requests = 0
        self.url = ""
        self.scripted: dict[str, Any] = {"allow": True, "reasons": []}
        self.last_input: Any = None

    def app(self) -> Starlette:
        return Starlette(routes=[Route(DECISION_PATH, self.decision, methods=["POST"])])

    async def decision(self, request: Request) -> Response:
        self.requests += 1
        body: dict[str, Any] = await request.json()
        self.last_input = body.get("input")
        if self.mode == "slow":
            await asyncio.sleep(self.slow_seconds)
        if self.mode == "error500":
            return JSONResponse({"code": "internal_error", "message": "boom"}, status_code=500)
        if self.mode == "not_json":
            return PlainTextResponse("<html>proxy error</html>")
        if self.mode == "json_garbage":
            return Response("{not json", media_type="application/json")
        if self.mode == "no_result":
            return JSONResponse({})  # what OPA answers for an undefined document
        if self.mode == "no_allow":
            return JSONResponse({"result": {"reasons": []}})
        if self.mode == "not_object":
            return JSONResponse({"result": True})
        if self.mode == "scripted":
            return JSONResponse({"result": self.scripted})
        try:
            decision = self.engine.evaluate(body.get("input"))
        except PolicyUnavailable:
            return JSONResponse({})
        return JSONResponse({"result": {"allow": decision.allow, "reasons": list(decision.reasons)}})


@asynccontextmanager
async def running_fake_opa() -> AsyncIterator[FakeOpa]:
    fake = FakeOpa()
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(
            fake.app(), host="127.0.0.1", port=port, log_level="warning", lifespan="off", loop="asyncio"
        )
    )
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()
        await asyncio.sleep(0.01)
    fake.url = f"http://127.0.0.1:{port}"
    try:
        yield fake
    finally:
        server.should_exit = True
        await task


def real_opa_url() -> str | None:
    """The real OPA server to test against, if UDS_TEST_OPA_URL names one."""
    return os.environ.get("UDS_TEST_OPA_URL") or None


def dead_url() -> str:
    """An http URL on which nothing listens."""
    return f"http://127.0.0.1:{free_port()}"
