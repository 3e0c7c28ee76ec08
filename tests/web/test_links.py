"""Signed dashboard links: what they grant, and every way a bad one is refused."""

from __future__ import annotations

import time
import uuid
from dataclasses import replace
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

from uds.auth.keys import SigningKey
from uds.dashboards.links import LINK_AUDIENCE, SHARE_PREFIX, dashboard_url, sign_link, verify_link
from uds.errors import Unauthenticated
from uds.settings import Settings

KEY = SigningKey.generate()
SETTINGS = Settings(dashboard_link_ttl_seconds=600)
DASH = uuid.UUID("2b0f3c1e-8d4a-4f6b-9c7e-1a2b3c4d5e6f")


def token_of(url: str) -> str:
    return parse_qs(urlsplit(url).query)["sig"][0]


def test_a_link_names_tenant_dashboard_subject_and_expiry() -> None:
    now = time.time()
    url = dashboard_url(SETTINGS, "acme", DASH, "ann@acme", key=KEY)
    assert url.startswith(f"/dashboards/{DASH}?sig=")
    link = verify_link(KEY, SETTINGS, token_of(url))
    assert (link.tenant, link.dashboard_id, link.subject, link.shared) == ("acme", DASH, "ann@acme", False)
    assert now + 590 <= link.expires_at <= now + 610
    # A picture of the dashboard, and an absolute URL when UDS_PUBLIC_URL is set.
    pic = dashboard_url(
        replace(SETTINGS, public_url="https://uds.example"), "acme", DASH, "ann@acme", suffix=".png", key=KEY
    )
    assert pic.startswith(f"https://uds.example/dashboards/{DASH}.png?sig=")


def test_a_link_without_subject_is_a_share_link() -> None:
    link = verify_link(KEY, SETTINGS, sign_link(KEY, SETTINGS, tenant="acme", dashboard_id=DASH))
    assert link.shared and link.subject == f"{SHARE_PREFIX}{DASH}"


def test_the_server_key_is_the_data_dir_key(tmp_path: Path) -> None:
    settings = replace(SETTINGS, data_dir=tmp_path)
    url = dashboard_url(settings, "acme", DASH, "ann@acme")  # loads or creates data_dir/keys
    server_key = SigningKey.load_or_create(tmp_path)
    assert verify_link(server_key, settings, token_of(url)).subject == "ann@acme"


@pytest.mark.parametrize(
    "make",
    [
        pytest.param(lambda: "", id="empty"),
        pytest.param(lambda: "x" * 5000, id="too-long"),
        pytest.param(lambda: "a.b.c", id="garbage"),
        pytest.param(
            lambda: sign_link(
                KEY, SETTINGS, tenant="acme", dashboard_id=DASH, subject="a", ttl=60, now=time.time() - 600
            ),
            id="expired",
        ),
        pytest.param(
            lambda: sign_link(SigningKey.generate(), SETTINGS, tenant="acme", dashboard_id=DASH, subject="a"),
            id="forged",
        ),
        pytest.param(
            lambda: KEY.issue("a", issuer=SETTINGS.own_issuer, audience=SETTINGS.audience, tenant="acme"),
            id="bearer-token",
        ),
        pytest.param(
            lambda: KEY.sign(
                {
                    "iss": "other",
                    "aud": LINK_AUDIENCE,
                    "sub": "a",
                    "exp": int(time.time()) + 60,
                    "tenant": "acme",
                    "dashboard": str(DASH),
                }
            ),
            id="other-issuer",
        ),
        pytest.param(
            lambda: KEY.sign(
                {
                    "iss": "uds",
                    "aud": LINK_AUDIENCE,
                    "sub": "a",
                    "exp": int(time.time()) + 60,
                    "dashboard": str(DASH),
                }
            ),
            id="no-tenant",
        ),
        pytest.param(
            lambda: KEY.sign(
                {
                    "iss": "uds",
                    "aud": LINK_AUDIENCE,
                    "sub": "a",
                    "exp": int(time.time()) + 60,
                    "tenant": "acme",
                    "dashboard": "nope",
                }
            ),
            id="bad-dashboard",
        ),
        pytest.param(
            lambda: KEY.sign(
                {
                    "iss": "uds",
                    "aud": LINK_AUDIENCE,
                    "sub": f"{SHARE_PREFIX}{DASH}",
                    "exp": int(time.time()) + 60,
                    "tenant": "acme",
                    "dashboard": str(DASH),
                }
            ),
            id="share-subject-without-share-flag",
        ),
        pytest.param(
            lambda: sign_link(KEY, SETTINGS, tenant="acme", dashboard_id=DASH, subject="a")[:-3] + "abc",
            id="tampered",
        ),
    ],
)
def test_bad_links_are_refused(make: object) -> None:
    with pytest.raises(Unauthenticated):
        verify_link(KEY, SETTINGS, make())  # type: ignore[operator]


def test_expired_link_says_so() -> None:
    token = sign_link(
        KEY, SETTINGS, tenant="acme", dashboard_id=DASH, subject="a", ttl=60, now=time.time() - 600
    )
    with pytest.raises(Unauthenticated, match="expired"):
        verify_link(KEY, SETTINGS, token)
