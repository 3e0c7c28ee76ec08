"""The dashboard page and GraphiQL in headless Chromium, with every request that does not
go to the UDS server refused: charts draw their marks, nothing fails, screenshots saved."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from dashboards.app_kit import World


async def open_page(browser: Any, world: World, url: str, shot: Path) -> dict[str, Any]:
    """Load `url` with the network closed except to the server; what the page did."""
    origin = urlsplit(world.server.url)
    context = await browser.new_context(viewport={"width": 1280, "height": 900})
    page = await context.new_page()
    errors: list[str] = []
    blocked: list[str] = []
    failed: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("requestfailed", lambda r: failed.append(r.url))

    async def route(r: Any) -> None:
        u = urlsplit(r.request.url)
        if (u.scheme, u.netloc) == (origin.scheme, origin.netloc) or u.scheme == "data":
            await r.continue_()
        else:
            blocked.append(r.request.url)
            await r.abort()

    await context.route("**/*", route)
    try:
        response = await page.goto(url, wait_until="networkidle")
        assert response is not None
        await page.screenshot(path=str(shot), full_page=True)
        return {
            "page": page,
            "context": context,
            "status": response.status,
            "headers": response.headers,
            "errors": errors,
            "blocked": blocked,
            "failed": failed,
        }
    except BaseException:
        await context.close()
        raise


async def test_dashboard_page_in_chromium(
    browser: Any, world: World, shop_dashboard: dict[str, Any], tmp_path: Path
) -> None:
    shot = tmp_path / "dashboard.png"
    seen = await open_page(browser, world, world.server.url + shop_dashboard["url"], shot)
    try:
        page = seen["page"]
        assert seen["status"] == 200
        assert seen["errors"] == [], seen["errors"]
        assert seen["blocked"] == [] and seen["failed"] == [], (seen["blocked"], seen["failed"])
        widgets = await page.query_selector_all("section.widget")
        assert len(widgets) == len(shop_dashboard["widgets"])
        for section, widget in zip(widgets, shop_dashboard["widgets"], strict=True):
            # Marks: the elements drawn inside Vega's mark groups, as the browser laid them out.
            marks = await section.eval_on_selector_all(
                "svg .role-mark *:not(g)",
                "els => els.filter(e => { const b = e.getBBox(); return b.width > 0 || b.height > 0; }).length",
            )
            assert marks > 0, widget["title"]
            box = await section.bounding_box()
            assert box and box["width"] > 150 and box["height"] > 80, (widget["title"], box)
        # Side by side on the grid: two widgets on one row share a top edge.
        tops = [round((await s.bounding_box())["y"]) for s in widgets]
        assert len(set(tops)) < len(tops), tops
        assert shot.stat().st_size > 10_000
    finally:
        await seen["context"].close()


async def test_graphiql_in_chromium(browser: Any, world: World, tmp_path: Path) -> None:
    shot = tmp_path / "graphiql.png"
    seen = await open_page(browser, world, world.server.url + "/graphql", shot)
    try:
        page = seen["page"]
        assert seen["status"] == 200
        await page.wait_for_selector(".graphiql-container .graphiql-query-editor", timeout=15_000)
        await page.wait_for_selector(".CodeMirror", timeout=15_000)
        assert "Loading" not in await page.inner_text("#graphiql")
        assert seen["errors"] == [], seen["errors"]
        assert seen["blocked"] == [] and seen["failed"] == [], (seen["blocked"], seen["failed"])
        await page.screenshot(path=str(shot), full_page=True)
    finally:
        await seen["context"].close()
