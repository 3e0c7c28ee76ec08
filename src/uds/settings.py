"""One frozen settings object, read once from the environment (`UDS_*`).

A wrong value fails at start-up with `ConfigError`, naming the variable.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal

from uds.errors import ConfigError

Mode = Literal["dev", "prod"]
PersistedMode = Literal["apq", "safelist", "off"]
LogFormat = Literal["json", "text"]

# Observability defaults (docs/observability.md), written once here.
METRICS_ALLOW = ("127.0.0.1/32", "::1/128")
METRICS_MAX_OPERATIONS = 100

DEFAULT_ALGORITHMS = ("ES256", "RS256")
# Algorithms UDS will ever accept from anybody; `none` and the HS* family are never here,
# so a token "signed" with a public key as an HMAC secret cannot pass.
ALLOWED_ALGORITHMS = frozenset({"ES256", "ES384", "RS256", "RS384", "RS512", "PS256", "EdDSA"})


@dataclass(frozen=True, slots=True)
class IssuerConfig:
    """A trusted external token issuer, verified against its JWKS."""

    issuer: str
    jwks_url: str
    audience: str = "uds"
    algorithms: tuple[str, ...] = DEFAULT_ALGORITHMS
    # Claim holding platform roles; None means roles from this issuer are not trusted.
    roles_claim: str | None = None


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything UDS reads from its environment."""

    database_url: str | None = None
    redis_url: str | None = None
    policy_url: str | None = None
    mode: Mode = "dev"
    data_dir: Path = field(default_factory=lambda: Path(".uds"))
    jwt_issuers: tuple[IssuerConfig, ...] = ()
    secret_keys: tuple[str, ...] = ()
    # Our own issuer: `iss` and `aud` of the tokens `uds token create` signs.
    own_issuer: str = "uds"
    audience: str = "uds"
    token_ttl_seconds: int = 3600
    max_token_bytes: int = 8192
    max_body_bytes: int = 1_000_000
    max_page_size: int = 100
    max_query_depth: int = 12
    max_query_tokens: int = 2000
    max_aliases: int = 30
    db_pool_size: int = 10
    tenant_cache_ttl_seconds: float = 30.0
    # Policies (docs/policies.md): embedded Rego from policy_dir, or OPA at policy_url.
    policy_dir: Path | None = None  # None: the packaged uds/policies/rego
    policy_cache_size: int = 10_000  # decisions cached by the embedded engine
    policy_timeout_seconds: float = 0.5  # per attempt against OPA
    policy_retries: int = 1  # further attempts after a connection error or 5xx
    # Jobs (docs/jobs.md). Every Redis key, channel and queue the job system creates starts
    # with redis_prefix, so several deployments (or test sessions) can share one Redis.
    redis_prefix: str = "uds:"
    job_lease_seconds: float = 30.0  # a worker silent this long loses its job to another one
    job_max_attempts: int = 3  # runs of one job (worker lost, not handler errors) before FAILED
    worker_concurrency: int = 10  # jobs one worker process runs at once
    # Data sources and discovery (docs/discovery.md).
    allowed_source_hosts: tuple[str, ...] = ()  # prod: private hosts/networks sources may use
    source_connect_timeout: float = 10.0  # seconds to connect to a data source
    discovery_connections: int = 1  # sessions one discovery run profiles tables on at once
    source_statement_timeout_ms: int = 30_000  # per statement UDS runs on a data source
    source_lock_timeout_ms: int = 2_000  # longest wait for a lock on a data source
    discovery_time_budget_seconds: float = 900.0  # one discovery run, at most
    # Dashboards (docs/dashboards.md): widget data fetched from a data source.
    widget_row_limit: int = 5_000  # rows one widgetData returns at most (truncated beyond)
    widget_statement_timeout_ms: int = 10_000  # one widget query on the source, at most
    widget_cache_ttl_seconds: int = 600  # how long fetched widget data is served from Redis
    # Limits and hardening (docs/limits.md). Rate limits per tenant and member come from the
    # plan; these cover requests without a tenant (per principal, or per client address).
    rate_limits: bool = True
    platform_requests_per_second: int = 50
    platform_request_burst: int = 100
    rate_limit_timeout_seconds: float = 0.25  # longest wait for Redis before serving anyway
    max_query_cost: int = 50_000
    cost_list_size: int = 20  # assumed length of a list field that has no `first` argument
    allow_introspection: bool | None = None  # None: on in dev, off in prod
    cors_origins: tuple[str, ...] = ()
    # Domain events (docs/events.md): outbox relayed to the Redis stream `<redis_prefix>events`.
    events_relay: bool = True  # off: this process leaves the outbox to other processes
    events_maxlen: int = 100_000  # approximate length the stream is trimmed to
    events_relay_interval_seconds: float = 1.0  # how often a relay looks at the outbox
    event_source: str = "/uds"  # CloudEvents `source` prefix of this deployment
    # Observability (docs/observability.md).
    log_format: LogFormat | None = None  # None: json in prod, text in dev
    log_level: str = "INFO"
    metrics_enabled: bool = True  # GET /metrics and the request/job metrics
    metrics_allow: tuple[str, ...] = METRICS_ALLOW  # client networks that may read /metrics
    metrics_token: str | None = None  # if set, /metrics also needs `Authorization: Bearer <it>`
    metrics_max_operations: int = METRICS_MAX_OPERATIONS  # operation names labelled, then "other"
    metrics_max_tenants: int = 0  # tenants labelled by name (0: no tenant label values)
    worker_metrics_port: int | None = None  # `uds worker` serves its own /metrics here
    worker_metrics_host: str = "127.0.0.1"
    otlp_endpoint: str | None = None  # OTEL_EXPORTER_OTLP_(TRACES_)ENDPOINT: tracing on

    @property
    def json_logs(self) -> bool:
        return self.log_format == "json" if self.log_format else not self.dev

    # Read fast paths (docs/performance.md): queries on read-only autocommit connections,
    # list fields as JSON built by PostgreSQL, cached operation plans. Off: every request
    # takes the plain strawberry path in a transaction (the reference the tests compare to).
    fast_paths: bool = True
    # Persisted operations: "apq" (Apollo's automatic persisted queries: a client registers a
    # document by sending it with its hash once), "safelist" (only the documents of
    # persisted_queries_file run; anything else is refused) or "off".
    persisted_queries: PersistedMode = "apq"
    persisted_queries_file: Path | None = None
    apq_ttl_seconds: int = 7 * 24 * 3600  # how long Redis keeps a registered document
    # Dashboard pages and pictures (docs/dashboards.md, "The page and pictures").
    public_url: str | None = None  # UDS_PUBLIC_URL: base of the links UDS hands out
    dashboard_link_ttl_seconds: int = 3600  # how long a signed dashboard link opens the page
    render_workers: int = 1  # processes that render Vega-Lite pictures (vl-convert)
    picture_ttl_seconds: int = 24 * 3600  # how long Redis keeps a rendered picture
    # MCP bridge (docs/mcp.md).
    mcp_wait_seconds: float = 50.0  # a long-job tool call without a progress token answers by then
    mcp_progress_wait_seconds: float = 240.0  # ... and one that streams progress notifications
    mcp_max_argument_bytes: int = 65_536  # a tool call's arguments, as JSON
    mcp_allowed_hosts: tuple[str, ...] = ("127.0.0.1:*", "localhost:*", "[::1]:*")  # Host header

    @property
    def dev(self) -> bool:
        return self.mode == "dev"

    @property
    def introspection(self) -> bool:
        return self.dev if self.allow_introspection is None else self.allow_introspection

    def with_servers(self, *, database_url: str, redis_url: str) -> Settings:
        """A copy pointing at the given servers (used once embedded servers are up)."""
        return replace(self, database_url=database_url, redis_url=redis_url)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        mode = env.get("UDS_MODE", "dev")
        if mode not in ("dev", "prod"):
            raise ConfigError(f"UDS_MODE must be 'dev' or 'prod', not {mode!r}")
        return cls(
            database_url=_url(
                env, "UDS_DATABASE_URL", ("postgresql://", "postgresql+asyncpg://", "postgres://")
            ),
            redis_url=_url(env, "UDS_REDIS_URL", ("redis://", "rediss://", "unix://")),
            policy_url=_url(env, "UDS_POLICY_URL", ("http://", "https://")),
            mode=mode,  # type: ignore[arg-type]
            data_dir=Path(env.get("UDS_DATA_DIR") or ".uds").resolve(),
            jwt_issuers=_issuers(env.get("UDS_JWT_ISSUERS", "")),
            secret_keys=tuple(k for k in env.get("UDS_SECRET_KEYS", "").split(",") if k.strip()),
            db_pool_size=_int(env, "UDS_DB_POOL_SIZE", 10),
            max_body_bytes=_int(env, "UDS_MAX_BODY_BYTES", 1_000_000),
            policy_dir=Path(env["UDS_POLICY_DIR"]).resolve() if env.get("UDS_POLICY_DIR") else None,
            policy_cache_size=_int(env, "UDS_POLICY_CACHE_SIZE", 10_000),
            policy_timeout_seconds=_float(env, "UDS_POLICY_TIMEOUT", 0.5),
            policy_retries=_int(env, "UDS_POLICY_RETRIES", 1, minimum=0),
            redis_prefix=_redis_prefix(env),
            job_lease_seconds=_float(env, "UDS_JOB_LEASE_SECONDS", 30.0),
            job_max_attempts=_int(env, "UDS_JOB_MAX_ATTEMPTS", 3),
            worker_concurrency=_int(env, "UDS_WORKER_CONCURRENCY", 10),
            allowed_source_hosts=_allowed_hosts(env),
            source_connect_timeout=_float(env, "UDS_SOURCE_CONNECT_TIMEOUT", 10.0),
            discovery_connections=_int(env, "UDS_DISCOVERY_CONNECTIONS", 1),
            source_statement_timeout_ms=_int(env, "UDS_SOURCE_STATEMENT_TIMEOUT_MS", 30_000),
            source_lock_timeout_ms=_int(env, "UDS_SOURCE_LOCK_TIMEOUT_MS", 2_000),
            discovery_time_budget_seconds=_float(env, "UDS_DISCOVERY_TIME_BUDGET", 900.0),
            widget_row_limit=_int(env, "UDS_WIDGET_ROW_LIMIT", 5_000),
            widget_statement_timeout_ms=_int(env, "UDS_WIDGET_STATEMENT_TIMEOUT_MS", 10_000),
            widget_cache_ttl_seconds=_int(env, "UDS_WIDGET_CACHE_TTL", 600),
            rate_limits=_switch(env, "UDS_RATE_LIMITS", True),
            platform_requests_per_second=_int(env, "UDS_PLATFORM_RATE_LIMIT", 50),
            platform_request_burst=_int(env, "UDS_PLATFORM_RATE_BURST", 100),
            rate_limit_timeout_seconds=_float(env, "UDS_RATE_LIMIT_TIMEOUT", 0.25),
            max_query_cost=_int(env, "UDS_MAX_QUERY_COST", 50_000),
            cost_list_size=_int(env, "UDS_COST_LIST_SIZE", 20),
            allow_introspection=_optional_switch(env, "UDS_ALLOW_INTROSPECTION"),
            cors_origins=_origins(env),
            events_relay=_switch(env, "UDS_EVENTS_RELAY", True),
            events_maxlen=_int(env, "UDS_EVENTS_MAXLEN", 100_000, minimum=100),
            events_relay_interval_seconds=_float(env, "UDS_EVENTS_RELAY_INTERVAL", 1.0),
            event_source=_event_source(env),
            log_format=_choice(env, "UDS_LOG_FORMAT", ("json", "text")),  # type: ignore[arg-type]
            log_level=_log_level(env),
            metrics_enabled=_switch(env, "UDS_METRICS", True),
            metrics_allow=_networks(env, "UDS_METRICS_ALLOW", METRICS_ALLOW),
            metrics_token=env.get("UDS_METRICS_TOKEN", "").strip() or None,
            metrics_max_operations=_int(env, "UDS_METRICS_MAX_OPERATIONS", METRICS_MAX_OPERATIONS),
            metrics_max_tenants=_int(env, "UDS_METRICS_MAX_TENANTS", 0, minimum=0),
            worker_metrics_port=_port(env, "UDS_WORKER_METRICS_PORT"),
            worker_metrics_host=env.get("UDS_WORKER_METRICS_HOST", "").strip() or "127.0.0.1",
            otlp_endpoint=_url(env, "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", ("http://", "https://"))
            or _url(env, "OTEL_EXPORTER_OTLP_ENDPOINT", ("http://", "https://")),
            fast_paths=_switch(env, "UDS_FAST_PATHS", True),
            persisted_queries=_persisted_mode(env),
            persisted_queries_file=_existing_file(env, "UDS_PERSISTED_QUERIES_FILE"),
            apq_ttl_seconds=_int(env, "UDS_APQ_TTL_SECONDS", 7 * 24 * 3600),
            public_url=(_url(env, "UDS_PUBLIC_URL", ("http://", "https://")) or "").rstrip("/") or None,
            dashboard_link_ttl_seconds=_int(env, "UDS_DASHBOARD_LINK_TTL", 3600),
            render_workers=_int(env, "UDS_RENDER_WORKERS", 1),
            picture_ttl_seconds=_int(env, "UDS_PICTURE_TTL_SECONDS", 24 * 3600),
            mcp_wait_seconds=_float(env, "UDS_MCP_WAIT_SECONDS", 50.0),
            mcp_progress_wait_seconds=_float(env, "UDS_MCP_PROGRESS_WAIT_SECONDS", 240.0),
            mcp_max_argument_bytes=_int(env, "UDS_MCP_MAX_ARGUMENT_BYTES", 65_536),
            mcp_allowed_hosts=tuple(
                h.strip() for h in env.get("UDS_MCP_ALLOWED_HOSTS", "").split(",") if h.strip()
            )
            or ("127.0.0.1:*", "localhost:*", "[::1]:*"),
        )


