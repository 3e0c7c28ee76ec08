"""Turn a bearer token into a `Principal`, or refuse it with `Unauthenticated`."""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import logging
import re
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from joserfc import jwt
from joserfc.errors import (
    BadSignatureError,
    ClaimError,
    ExpiredTokenError,
    JoseError,
    MissingClaimError,
)
from joserfc.jwk import ECKey, JWKRegistry, Key, OKPKey, RSAKey

from uds.auth.keys import ALGORITHM as OWN_ALGORITHM
from uds.auth.keys import KINDS, SigningKey
from uds.auth.principal import Principal
from uds.errors import ConfigError, Unauthenticated
from uds.observability.metrics import cache_lookup
from uds.settings import ALLOWED_ALGORITHMS, IssuerConfig

if TYPE_CHECKING:  # imported on the first JWKS fetch: an API process of own tokens never needs it
    import httpx

log = logging.getLogger(__name__)

# A flood of tokens with made-up kids must not turn into a flood of JWKS requests.
MIN_FORCED_REFRESH_SECONDS = 30.0
# After a failed fetch, callers get the error at once instead of each waiting on a timeout.
FAILED_FETCH_BACKOFF_SECONDS = 5.0
JWKS_TIMEOUT_SECONDS = 5.0
MAX_JWKS_BYTES = 512 * 1024

_B64URL = re.compile(r"[A-Za-z0-9_-]+")
# Headers that change how the signature is computed or demand extensions we don't implement.
_REFUSED_HEADERS = frozenset({"crit", "b64"})


