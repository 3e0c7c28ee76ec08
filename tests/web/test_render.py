"""The renderer: every widget of generated dashboards drawn as PNG and SVG, remote loading
refused, SVG cleaned, the cache keyed by (widget version, data), the event loop free."""

from __future__ import annotations

import asyncio
import io
import uuid
import xml.etree.ElementTree as ET
from typing import Any

import pytest
from PIL import Image
from redis.asyncio import Redis

from dashboards.app_kit import World
from uds.dashboards import render
from uds.dashboards import vegalite as vl
from uds.db import transaction
from uds.errors import BadUserInput
from uds.settings import Settings

GOALS = ["revenue over time by category", "top customers by spend", "payment methods"]
BAR = vl.inline_data(
    vl.bar_spec(
        "Orders by status",
        category="status",
        category_title="Status",
        value="count",
        value_title="Orders",
        fmt=",d",
    ),
    ["status", "count"],
    [("paid", 10), ("open", 4), ("void", 2)],
)
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def decoded_png(data: bytes) -> Image.Image:
    assert data[:8] == PNG_MAGIC
    img = Image.open(io.BytesIO(data))
    img.load()
    return img


async def test_every_widget_of_generated_dashboards_renders(world: World) -> None:
    """PNG and SVG of every widget the generator makes for several goals, with real data."""
    from uds.dashboards import service

    services = world.server.services
    renderer = render.Renderer.for_services(services)
    kinds = set()
    for goal in GOALS:
        made = await world.dashboard(goal)
        async with transaction(services.engine, world.slug) as tx:
            record = await service.get_dashboard(await tx.tenant(), made["id"])
        assert record is not None and record.widgets
        for widget in record.widgets:
            kinds.add(widget.kind)
            box = render.widget_box(widget)
            png = await render.widget_picture(services, world.slug, record, widget, "png", renderer=renderer)
            img = decoded_png(png.data)
            if widget.kind != "table":
                assert img.size == (box.width, box.height), (widget.title, img.size, box)
            svg = await render.widget_picture(services, world.slug, record, widget, "svg", renderer=renderer)
            assert svg.media_type == "image/svg+xml"
            ET.fromstring(svg.data)
            assert render.count_marks(svg.data.decode()) > 0, (goal, widget.title)
    assert {"kpi", "timeseries"} <= kinds, kinds


async def test_remote_data_and_bad_specs_are_refused() -> None:
    pool = render.RenderPool(1)
    try:
        remote = {**BAR, "data": {"url": "http://127.0.0.1:9/rows.json"}}
        with pytest.raises(BadUserInput, match="External data url not allowed"):
            await pool.render(remote, "png")
        with pytest.raises(BadUserInput, match="could not be drawn"):
            await pool.render({"mark": "nonsense-mark", "data": {"values": []}}, "svg")
        with pytest.raises(BadUserInput):
            await pool.render(BAR, "gif")  # type: ignore[arg-type]
        # The worker survived the refusals and still draws.
        decoded_png(await pool.render(BAR, "png"))
    finally:
        await pool.aclose()


async def test_rendering_leaves_the_event_loop_free() -> None:
    """Renders run in another process: the loop keeps running other tasks meanwhile, and
    renders of one picture at the same time share one job."""
    pool = render.RenderPool(1)
    rows = [(f"2024-01-{1 + i % 28:02d}T00:00:00", i % 17) for i in range(3000)]
    heavy = vl.inline_data(
        vl.timeseries_spec("t", time="time", grain="day", value="count", value_title="n", fmt=",d"),
        ["time", "count"],
        rows,
    )
    ticks = 0
    done = asyncio.Event()

    async def ticker() -> None:
        nonlocal ticks
        while not done.is_set():
            ticks += 1
            await asyncio.sleep(0)

    try:
        await pool.render(BAR, "svg")  # the worker is up
        task = asyncio.create_task(ticker())
        results = await asyncio.gather(*(pool.render(heavy, "png", key="same") for _ in range(3)))
        done.set()
        await task
        assert ticks > 100, ticks
        assert results[0] == results[1] == results[2]
        assert len(pool._idle) == 1  # one worker served all three: one job, shared
    finally:
        await pool.aclose()


