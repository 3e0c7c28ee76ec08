"""One exception hierarchy for UDS; every class maps to a GraphQL error code.

The API layer turns these into `extensions.code` (see `uds.api.errors`); services raise
them and never build transport responses themselves.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any


class UdsError(Exception):
    """Base of every error UDS raises on purpose."""

    code = "INTERNAL"
    http_status = 500

    def __init__(
        self, message: str, *, reasons: Sequence[str] = (), extensions: Mapping[str, Any] | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        self.reasons = tuple(reasons)
        # Machine-readable details added to the GraphQL error's `extensions` (camelCase keys).
        self.extensions = dict(extensions or {})


class Unauthenticated(UdsError):
    """The bearer token is missing where required, malformed, forged or expired."""

    code = "UNAUTHENTICATED"
    http_status = 401


class Forbidden(UdsError):
    """The principal may not do this (also: unknown tenant, to prevent enumeration)."""

    code = "FORBIDDEN"
    http_status = 403


class TenantRequired(UdsError):
    """The operation needs an `X-Tenant-ID` header and none was sent."""

    code = "TENANT_REQUIRED"
    http_status = 400


class NotFound(UdsError):
    """The object does not exist in this tenant."""

    code = "NOT_FOUND"
    http_status = 404


class BadUserInput(UdsError):
    """An argument, header or request body is malformed."""

    code = "BAD_USER_INPUT"
    http_status = 400


class Conflict(UdsError):
    """The object already exists or is in a state that forbids the change."""

    code = "CONFLICT"
    http_status = 409


class RequestTooLarge(BadUserInput):
    """The request body or a header is over its size limit."""

    http_status = 413


class RateLimited(UdsError):
    """The tenant or principal sent more requests than its limit allows."""

    code = "RATE_LIMITED"
    http_status = 429


class QueryTooComplex(UdsError):
    """The GraphQL document is too deep, too long, has too many aliases or costs too much."""

    code = "QUERY_TOO_COMPLEX"
    http_status = 400


class PersistedQueryNotFound(UdsError):
    """A persisted-query hash this server does not know: send it again with the document.

    Apollo's automatic persisted queries protocol: the client retries with the query.
    HTTP 200, as clients read the error from the body.
    """

    code = "PERSISTED_QUERY_NOT_FOUND"
    http_status = 200


class PersistedQueryNotSupported(UdsError):
    """Persisted queries are switched off (UDS_PERSISTED_QUERIES=off)."""

    code = "PERSISTED_QUERY_NOT_SUPPORTED"
    http_status = 400


class PersistedQueryNotInList(UdsError):
    """Safelist mode: the document is not one of the registered operations."""

    code = "PERSISTED_QUERY_NOT_IN_LIST"
    http_status = 400


class PolicyUnavailable(UdsError):
    """The policy engine failed or timed out; the request is denied (fail closed)."""

    code = "POLICY_UNAVAILABLE"
    http_status = 503


class ConfigError(UdsError):
    """A setting is missing or malformed; raised at start-up."""