class TokenVerifier:
    """Verifies UDS's own tokens and those of configured external issuers."""

    def __init__(
        self,
        *,
        own_key: SigningKey,
        own_issuer: str,
        audience: str,
        issuers: Sequence[IssuerConfig] = (),
        http: httpx.AsyncClient | None = None,
        max_token_bytes: int = 8192,
        leeway: int = 30,
        jwks_ttl: float = 600.0,
        cache_size: int = 10_000,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._own_key = own_key
        self._own_issuer = own_issuer
        self._audience = audience
        self._max_token_bytes = max_token_bytes
        self._leeway = leeway
        self._clock = clock
        self._cache: OrderedDict[str, Principal] = OrderedDict()
        self._cache_size = cache_size
        self._http = http
        self._owns_http = http is None
        self._remote: dict[str, _RemoteIssuer] = {}
        for cfg in issuers:
            if cfg.issuer == own_issuer:
                raise ConfigError(f"external issuer {cfg.issuer!r} clashes with UDS's own issuer")
            if cfg.issuer in self._remote:
                raise ConfigError(f"issuer {cfg.issuer!r} is configured twice")
            bad = set(cfg.algorithms) - ALLOWED_ALGORITHMS
            if bad or not cfg.algorithms:
                raise ConfigError(f"issuer {cfg.issuer!r}: algorithms not allowed: {sorted(bad)}")
            self._remote[cfg.issuer] = _RemoteIssuer(cfg, jwks_ttl)

    async def verify(self, token: str) -> Principal:
        """The principal `token` stands for; raises `Unauthenticated` if it is not valid."""
        if not isinstance(token, str):
            raise Unauthenticated("malformed token")
        if len(token) > self._max_token_bytes:
            raise Unauthenticated("token too large")
        now = self._clock()
        cached = self._cache.get(token)
        if cached is not None:
            if cached.expires_at > now:
                self._cache.move_to_end(token)
                cache_lookup("token", True)
                return cached
            del self._cache[token]
        cache_lookup("token", False)

        header, claims = _peek(token)
        alg = header.get("alg")
        if not isinstance(alg, str) or alg not in ALLOWED_ALGORITHMS:
            raise Unauthenticated("token algorithm not allowed")
        issuer = claims.get("iss")
        if not isinstance(issuer, str):
            raise Unauthenticated("unknown issuer")
        kid = header.get("kid")
        if kid is not None and not isinstance(kid, str):
            raise Unauthenticated("malformed token")

        if issuer == self._own_issuer:
            algorithms: Sequence[str] = (OWN_ALGORITHM,)
            audience = self._audience
            if alg not in algorithms:
                raise Unauthenticated("token algorithm not allowed")
            if kid is not None and kid != self._own_key.kid:
                raise Unauthenticated("unknown signing key")
            key: Key = self._own_key.public_key
        else:
            remote = self._remote.get(issuer)
            if remote is None:
                raise Unauthenticated("unknown issuer")
            algorithms = remote.config.algorithms
            audience = remote.config.audience
            if alg not in algorithms:
                raise Unauthenticated("token algorithm not allowed")
            if not kid:
                raise Unauthenticated("token has no key id")
            key = await remote.key_for(kid, self._client())

        verified = self._check(token, key, algorithms, issuer=issuer, audience=audience, now=now)
        principal = self._principal(verified, issuer)
        if principal.expires_at > now:
            self._cache[token] = principal
            if len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
        return principal

    async def aclose(self) -> None:
        """Close the HTTP client, if this verifier created it."""
        if self._owns_http and self._http is not None:
            await self._http.aclose()
            self._http = None

    def _client(self) -> httpx.AsyncClient:
        if self._http is None:
            import httpx

            self._http = httpx.AsyncClient(timeout=JWKS_TIMEOUT_SECONDS)
        return self._http

    def _check(
        self,
        token: str,
        key: Key,
        algorithms: Sequence[str],
        *,
        issuer: str,
        audience: str,
        now: float,
    ) -> dict[str, Any]:
        """The token's claims once its signature and registered claims check out."""
        try:
            # The allowlist is passed again so joserfc refuses anything else on its own too.
            decoded = jwt.decode(token, key, algorithms=list(algorithms))
        except BadSignatureError:
            raise Unauthenticated("invalid token signature") from None
        except (JoseError, ValueError, TypeError):
            raise Unauthenticated("malformed token") from None
        registry = jwt.JWTClaimsRegistry(
            now=int(now),
            leeway=self._leeway,
            iss={"essential": True, "value": issuer},
            aud={"essential": True, "value": audience},
            exp={"essential": True},
            sub={"essential": True},
        )
        try:
            registry.validate(decoded.claims)
        except ExpiredTokenError:
            raise Unauthenticated("token expired") from None
        except MissingClaimError as exc:
            raise Unauthenticated(f"token is missing claim: {exc.claim}") from None
        except ClaimError as exc:
            if exc.claim == "nbf":
                raise Unauthenticated("token not yet valid") from None
            raise Unauthenticated(f"invalid token claim: {exc.claim}") from None
        return decoded.claims

    def _principal(self, claims: dict[str, Any], issuer: str) -> Principal:
        if issuer == self._own_issuer:
            roles = _string_list(claims.get("uds_roles"), "uds_roles")
            kind = claims.get("uds_kind", "user")
            if kind not in KINDS:
                raise Unauthenticated("invalid token claim: uds_kind")
        else:
            roles_claim = self._remote[issuer].config.roles_claim
            roles = _string_list(_lookup(claims, roles_claim), roles_claim) if roles_claim else ()
            kind = "user"
        try:
            expires_at = float(claims["exp"])
        except OverflowError:
            # A JSON integer can be too large for a float; joserfc accepts it as "never expires".
            raise Unauthenticated("invalid token claim: exp") from None
        tenant = None
        if kind == "service":
            tenant = claims.get("tenant")
            if not isinstance(tenant, str) or not tenant:
                raise Unauthenticated("service token has no tenant")
        return Principal(
            subject=claims["sub"],
            issuer=issuer,
            kind=kind,
            platform_roles=frozenset(roles),
            expires_at=expires_at,
            tenant=tenant,
        )


@dataclass(slots=True)
class _RemoteIssuer:
    """One external issuer's JWKS, cached and refreshed without stampedes."""

    config: IssuerConfig
    ttl: float
    keys: dict[str, Key] | None = None
    fetched_at: float = float("-inf")
    attempted_at: float = float("-inf")
    last_failed: bool = False
    forced_at: float = float("-inf")
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    async def key_for(self, kid: str, http: httpx.AsyncClient) -> Key:
        """The issuer's key `kid`, fetching or refreshing the JWKS if needed."""
        if self.keys is not None and kid in self.keys and self._fresh():
            return self.keys[kid]
        async with self.lock:
            # Re-check under the lock: a concurrent caller may have just fetched.
            now = time.monotonic()
            if not self._fresh():
                backoff = FAILED_FETCH_BACKOFF_SECONDS if self.last_failed else 0.0
                if now - self.attempted_at >= backoff:
                    await self._fetch(http)
            elif self.keys is not None and kid not in self.keys:
                if now - self.forced_at >= MIN_FORCED_REFRESH_SECONDS:
                    self.forced_at = now
                    await self._fetch(http)
        if self.keys is None:
            raise Unauthenticated("cannot fetch signing keys for issuer")
        key = self.keys.get(kid)
        if key is None:
            raise Unauthenticated("unknown signing key")
        return key

    def _fresh(self) -> bool:
        return time.monotonic() - self.fetched_at < self.ttl

    async def _fetch(self, http: httpx.AsyncClient) -> None:
        # A failed fetch keeps the previous keys: an IdP outage should not log everyone out.
        import httpx

        self.attempted_at = time.monotonic()
        url = self.config.jwks_url
        try:
            async with http.stream("GET", url, timeout=JWKS_TIMEOUT_SECONDS) as response:
                response.raise_for_status()
                body = bytearray()
                async for chunk in response.aiter_bytes():
                    body += chunk
                    if len(body) > MAX_JWKS_BYTES:
                        raise ValueError("JWKS response too large")
            keys = _parse_jwks(bytes(body))
        except (httpx.HTTPError, ValueError) as exc:
            self.last_failed = True
            log.warning("cannot fetch JWKS for issuer %s from %s: %s", self.config.issuer, url, exc)
            return
        self.keys = keys
        self.fetched_at = self.attempted_at
        self.last_failed = False


def _parse_jwks(body: bytes) -> dict[str, Key]:
    """The usable public signing keys of a JWKS document, by kid."""
    try:
        document = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"JWKS is not JSON: {exc}") from None
    entries = document.get("keys") if isinstance(document, dict) else None
    if not isinstance(entries, list):
        raise ValueError("JWKS has no 'keys' list")
    keys: dict[str, Key] = {}
    for entry in entries:
        if not isinstance(entry, dict) or not isinstance(entry.get("kid"), str):
            continue
        if entry.get("use", "sig") != "sig":
            continue
        try:
            key = JWKRegistry.import_key(entry)
        except (JoseError, ValueError, TypeError):
            continue  # RFC 7517 §5: skip keys we don't understand rather than fail the set
        # Symmetric keys never verify external tokens: that is the HMAC-with-public-key hole.
        if isinstance(key, (RSAKey, ECKey, OKPKey)):
            keys[entry["kid"]] = key
    return keys


