"""Who is calling: the identity a verified bearer token stands for."""

from __future__ import annotations

from dataclasses import dataclass

PLATFORM_ADMIN = "platform-admin"


@dataclass(frozen=True, slots=True)
class Principal:
    """The caller, as established by a verified token; safe to share and cache."""

    subject: str
    issuer: str
    kind: str = "user"  # "user" | "service"
    platform_roles: frozenset[str] = frozenset()
    expires_at: float = 0.0  # unix seconds
    # Service tokens are bound to one tenant (claim "tenant"); None for users.
    tenant: str | None = None

    @property
    def is_platform_admin(self) -> bool:
        """True if the caller holds the platform-admin role."""
        return PLATFORM_ADMIN in self.platform_roles
