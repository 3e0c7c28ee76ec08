"""Signed dashboard links: a short-lived token in the URL, so a browser can open a page.

A link is `/dashboards/<id>?sig=<token>`. The token is an ES256 JWT signed with UDS's own
key (`uds.auth.keys`, the key that signs `uds token create` tokens), with its own audience
`uds:dashboard-link`, so it can never be used as a bearer token (that audience is `uds`) and
a bearer token can never be used as a link. Its claims name the tenant, the dashboard, the
subject it was made for and the expiry. The link opens that dashboard's page and pictures
only; the page and image routes check the subject's membership and the policy again on
every request, so removing a member closes their links at once.

A link made without a subject (`dashboard_url(settings, tenant, id)`) is a share link:
for its lifetime it lets whoever holds it view that one dashboard, as a VIEWER would
(`sub` is then `link:<dashboard id>` and `shared` is true); the policy is still asked.
"""

from __future__ import annotations

import functools
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

from joserfc import jwt
from joserfc.errors import BadSignatureError, ExpiredTokenError, JoseError

from uds.auth.keys import ALGORITHM, SigningKey
from uds.errors import Unauthenticated
from uds.settings import Settings

LINK_AUDIENCE = "uds:dashboard-link"
SHARE_PREFIX = "link:"
LINK_PARAM = "sig"
MAX_LINK_BYTES = 2048
LEEWAY_SECONDS = 30


@dataclass(frozen=True, slots=True)
class DashboardLink:
    """What a verified link grants: `subject` may open `dashboard_id` in `tenant` (a
    share link: anyone holding it may, as a viewer)."""

    tenant: str
    dashboard_id: uuid.UUID
    subject: str
    expires_at: int
    shared: bool = False


@functools.cache
def _key(data_dir: Path) -> SigningKey:
    return SigningKey.load_or_create(data_dir)


def signing_key(settings: Settings) -> SigningKey:
    """The signing key the server of `settings` uses (the same file `Services` loads)."""
    return _key(Path(settings.data_dir).resolve())


def sign_link(
    key: SigningKey,
    settings: Settings,
    *,
    tenant: str,
    dashboard_id: uuid.UUID | str,
    subject: str | None = None,
    ttl: int | None = None,
    now: float | None = None,
) -> str:
    """The token of a link to one dashboard for `subject` (None: a share link), valid
    `ttl` seconds (default Settings.dashboard_link_ttl_seconds)."""
    dashboard = str(uuid.UUID(str(dashboard_id)))
    ttl = settings.dashboard_link_ttl_seconds if ttl is None else ttl
    if ttl <= 0:
        raise ValueError("ttl must be positive")
    issued = int(time.time() if now is None else now)
    claims: dict[str, Any] = {
        "iss": settings.own_issuer,
        "aud": LINK_AUDIENCE,
        "sub": subject or SHARE_PREFIX + dashboard,
        "iat": issued,
        "nbf": issued,
        "exp": issued + ttl,
        "tenant": tenant,
        "dashboard": dashboard,
    }
    if not subject:
        claims["shared"] = True
    return key.sign(claims)


def dashboard_path(dashboard_id: uuid.UUID | str, suffix: str = "") -> str:
    return f"/dashboards/{uuid.UUID(str(dashboard_id))}{suffix}"


def dashboard_url(
    settings: Settings,
    tenant: str,
    dashboard_id: uuid.UUID | str,
    subject: str | None = None,
    *,
    suffix: str = "",
    ttl: int | None = None,
    key: SigningKey | None = None,
) -> str:
    """A signed link to the dashboard's page (or, with `suffix` such as ".png", a picture).

    Absolute when `settings.public_url` (UDS_PUBLIC_URL) is set, else a path to put after
    the server's own address.
    """
    token = sign_link(
        key or signing_key(settings),
        settings,
        tenant=tenant,
        dashboard_id=dashboard_id,
        subject=subject,
        ttl=ttl,
    )
    base = settings.public_url or ""
    return f"{base}{dashboard_path(dashboard_id, suffix)}?{LINK_PARAM}={quote(token, safe='')}"


def verify_link(
    key: SigningKey, settings: Settings, token: str, *, now: float | None = None
) -> DashboardLink:
    """The grant of a link token; raises Unauthenticated for anything forged, expired or odd."""
    if not isinstance(token, str) or not token or len(token) > MAX_LINK_BYTES:
        raise Unauthenticated("malformed dashboard link")
    try:
        decoded = jwt.decode(token, key.public_key, algorithms=[ALGORITHM])
    except BadSignatureError:
        raise Unauthenticated("dashboard link signature is not valid") from None
    except (JoseError, ValueError, TypeError):
        raise Unauthenticated("malformed dashboard link") from None
    if decoded.header.get("kid") not in (None, key.kid):
        raise Unauthenticated("dashboard link is signed with an unknown key")
    registry = jwt.JWTClaimsRegistry(
        now=int(time.time() if now is None else now),
        leeway=LEEWAY_SECONDS,
        iss={"essential": True, "value": settings.own_issuer},
        aud={"essential": True, "value": LINK_AUDIENCE},
        exp={"essential": True},
        sub={"essential": True},
        tenant={"essential": True},
        dashboard={"essential": True},
    )
    claims: dict[str, Any] = decoded.claims
    try:
        registry.validate(claims)
    except ExpiredTokenError:
        raise Unauthenticated("dashboard link has expired: ask for a new one (Dashboard.url)") from None
    except JoseError:
        raise Unauthenticated("dashboard link is not valid") from None
    try:
        dashboard_id = uuid.UUID(str(claims["dashboard"]))
        expires_at = int(claims["exp"])
    except (ValueError, TypeError, OverflowError):
        raise Unauthenticated("malformed dashboard link") from None
    tenant, subject, shared = claims["tenant"], claims["sub"], claims.get("shared", False) is True
    if not isinstance(tenant, str) or not isinstance(subject, str) or not tenant or not subject:
        raise Unauthenticated("malformed dashboard link")
    if shared != (subject == SHARE_PREFIX + str(dashboard_id)):
        raise Unauthenticated("malformed dashboard link")
    return DashboardLink(
        tenant=tenant, dashboard_id=dashboard_id, subject=subject, expires_at=expires_at, shared=shared
    )