def _peek(token: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """Header and claims of `token`, decoded but NOT verified, to pick the key."""
    parts = token.split(".")
    if len(parts) != 3 or not all(_B64URL.fullmatch(p) for p in parts[:2]):
        raise Unauthenticated("malformed token")
    if parts[2] and not _B64URL.fullmatch(parts[2]):
        raise Unauthenticated("malformed token")
    header = _json_part(parts[0])
    claims = _json_part(parts[1])
    if _REFUSED_HEADERS & header.keys():
        raise Unauthenticated("unsupported token header")
    return header, claims


def _json_part(segment: str) -> dict[str, Any]:
    try:
        raw = base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
        value = json.loads(raw)
    except (binascii.Error, ValueError, RecursionError):
        raise Unauthenticated("malformed token") from None
    if not isinstance(value, dict):
        raise Unauthenticated("malformed token")
    return value


def _lookup(claims: dict[str, Any], name: str) -> Any:
    """Claim `name`, or a dotted path into nested objects (e.g. `realm_access.roles`)."""
    if name in claims:
        return claims[name]
    value: Any = claims
    for part in name.split("."):
        if not isinstance(value, dict):
            return None
        value = value.get(part)
    return value


def _string_list(value: Any, name: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        return tuple(value.split())
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return tuple(value)
    raise Unauthenticated(f"invalid token claim: {name}")
