"""Bearer-token authentication: UDS's own signing key and the token verifier."""

from __future__ import annotations

from uds.auth.keys import SigningKey
from uds.auth.principal import PLATFORM_ADMIN, Principal
from uds.auth.verify import TokenVerifier

__all__ = ["PLATFORM_ADMIN", "Principal", "SigningKey", "TokenVerifier"]
