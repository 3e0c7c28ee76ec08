"""UDS's own ES256 signing key: created once, kept on disk, used to issue tokens."""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import ECKey

from uds.errors import ConfigError

ALGORITHM = "ES256"
KINDS = frozenset({"user", "service"})


class SigningKey:
    """The private key UDS signs its own tokens with, and its public JWKS."""

    __slots__ = ("_key", "_kid", "_public")

    def __init__(self, key: ECKey) -> None:
        if not key.is_private or key.curve_name != "P-256":
            raise ConfigError("the UDS signing key must be a private P-256 EC key")
        self._key = key
        # RFC 7638 thumbprint: stable for the key, so a restart keeps the same kid.
        self._kid = key.thumbprint()
        self._public = ECKey.import_key(key.as_dict(private=False, kid=self._kid, use="sig", alg=ALGORITHM))

    @classmethod
    def generate(cls) -> SigningKey:
        """A fresh in-memory key (tests, or a data dir that is not wanted)."""
        return cls(ECKey.generate_key("P-256"))

    @classmethod
    def load_or_create(cls, data_dir: Path) -> SigningKey:
        """Load `data_dir/keys/signing.jwk`, creating it (mode 0600) on first start."""
        keys_dir = Path(data_dir) / "keys"
        path = keys_dir / "signing.jwk"
        try:
            keys_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
            # mkdir's mode is filtered by umask and ignored for an existing dir.
            os.chmod(keys_dir, 0o700)
        except OSError as exc:
            raise ConfigError(f"cannot create key directory {keys_dir}: {exc}") from None
        if not path.exists():
            _create_exclusive(path, ECKey.generate_key("P-256"))
        return cls._load(path)

    @classmethod
    def _load(cls, path: Path) -> SigningKey:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            key = ECKey.import_key(data)
        except (OSError, ValueError, TypeError, JoseError) as exc:
            raise ConfigError(f"cannot load signing key {path}: {exc}") from None
        return cls(key)

    @property
    def kid(self) -> str:
        """The key id put in every token's header (RFC 7638 thumbprint)."""
        return self._kid

    @property
    def public_key(self) -> ECKey:
        """The public half, for verifying our own tokens."""
        return self._public

    def jwks(self) -> dict[str, Any]:
        """The public JWKS to publish, e.g. at /.well-known/jwks.json."""
        return {"keys": [self._public.as_dict(private=False)]}

    def issue(
        self,
        subject: str,
        *,
        issuer: str,
        audience: str,
        ttl: int = 3600,
        roles: Iterable[str] = (),
        kind: str = "user",
        tenant: str | None = None,
        now: float | None = None,
    ) -> str:
        """A signed ES256 JWT for `subject`, valid for `ttl` seconds from `now`."""
        if not subject:
            raise ValueError("subject must not be empty")
        if ttl <= 0:
            raise ValueError("ttl must be positive")
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {sorted(KINDS)}")
        if kind == "service" and not tenant:
            raise ValueError("a service token must be bound to a tenant")
        issued = int(time.time() if now is None else now)
        claims: dict[str, Any] = {
            "iss": issuer,
            "sub": subject,
            "aud": audience,
            "iat": issued,
            "nbf": issued,
            "exp": issued + ttl,
            "jti": secrets.token_urlsafe(16),
        }
        role_list = sorted(set(roles))
        if role_list:
            claims["uds_roles"] = role_list
        if kind != "user":
            claims["uds_kind"] = kind
        if tenant is not None:
            claims["tenant"] = tenant
        return self.sign(claims)

    def sign(self, claims: dict[str, Any]) -> str:
        """`claims` as an ES256 JWT with this key's kid (callers set iss, aud and exp)."""
        header = {"alg": ALGORITHM, "kid": self._kid, "typ": "JWT"}
        return jwt.encode(header, claims, self._key, algorithms=[ALGORITHM])


def _create_exclusive(path: Path, key: ECKey) -> None:
    """Write `key` to `path` unless another process got there first."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".signing.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            os.fchmod(fh.fileno(), 0o600)
            json.dump(key.as_dict(private=True), fh)
            fh.flush()
            os.fsync(fh.fileno())
        # link() fails if the target exists, unlike rename(): when two processes start at
        # once, the loser keeps the winner's key instead of overwriting it after use.
        try:
            os.link(tmp, path)
        except FileExistsError:
            pass
        except OSError:
            # Some filesystems have no hard links; fall back to a plain rename, which is
            # still atomic but can lose a start-up race.
            if not path.exists():
                os.replace(tmp, path)
    except OSError as exc:
        raise ConfigError(f"cannot write signing key {path}: {exc}") from None
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