def _allowed_hosts(env: Mapping[str, str]) -> tuple[str, ...]:
    """UDS_ALLOWED_SOURCE_HOSTS: comma-separated host names, IP addresses or CIDR networks."""
    from uds.datasources.guard import parse_allow_list

    entries = tuple(e.strip() for e in env.get("UDS_ALLOWED_SOURCE_HOSTS", "").split(",") if e.strip())
    parse_allow_list(entries)  # ConfigError on a malformed entry
    return entries


def _optional_switch(env: Mapping[str, str], name: str) -> bool | None:
    """Like _switch, but None when the variable is unset (the default depends on the mode)."""
    return _switch(env, name, False) if env.get(name, "").strip() else None


def _origins(env: Mapping[str, str]) -> tuple[str, ...]:
    """UDS_CORS_ORIGINS: comma-separated origins (scheme://host[:port]) allowed by CORS."""
    origins = tuple(o.strip().rstrip("/") for o in env.get("UDS_CORS_ORIGINS", "").split(",") if o.strip())
    for origin in origins:
        if origin == "*":
            raise ConfigError("UDS_CORS_ORIGINS must list origins; '*' is not allowed with credentials")
        if not re.fullmatch(r"https?://[A-Za-z0-9.-]+(:\d{1,5})?", origin):
            raise ConfigError(f"UDS_CORS_ORIGINS: {origin!r} is not an origin like https://app.example")
    return origins


