"""The `opa` backend: decisions from an OPA server (the production sidecar).

Each decision is one POST to OPA's Data API, `/v1/data/uds/authz/decision`, through
opa-python-client's `AsyncOpaClient`: a timeout per attempt, and the client's bounded
retries (connection errors and 500/502/504, with backoff). The whole call has a hard
deadline. Anything but a well-formed decision raises `PolicyUnavailable`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any
from urllib.parse import urlsplit

from uds.errors import ConfigError, PolicyUnavailable
from uds.policies.engine import Decision, PolicyInput, parse_decision

log = logging.getLogger(__name__)

PACKAGE = "uds.authz"
RULE = "decision"
MAX_RETRIES = 5
# AsyncOpaClient sleeps 0.3 s * 2**n before retry n+1 (opa_client.opa_async._BACKOFF_FACTOR).
_CLIENT_BACKOFF = 0.3
# Asked by `ready()`: any well-formed answer proves the server is up with our bundle loaded.
_PROBE = PolicyInput(principal=None, action="principal.read")


class OpaServerEngine:
    """PolicyEngine on an OPA server at `url` (scheme://host:port, as in UDS_POLICY_URL)."""

    def __init__(self, url: str, *, timeout: float = 0.5, retries: int = 1) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname or parts.path not in ("", "/"):
            raise ConfigError("UDS_POLICY_URL must be http(s)://host[:port] (OPA serves its API at /v1)")
        if not 0 <= retries <= MAX_RETRIES:
            raise ConfigError(f"UDS_POLICY_RETRIES must be from 0 to {MAX_RETRIES}")
        self.url = url
        self.timeout = timeout
        self.retries = retries
        from opa_client import AsyncOpaClient  # with aiohttp: only a process that uses OPA loads it

        self.deadline = timeout * (retries + 1) + sum(_CLIENT_BACKOFF * 2**n for n in range(retries))
        self._client = AsyncOpaClient(
            host=parts.hostname,
            port=parts.port or (443 if parts.scheme == "https" else 80),
            ssl=parts.scheme == "https",
            timeout=timeout,
            retries=retries,
        )
        self._stack = contextlib.AsyncExitStack()

    async def start(self) -> OpaServerEngine:
        """Open the HTTP session (needs the running event loop)."""
        await self._stack.enter_async_context(self._client)
        return self

    async def decide(self, request: PolicyInput) -> Decision:
        try:
            async with asyncio.timeout(self.deadline):
                body = await self._client.query_rule(request.to_input(), PACKAGE, RULE)
        except Exception as exc:
            log.warning("OPA at %s gave no decision: %r", self.url, exc)
            cause = "timed out" if isinstance(exc, TimeoutError) else "is unreachable or failed"
            raise PolicyUnavailable(f"the policy engine {cause}") from exc
        return parse_decision(_result(body))

    async def ready(self) -> bool:
        try:
            await self.decide(_PROBE)
        except PolicyUnavailable:
            return False
        return True

    async def aclose(self) -> None:
        await self._stack.aclose()


def _result(body: Any) -> Any:
    # OPA answers {} (no "result") when the document is undefined, e.g. bundle not loaded.
    if not isinstance(body, dict) or "result" not in body:
        log.warning("OPA answered without a result: %.200r", body)
        raise PolicyUnavailable("the policy decision is undefined")
    return body["result"]
