"""How to reach a data source: host, port, database, user, password and options."""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import unquote

from sqlalchemy import make_url

from uds.errors import BadUserInput

SSL_MODES = ("disable", "allow", "prefer", "require", "verify-ca", "verify-full")
# A schema name we accept in `schemas`: plain identifiers only, so they can be compared and
# quoted without surprises.
SCHEMA_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_$]{0,62}")
MAX_SCHEMAS = 100


@dataclass(frozen=True, slots=True)
class ConnectionParams:
    """Everything needed to connect to a PostgreSQL data source.

    The password is excluded from `repr` so that a params object in a log line or a
    traceback never shows it.
    """

    host: str
    database: str
    user: str
    password: str = field(default="", repr=False)
    port: int = 5432
    sslmode: str = "prefer"
    schemas: tuple[str, ...] = ()

    @property
    def is_unix_socket(self) -> bool:
        return self.host.startswith("/")

    def asyncpg_kwargs(self, *, application_name: str | None = None) -> dict[str, Any]:
        """Keyword arguments for `asyncpg.connect` (TLS as `sslmode` says; none on a socket)."""
        kwargs: dict[str, Any] = {
            "host": self.host,
            "port": self.port,
            "user": self.user,
            "password": self.password,
            "database": self.database,
            "ssl": None if self.is_unix_socket else self.sslmode,
        }
        if application_name:
            kwargs["server_settings"] = {"application_name": application_name}
        return kwargs

    @property
    def address(self) -> str:
        """`host:port/database` for messages (never with credentials)."""
        return f"{self.host}:{self.port}/{self.database}"

    def with_database(self, database: str) -> ConnectionParams:
        return replace(self, database=database)


def check_params(params: ConnectionParams) -> ConnectionParams:
    """Validate the fields a caller supplied; BadUserInput names the first bad one."""
    host = params.host.strip()
    if not host or len(host) > 255 or any(c.isspace() for c in host):
        raise BadUserInput("host must be a host name, an IP address or a socket directory (no spaces)")
    if not 1 <= params.port <= 65535:
        raise BadUserInput("port must be between 1 and 65535")
    for name, value in (("database", params.database), ("user", params.user)):
        if not value or len(value) > 63 or "\x00" in value:
            raise BadUserInput(f"{name} must be 1-63 characters")
    if len(params.password) > 1024 or "\x00" in params.password:
        raise BadUserInput("password must be at most 1024 characters")
    if params.sslmode not in SSL_MODES:
        raise BadUserInput(f"sslmode must be one of {', '.join(SSL_MODES)}")
    if len(params.schemas) > MAX_SCHEMAS:
        raise BadUserInput(f"at most {MAX_SCHEMAS} schemas")
    for schema in params.schemas:
        if not SCHEMA_NAME.fullmatch(schema):
            raise BadUserInput("schemas must be plain identifiers (letters, digits, _ and $)")
    return replace(params, host=host, schemas=tuple(dict.fromkeys(params.schemas)))


def params_from_url(url: str, *, database: str | None = None) -> ConnectionParams:
    """Params for a `postgresql://` URL (also the embedded server's `?host=/socket` form)."""
    parsed = make_url(url)
    host = parsed.host or parsed.query.get("host") or "127.0.0.1"
    if isinstance(host, tuple):
        host = host[0]
    port = parsed.port or parsed.query.get("port") or 5432
    if isinstance(port, tuple):
        port = port[0]
    return ConnectionParams(
        host=unquote(str(host)),
        port=int(port),
        database=database or parsed.database or "postgres",
        user=parsed.username or "postgres",
        password=parsed.password or "",
        sslmode="disable" if str(host).startswith("/") else "prefer",
    )
