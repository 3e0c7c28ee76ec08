"""CORS for browser clients on other origins: only the origins named in UDS_CORS_ORIGINS.

Unset (the default, dev and prod alike), no CORS headers are sent and browsers keep
pages from other origins out. Tokens travel in the Authorization header, never in
cookies, so credentials are not allowed; the headers a client reads back (rate limits,
Retry-After, the request id) are exposed.
"""

from __future__ import annotations

from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware

from uds.settings import Settings

ALLOWED_HEADERS = ("authorization", "content-type", "x-tenant-id", "x-request-id")
EXPOSED_HEADERS = (
    "ratelimit-limit",
    "ratelimit-remaining",
    "ratelimit-reset",
    "ratelimit-policy",
    "retry-after",
    "x-request-id",
)


def cors_middleware(settings: Settings) -> list[Middleware]:
    """The CORS middleware for the configured origins, or nothing when none are."""
    if not settings.cors_origins:
        return []
    return [
        Middleware(
            CORSMiddleware,
            allow_origins=list(settings.cors_origins),
            allow_methods=["GET", "POST"],
            allow_headers=list(ALLOWED_HEADERS),
            expose_headers=list(EXPOSED_HEADERS),
            allow_credentials=False,
            max_age=600,
        )
    ]
