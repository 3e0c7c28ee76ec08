"""One frozen settings object, read once from the environment (`UDS_*`).

A wrong value fails at start-up with `ConfigError`, naming the variable.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal

from uds.errors import ConfigError

Mode = Literal["dev", "prod"]

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

    @property
    def dev(self) -> bool:
        return self.mode == "dev"

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
        )


def _url(env: Mapping[str, str], name: str, schemes: tuple[str, ...]) -> str | None:
    value = env.get(name, "").strip()
    if not value:
        return None
    if not value.startswith(schemes):
        raise ConfigError(f"{name} must start with one of {', '.join(schemes)}")
    return value


def _int(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name} must be an integer, not {raw!r}") from None
    if value <= 0:
        raise ConfigError(f"{name} must be positive")
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
