"""Why a data source could not be used: each reason is its own class with a clear message.

They are `BadUserInput` errors: the cause lies with the source the tenant registered, not
with UDS (a mutation reports one as a ValidationError). Messages name the source by
`host:port/database` and never contain credentials.
"""

from __future__ import annotations

from uds.errors import BadUserInput


class SourceError(BadUserInput):
    """A data source could not be reached, read or trusted."""

    kind = "error"


class SourceRefused(SourceError):
    """The network guard refused the host (private, loopback or link-local address)."""

    kind = "refused"


class SourceUnreachable(SourceError):
    """No connection: DNS failure, connection refused, or the connect timeout passed."""

    kind = "unreachable"


class SourceAuthFailed(SourceError):
    """The server rejected the user name or password."""

    kind = "auth_failed"


class SourceAccessDenied(SourceError):
    """Connected, but the user may not use the database or read the catalog."""

    kind = "access_denied"


class SourceTimeout(SourceError):
    """A statement ran past statement_timeout, or waited past lock_timeout."""

    kind = "timeout"


class SourceGone(SourceError):
    """The connection or the database went away while discovery was reading it."""

    kind = "gone"


class SourceFailed(SourceError):
    """The source answered with an error UDS did not expect."""

    kind = "failed"
