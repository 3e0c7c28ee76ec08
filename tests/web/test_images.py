"""GraphQL widgetImage and dashboardImage: the picture inline and a signed link to it."""

from __future__ import annotations

import base64
import io
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

from PIL import Image

from dashboards.app_kit import World
from uds.dashboards.command import generate
from uds.dashboards.render import count_marks

WIDGET_IMAGE = """
query($d: ID!, $w: ID!, $f: ImageFormat) { widgetImage(dashboardId: $d, widgetId: $w, format: $f) {
  mediaType base64 url } }"""
DASHBOARD_IMAGE = "query($d: ID!) { dashboardImage(id: $d) { mediaType base64 url } }"


async def test_widget_and_dashboard_images(world: World, shop_dashboard: dict[str, Any]) -> None:
    d = shop_dashboard["id"]
    w = shop_dashboard["widgets"][0]["id"]
    http, url = world.server.http, world.server.url

    png = (await world.ok(WIDGET_IMAGE, {"d": d, "w": w}, sub="viewer@d"))["widgetImage"]
    assert png["mediaType"] == "image/png"
    data = base64.b64decode(png["base64"])
    with Image.open(io.BytesIO(data)) as img:
        img.load()
        assert img.format == "PNG" and img.width > 100
    assert png["url"].startswith(f"/dashboards/{d}/widgets/{w}.png?sig=")
    linked = await http.get(url + png["url"])  # no headers: the link is the credential
    assert linked.status_code == 200 and linked.content == data

    svg = (await world.ok(WIDGET_IMAGE, {"d": d, "w": w, "f": "SVG"}, sub="viewer@d"))["widgetImage"]
    assert svg["mediaType"] == "image/svg+xml"
    text = base64.b64decode(svg["base64"]).decode()
    ET.fromstring(text)
    assert count_marks(text) > 0

    whole = (await world.ok(DASHBOARD_IMAGE, {"d": d}, sub="viewer@d"))["dashboardImage"]
    assert whole["mediaType"] == "image/png" and whole["url"].startswith(f"/dashboards/{d}.png?sig=")
    with Image.open(io.BytesIO(base64.b64decode(whole["base64"]))) as img:
        assert img.width == 1200


async def test_image_errors(world: World, shop_dashboard: dict[str, Any]) -> None:
    d = shop_dashboard["id"]
    w = shop_dashboard["widgets"][0]["id"]
    for variables, code in [
        ({"d": d, "w": "00000000-0000-0000-0000-000000000000"}, "NOT_FOUND"),
        ({"d": "00000000-0000-0000-0000-000000000000", "w": w}, "NOT_FOUND"),
        ({"d": d, "w": w, "f": "GIF"}, "BAD_USER_INPUT"),
    ]:
        status, body = await world.gql(WIDGET_IMAGE, variables, sub="viewer@d")
        assert body["errors"][0]["extensions"]["code"] == code, body
    # Not a member of this tenant: refused before anything is read or drawn.
    status, body = await world.server.gql(
        DASHBOARD_IMAGE, {"d": d}, token=world.server.token("outsider@d"), tenant=world.slug
    )
    assert status == 403 and body["errors"][0]["extensions"]["code"] == "FORBIDDEN", body


async def test_cli_writes_the_dashboard_png(world: World, tmp_path: Path) -> None:
    """`uds dashboards generate --png FILE` draws with this renderer."""
    err, out = io.StringIO(), io.StringIO()
    target = tmp_path / "dashboard.png"
    code = await generate(
        world.server.settings,
        tenant=world.slug,
        source="demo-shop",
        goal="payment methods",
        png=target,
        actor="editor@d",
        out=err,
        stdout=out,
    )
    assert code == 0, err.getvalue()
    with Image.open(target) as img:
        img.load()
        assert img.format == "PNG" and img.width == 1200 and img.height > 200
    assert "sig=" in out.getvalue()
