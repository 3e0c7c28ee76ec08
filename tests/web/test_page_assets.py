"""The page template (escaping, grid, CSP hash), static files, and GraphiQL from local files."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from conftest import Server
from uds.dashboards.render import Box
from uds.web import vendor
from uds.web.page import PageView, WidgetView, grid_css, render_page, style_hash

EVIL = '<script>alert("x")</script>'


def test_page_escapes_everything_it_did_not_draw() -> None:
    view = PageView(
        id="d1",
        title=f"Sales {EVIL}",
        goal=f"goal {EVIL}",
        version=3,
        widgets=[
            WidgetView(
                id="w1",
                title=f"T {EVIL}",
                box=Box(0, 0, 3, 2),
                reason=f"because {EVIL}",
                insights=[f"up 10% {EVIL}"],
                svg='<svg xmlns="http://www.w3.org/2000/svg"></svg>',
                png_url='/dashboards/d1/widgets/w1.png?sig=a"b',
            ),
            WidgetView(
                id="w2", title="Broken", box=Box(3, 0, 9, 4), reason="", error=f"SOURCE_UNAVAILABLE {EVIL}"
            ),
        ],
        data_source=f"shop {EVIL}",
    )
    page = render_page(view)
    assert "<script>" not in page.html
    # title twice (<title>, h1), goal, source, widget title twice (h2, label), reason, insight, error
    assert page.html.count("&lt;script&gt;") == 9
    assert 'sig=a&quot;b"' in page.html
    assert 'role="alert"' in page.html and "SOURCE_UNAVAILABLE" in page.html
    (css,) = re.findall(r"<style>(.*?)</style>", page.html, re.S)
    assert page.style_hash == style_hash(css)
    assert "#w0{grid-column:1 / span 3;grid-row:1 / span 2}" in css
    assert "#w1{grid-column:4 / span 9;grid-row:1 / span 4}" in css


def test_grid_keeps_widgets_inside_twelve_columns() -> None:
    css = grid_css([WidgetView(id="w", title="t", box=Box(10, 2, 6, 1), reason="")])
    assert "#w0{grid-column:11 / span 2;grid-row:3 / span 1}" in css


async def test_static_files(server: Server) -> None:
    for name, kind in [("uds.css", "text/css"), ("graphiql-start.js", "text/javascript")]:
        r = await server.http.get(f"{server.url}/static/{name}")
        assert r.status_code == 200 and r.headers["content-type"].startswith(kind), name
        assert r.headers["x-content-type-options"] == "nosniff"
    for name in ("nope.css", "../app.py", "%2e%2e/app.py", "vendor/../../app.py"):
        r = await server.http.get(f"{server.url}/static/{name}")
        assert r.status_code == 404, name


async def test_graphiql_uses_local_files_only(server: Server) -> None:
    if vendor.missing(vendor.VENDOR_DIR):
        pytest.skip(f"GraphiQL files missing: {vendor.SETUP_HINT}")
    r = await server.http.get(f"{server.url}/graphql", headers={"accept": "text/html"})
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    refs = re.findall(r'(?:src|href)="([^"]+)"', r.text)
    assert refs and all(ref.startswith("/static/") for ref in refs), refs
    assert "<script>" not in r.text  # no inline script: the CSP allows 'self' only
    csp = r.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp and "http" not in csp
    for ref in refs:
        asset = await server.http.get(server.url + ref)
        assert asset.status_code == 200, ref


async def test_graphiql_without_its_files_says_how_to_get_them(
    server: Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(vendor, "VENDOR_DIR", tmp_path)
    r = await server.http.get(f"{server.url}/graphql", headers={"accept": "text/html"})
    assert r.status_code == 503
    assert "make web-assets" in r.text and "GRAPHIQL_ASSETS_MISSING" in r.text
    # GraphQL itself still answers.
    status, body = await server.gql("{ __typename }")
    assert status == 200 and body["data"] == {"__typename": "Query"}
