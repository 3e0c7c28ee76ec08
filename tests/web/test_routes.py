"""The dashboard page and picture routes on a real server: auth by bearer or signed link,
the policy, tenant isolation, security headers, pictures and their cache."""

from __future__ import annotations

import io
import re
import time
import uuid
import xml.etree.ElementTree as ET
from dataclasses import replace
from html import unescape as html_unescape
from typing import Any

import httpx
from PIL import Image

from conftest import make_tenant, start_server
from dashboards.app_kit import World
from uds.auth.keys import SigningKey
from uds.dashboards.links import dashboard_url, sign_link
from uds.dashboards.render import CELL_WIDTH, Box, count_marks, picture_key
from uds.web.page import style_hash

SVG_BLOCK = re.compile(r"<svg\b.*?</svg>", re.S)


async def get(
    world: World, path: str, *, sub: str | None = "viewer@d", tenant: str | None = None
) -> httpx.Response:
    headers = {}
    if sub is not None:
        headers["authorization"] = f"Bearer {world.server.token(sub)}"
        headers["x-tenant-id"] = tenant or world.slug
    return await world.server.http.get(world.server.url + path, headers=headers)


def assert_page_headers(r: httpx.Response) -> None:
    csp = r.headers["content-security-policy"]
    for directive in (
        "default-src 'none'",
        "script-src 'none'",
        "frame-ancestors 'none'",
        "base-uri 'none'",
        "form-action 'none'",
    ):
        assert directive in csp, csp
    assert "http" not in csp and "*" not in csp, csp  # no CDN, no wildcard
    assert r.headers["x-content-type-options"] == "nosniff"
    assert r.headers["referrer-policy"] == "no-referrer"
    assert r.headers["x-frame-options"] == "DENY"
    assert r.headers["cache-control"] == "no-store"


async def test_page_shows_every_widget_with_its_chart(world: World, shop_dashboard: dict[str, Any]) -> None:
    r = await get(world, f"/dashboards/{shop_dashboard['id']}")
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/html")
    assert_page_headers(r)
    html = r.text
    assert "<script" not in html.lower()
    # The one inline style block is allowed by its hash, and nothing else is.
    styles = re.findall(r"<style>(.*?)</style>", html, re.S)
    assert len(styles) == 1
    assert f"'{style_hash(styles[0])}'" in r.headers["content-security-policy"]
    assert ' style="' not in html
    assert shop_dashboard["title"] in html and shop_dashboard["goal"] in html
    sections = re.findall(
        r'<section class="widget" id="w\d+" data-widget-id="([^"]+)">(.*?)</section>', html, re.S
    )
    assert [s[0] for s in sections] == [w["id"] for w in shop_dashboard["widgets"]]
    with_insights = 0
    for (_, body), widget in zip(sections, shop_dashboard["widgets"], strict=True):
        svg = SVG_BLOCK.search(body)
        assert svg, (widget["title"], body[:300])
        assert count_marks(svg.group(0)) > 0, widget["title"]
        assert "Why" in body
        insights = (await world.widget_data(shop_dashboard["id"], widget["id"]))["insights"]
        shown = [html_unescape(t) for t in re.findall(r"<li>(.*?)</li>", body)]
        assert shown == insights, (widget["title"], shown, insights)
        with_insights += bool(insights)
        assert f"/dashboards/{shop_dashboard['id']}/widgets/{widget['id']}.png" in body
    assert with_insights >= 2  # shown on the first view, computed when the data was first fetched


async def test_signed_links_open_the_page_without_headers(
    world: World, shop_dashboard: dict[str, Any]
) -> None:
    dashboard_id = shop_dashboard["id"]
    http = world.server.http
    # Dashboard.url, as GraphQL hands it out.
    assert "sig=" in shop_dashboard["url"]
    r = await http.get(world.server.url + shop_dashboard["url"])
    assert r.status_code == 200, r.text
    assert_page_headers(r)
    # A link made for a member; its picture links carry the same signature.
    link = dashboard_url(world.server.settings, world.slug, dashboard_id, "viewer@d")
    r = await http.get(world.server.url + link)
    assert r.status_code == 200, r.text
    sig = link.split("sig=", 1)[1]
    assert f"/dashboards/{dashboard_id}.png?sig={sig}" in r.text
    first = shop_dashboard["widgets"][0]["id"]
    pic = await http.get(f"{world.server.url}/dashboards/{dashboard_id}/widgets/{first}.png?sig={sig}")
    assert pic.status_code == 200 and pic.content[:8] == b"\x89PNG\r\n\x1a\n"