def _event_source(env: Mapping[str, str]) -> str:
    value = env.get("UDS_EVENT_SOURCE", "").strip() or "/uds"
    if not re.fullmatch(r"[A-Za-z0-9:/._~-]{1,200}", value):
        raise ConfigError("UDS_EVENT_SOURCE must be a URI reference such as /uds or urn:uds:prod")
    return value.rstrip("/") or "/uds"


def _choice(env: Mapping[str, str], name: str, choices: tuple[str, ...]) -> str | None:
    value = env.get(name, "").strip().lower()
    if not value:
        return None
    if value not in choices:
        raise ConfigError(f"{name} must be one of {', '.join(choices)}, not {value!r}")
    return value


def _switch(env: Mapping[str, str], name: str, default: bool) -> bool:
    value = env.get(name, "").strip().lower()
    if not value:
        return default
    if value in ("1", "on", "true", "yes"):
        return True
    if value in ("0", "off", "false", "no"):
        return False
    raise ConfigError(f"{name} must be on or off, not {value!r}")


def _log_level(env: Mapping[str, str]) -> str:
    value = env.get("UDS_LOG_LEVEL", "").strip().upper() or "INFO"
    if value not in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"):
        raise ConfigError("UDS_LOG_LEVEL must be DEBUG, INFO, WARNING, ERROR or CRITICAL")
    return value


