"""`uds mcp --transport stdio`: the MCP server for desktop assistants, as a client of a
running UDS.

Configured by the environment, as the MCP authorization spec asks of stdio servers:
`UDS_URL` (default http://127.0.0.1:8000), `UDS_TOKEN` (a bearer token for that UDS) and
`UDS_TENANT` (the tenant to work in). Every tool call is a GraphQL request to that UDS
with those credentials (uds.mcp.gateway.RemoteGateway), so the server there applies the
same policies as for any client. Stdout carries only MCP messages; logs go to stderr.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Mapping

import anyio

from uds.errors import ConfigError
from uds.mcp.gateway import RemoteGateway
from uds.mcp.server import UdsMcpServer
from uds.settings import Settings

DEFAULT_URL = "http://127.0.0.1:8000"


def stdio_gateway(env: Mapping[str, str]) -> RemoteGateway:
    url = env.get("UDS_URL", "").strip() or DEFAULT_URL
    token = env.get("UDS_TOKEN", "").strip()
    tenant = env.get("UDS_TENANT", "").strip()
    if not url.startswith(("http://", "https://")):
        raise ConfigError("UDS_URL must start with http:// or https://")
    if not token:
        raise ConfigError("UDS_TOKEN is required (a bearer token, e.g. from `uds token create`)")
    if not tenant:
        raise ConfigError("UDS_TENANT is required (the tenant's slug)")
    return RemoteGateway(url, token, tenant)


def run_stdio(env: Mapping[str, str] | None = None) -> int:
    env = os.environ if env is None else env
    logging.basicConfig(stream=sys.stderr, level=logging.WARNING)
    gateway = stdio_gateway(env)
    server = UdsMcpServer(Settings.from_env(env), lambda ctx: gateway)

    async def main() -> None:
        try:
            await server.run_stdio_async()
        finally:
            await gateway.aclose()

    anyio.run(main)
    return 0