async def test_widget_pictures_and_their_cache(world: World, shop_dashboard: dict[str, Any]) -> None:
    dashboard_id = shop_dashboard["id"]
    widget = [w for w in shop_dashboard["widgets"] if w["kind"] != "table"][-1]
    box = Box.of(widget["position"])
    # Other tests may have drawn this PNG already: drop it from the cache first.
    data = await world.widget_data(dashboard_id, widget["id"])
    key = picture_key(
        tenant=world.slug,
        widget_id=widget["id"],
        version=widget["version"],
        data_key=data["dataKey"],
        fmt="png",
        box=box,
    )
    services = world.server.services
    await services.redis.delete(f"{services.settings.redis_prefix}picture:{key}")
    path = f"/dashboards/{dashboard_id}/widgets/{widget['id']}"
    first = await get(world, path + ".png")
    assert first.status_code == 200, first.text
    assert first.headers["content-type"] == "image/png"
    assert first.headers["x-content-type-options"] == "nosniff"
    assert first.content[:8] == b"\x89PNG\r\n\x1a\n"
    with Image.open(io.BytesIO(first.content)) as img:
        img.load()
        assert img.size == (box.width, box.height), (img.size, box)
        low, high = img.convert("L").getextrema()
        assert high - low > 100  # drawn, not blank
    second = await get(world, path + ".png")
    assert (first.headers["x-uds-picture-cache"], second.headers["x-uds-picture-cache"]) == ("miss", "hit")
    assert second.content == first.content

    svg = await get(world, path + ".svg")
    assert svg.status_code == 200
    assert svg.headers["content-type"].startswith("image/svg+xml")
    assert "default-src 'none'" in svg.headers["content-security-policy"]
    root = ET.fromstring(svg.text)
    assert root.tag == "{http://www.w3.org/2000/svg}svg"
    assert count_marks(svg.text) > 0
    assert svg.headers["x-uds-picture-cache"] in ("hit", "miss")


async def test_dashboard_png(world: World, shop_dashboard: dict[str, Any]) -> None:
    r = await get(world, f"/dashboards/{shop_dashboard['id']}.png")
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "image/png"
    with Image.open(io.BytesIO(r.content)) as img:
        img.load()
        rows = max(w["position"]["y"] + w["position"]["h"] for w in shop_dashboard["widgets"])
        assert img.width == 12 * CELL_WIDTH
        assert img.height > rows * 60
    again = await get(world, f"/dashboards/{shop_dashboard['id']}.png")
    assert again.headers["x-uds-picture-cache"] == "hit" and again.content == r.content


def _code(r: httpx.Response) -> str:
    if r.headers["content-type"].startswith("application/json"):
        return str(r.json()["errors"][0]["extensions"]["code"])
    found = re.search(r'<p class="code">([A-Z_]+)</p>', r.text)
    assert found, r.text
    return found.group(1)