def _networks(env: Mapping[str, str], name: str, default: tuple[str, ...]) -> tuple[str, ...]:
    """Comma-separated IP addresses or CIDR networks (checked here, parsed where used)."""
    import ipaddress

    raw = env.get(name)
    if raw is None or not raw.strip():
        return default
    entries = tuple(e.strip() for e in raw.split(",") if e.strip())
    for entry in entries:
        try:
            ipaddress.ip_network(entry, strict=False)
        except ValueError:
            raise ConfigError(f"{name}: {entry!r} is not an IP address or CIDR network") from None
    return entries


def _port(env: Mapping[str, str], name: str) -> int | None:
    if not env.get(name, "").strip():
        return None
    port = _int(env, name, 0)
    if port > 65535:
        raise ConfigError(f"{name} must be a TCP port (1-65535)")
    return port


def _persisted_mode(env: Mapping[str, str]) -> PersistedMode:
    raw = env.get("UDS_PERSISTED_QUERIES", "").strip().lower() or "apq"
    if raw not in ("apq", "safelist", "off"):
        raise ConfigError(f"UDS_PERSISTED_QUERIES must be 'apq', 'safelist' or 'off', not {raw!r}")
    if raw == "safelist" and not env.get("UDS_PERSISTED_QUERIES_FILE", "").strip():
        raise ConfigError("UDS_PERSISTED_QUERIES=safelist needs UDS_PERSISTED_QUERIES_FILE (the safelist)")
    return raw  # type: ignore[return-value]