def test_clean_svg_keeps_drawing_and_drops_the_rest() -> None:
    dirty = (
        '<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink" width="10" height="10">'
        '<script>alert(1)</script><g class="mark-rect role-mark" onclick="alert(2)">'
        '<path d="M0,0h5v5h-5Z" fill="red" style="x"/><a href="javascript:alert(3)"><text>t</text></a>'
        '<foreignObject><div>x</div></foreignObject><image href="http://example.com/x.png"/>'
        '<use xlink:href="#p"/><text fill="javascript:x">ok</text></g></svg>'
    )
    clean = render.clean_svg(dirty)
    root = ET.fromstring(clean)
    tags = {el.tag.rsplit("}", 1)[-1] for el in root.iter()}
    assert tags == {"svg", "g", "path", "text"}, tags
    for el in root.iter():
        assert not any(a.lower().startswith("on") or a.endswith("href") or a == "style" for a in el.attrib)
        assert not any(v.lower().startswith("javascript:") for v in el.attrib.values())
    assert render.count_marks(clean) == 2  # the path and the text (without its bad fill)


async def test_picture_cache_keys_on_widget_version_and_data(settings: Settings) -> None:
    assert settings.redis_url
    redis = Redis.from_url(settings.redis_url)
    prefix = f"uds-test-render-{uuid.uuid4().hex[:8]}:"
    cache = render.PictureCache(redis, prefix=prefix, ttl=60)
    renderer = render.Renderer(cache, render.RenderPool(1))
    widget = uuid.uuid4()
    base: dict[str, Any] = dict(
        tenant="t1", widget_id=widget, spec=BAR, position={"x": 0, "y": 0, "w": 6, "h": 4}
    )
    try:
        first = await renderer.widget_picture(version=1, data_key="rows-a", fmt="png", **base)
        again = await renderer.widget_picture(version=1, data_key="rows-a", fmt="png", **base)
        assert (first.cached, again.cached) == (False, True) and again.data == first.data
        assert await redis.exists(f"{prefix}picture:{first.key}") == 1
        for changed in (dict(version=2, data_key="rows-a"), dict(version=1, data_key="rows-b")):
            assert (await renderer.widget_picture(fmt="png", **changed, **base)).cached is False
        svg = await renderer.widget_picture(version=1, data_key="rows-a", fmt="svg", **base)
        assert svg.cached is False and svg.key != first.key
        moved = {**base, "position": {"x": 0, "y": 0, "w": 12, "h": 4}}
        assert (
            await renderer.widget_picture(version=1, data_key="rows-a", fmt="png", **moved)
        ).cached is False
    finally:
        await renderer.pool.aclose()
        keys = [k async for k in redis.scan_iter(f"{prefix}*")]
        if keys:
            await redis.delete(*keys)
        await redis.aclose()


def test_dashboard_composition_places_tiles_on_the_grid() -> None:
    red = io.BytesIO()
    Image.new("RGB", (render.Box(0, 0, 3, 2).width, render.Box(0, 0, 3, 2).height), "red").save(red, "PNG")
    tiles = [
        render.Tile(render.Box(0, 0, 3, 2), red.getvalue(), "a"),
        render.Tile(render.Box(6, 2, 6, 4), b"", "b", error="Revenue: SOURCE_UNAVAILABLE"),
    ]
    img = decoded_png(render.compose_dashboard("Sales", tiles))
    assert img.size == (1200, render.TITLE_HEIGHT + 6 * render.CELL_HEIGHT)
    inside = (render.GAP, render.TITLE_HEIGHT + render.GAP)
    assert img.getpixel(inside)[:3] == (255, 0, 0)
    error_box = (
        6 * render.CELL_WIDTH + render.GAP,
        render.TITLE_HEIGHT + 2 * render.CELL_HEIGHT + render.GAP,
    )
    assert img.getpixel(error_box)[:3] != (255, 255, 255)  # the error tile is drawn