async def test_refusals(world: World, shop_dashboard: dict[str, Any]) -> None:
    server = world.server
    http = server.http
    dashboard_id = shop_dashboard["id"]
    widget_id = shop_dashboard["widgets"][0]["id"]
    page = f"/dashboards/{dashboard_id}"
    settings = server.settings

    async def anon(path: str) -> httpx.Response:
        return await http.get(server.url + path)

    # No credentials at all: 401, for the page (HTML, security headers) and the pictures (JSON).
    r = await anon(page)
    assert (r.status_code, _code(r)) == (401, "UNAUTHENTICATED")
    assert_page_headers(r)
    r = await anon(f"{page}/widgets/{widget_id}.png")
    assert (r.status_code, _code(r)) == (401, "UNAUTHENTICATED")
    # Bearer without X-Tenant-ID.
    r = await http.get(server.url + page, headers={"authorization": f"Bearer {server.token('viewer@d')}"})
    assert (r.status_code, _code(r)) == (400, "TENANT_REQUIRED")

    key = server.key
    expired = sign_link(
        key,
        settings,
        tenant=world.slug,
        dashboard_id=dashboard_id,
        subject="viewer@d",
        ttl=60,
        now=time.time() - 3600,
    )
    forged = sign_link(SigningKey.generate(), settings, tenant=world.slug, dashboard_id=dashboard_id)
    other = sign_link(key, settings, tenant=world.slug, dashboard_id=uuid.uuid4(), subject="viewer@d")
    stranger = sign_link(key, settings, tenant=world.slug, dashboard_id=dashboard_id, subject="nobody@x")
    bearer = server.token("viewer@d")  # a bearer token is not a link (other audience)
    for token, status, code in [
        ("not-a-token", 401, "UNAUTHENTICATED"),
        (expired, 401, "UNAUTHENTICATED"),
        (forged, 401, "UNAUTHENTICATED"),
        (bearer, 401, "UNAUTHENTICATED"),
        (expired[:-4] + "AAAA", 401, "UNAUTHENTICATED"),
        (other, 403, "FORBIDDEN"),
        (stranger, 403, "FORBIDDEN"),
    ]:
        r = await anon(f"{page}?sig={token}")
        assert (r.status_code, _code(r)) == (status, code), (token[:20], r.text[:300])
        r = await anon(f"{page}.png?sig={token}")
        assert (r.status_code, _code(r)) == (status, code)
    r = await anon(f"{page}?sig={expired}")
    assert "expired" in r.text

    # Another tenant: its member asks for this dashboard in their tenant -> not found; in
    # ours -> refused at the door.
    slug_b = await make_tenant(server, members={"b@d": "VIEWER"})
    r = await get(world, page, sub="b@d", tenant=slug_b)
    assert (r.status_code, _code(r)) == (404, "NOT_FOUND")
    r = await get(world, f"{page}/widgets/{widget_id}.svg", sub="b@d", tenant=slug_b)
    assert (r.status_code, _code(r)) == (404, "NOT_FOUND")
    r = await get(world, page, sub="b@d", tenant=world.slug)
    assert (r.status_code, _code(r)) == (403, "FORBIDDEN")
    # A link signed for tenant B's member, naming tenant A: not a member there.
    cross = sign_link(key, settings, tenant=world.slug, dashboard_id=dashboard_id, subject="b@d")
    r = await anon(f"{page}?sig={cross}")
    assert (r.status_code, _code(r)) == (403, "FORBIDDEN")

    # Unknown or malformed ids and formats.
    for path in (
        f"/dashboards/{uuid.uuid4()}",
        "/dashboards/not-a-uuid",
        f"{page}/widgets/{uuid.uuid4()}.png",
        f"{page}/widgets/nope.png",
        f"{page}/widgets/{widget_id}.gif",
        f"/dashboards/{uuid.uuid4()}.png",
    ):
        r = await get(world, path)
        assert (r.status_code, _code(r)) == (404, "NOT_FOUND"), path


async def test_pages_and_pictures_count_against_rate_limits(world: World) -> None:
    """A server with rate limits on: a page costs 5 request units, a picture 2."""
    settings = replace(world.server.settings, rate_limits=True, platform_request_burst=1_000)
    async for server in start_server(settings):
        slug = await make_tenant(server, members={"v@rl": "VIEWER"})
        data = await server.admin(
            "mutation($s: String!) { admin { setTenantLimits(slug: $s, limits: "
            "{requestsPerSecond: 1, requestBurst: 20}) { __typename ... on ValidationError { message } } } }",
            {"s": slug},
        )
        assert data["admin"]["setTenantLimits"]["__typename"] == "Tenant", data
        headers = {"authorization": f"Bearer {server.token('v@rl')}", "x-tenant-id": slug}
        answers = [
            await server.http.get(f"{server.url}/dashboards/{uuid.uuid4()}", headers=headers)
            for _ in range(6)
        ]
        # A burst of 20 units holds 4 pages (5 units each; at most one more unit refills meanwhile).
        assert [(r.status_code, _code(r)) for r in answers[:4]] == [(404, "NOT_FOUND")] * 4
        assert (answers[-1].status_code, _code(answers[-1])) == (429, "RATE_LIMITED")
        assert_page_headers(answers[-1])
        picture = await server.http.get(f"{server.url}/dashboards/{uuid.uuid4()}.png", headers=headers)
        assert (picture.status_code, _code(picture)) == (429, "RATE_LIMITED")