def _existing_file(env: Mapping[str, str], name: str) -> Path | None:
    raw = env.get(name, "").strip()
    if not raw:
        return None
    path = Path(raw).resolve()
    if not path.is_file():
        raise ConfigError(f"{name}: {path} is not a file")
    return path


def _redis_prefix(env: Mapping[str, str]) -> str:
    value = env.get("UDS_REDIS_PREFIX", "").strip() or "uds:"
    if not re.fullmatch(r"[A-Za-z0-9_.:-]{1,64}", value):
        raise ConfigError("UDS_REDIS_PREFIX must be 1-64 letters, digits or _ . : -")
    return value


def _url(env: Mapping[str, str], name: str, schemes: tuple[str, ...]) -> str | None:
    value = env.get(name, "").strip()
    if not value:
        return None
    if not value.startswith(schemes):
        raise ConfigError(f"{name} must start with one of {', '.join(schemes)}")
    return value


def _int(env: Mapping[str, str], name: str, default: int, *, minimum: int = 1) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name} must be an integer, not {raw!r}") from None
    if value < minimum:
        need = "positive" if minimum == 1 else f"at least {minimum}"
        raise ConfigError(f"{name} must be {need}")
    return value


def _float(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a number, not {raw!r}") from None
    if not 0 < value < float("inf"):
        raise ConfigError(f"{name} must be a positive number of seconds")
    return value


def _issuers(raw: str) -> tuple[IssuerConfig, ...]:
    """Parse UDS_JWT_ISSUERS.

    Either JSON (a list of objects with issuer, jwks_url and optional audience, algorithms,
    roles_claim) or the short form `issuer=jwks_url,issuer2=jwks_url2`.
    """
    raw = raw.strip()
    if not raw:
        return ()
    if raw.startswith("["):
        try:
            items = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"UDS_JWT_ISSUERS is not valid JSON: {exc}") from None
    else:
        items = []
        for part in raw.split(","):
            issuer, sep, url = part.strip().partition("=")
            if not sep:
                raise ConfigError("UDS_JWT_ISSUERS short form is issuer=jwks_url[,issuer=jwks_url]")
            items.append({"issuer": issuer, "jwks_url": url})
    result = []
    for item in items:
        if not isinstance(item, dict) or not item.get("issuer") or not item.get("jwks_url"):
            raise ConfigError("each UDS_JWT_ISSUERS entry needs 'issuer' and 'jwks_url'")
        algorithms = tuple(item.get("algorithms") or DEFAULT_ALGORITHMS)
        bad = set(algorithms) - ALLOWED_ALGORITHMS
        if bad:
            raise ConfigError(f"UDS_JWT_ISSUERS: algorithms not allowed: {sorted(bad)}")
        if not str(item["jwks_url"]).startswith(("https://", "http://")):
            raise ConfigError("UDS_JWT_ISSUERS: jwks_url must be an http(s) URL")
        result.append(
            IssuerConfig(
                issuer=str(item["issuer"]),
                jwks_url=str(item["jwks_url"]),
                audience=str(item.get("audience", "uds")),
                algorithms=algorithms,
                roles_claim=item.get("roles_claim"),
            )
        )
    return tuple(result)
