"""Pictures of widgets and dashboards: Vega-Lite rendered on the server with vl-convert.

- Nothing is fetched: every render passes `allowed_base_urls=[]` (vl-convert then refuses
  any data URL) and gets the rows inlined in `data.values` (`vegalite.inline_data`).
- vl-convert runs Vega in an embedded JavaScript engine: CPU-heavy, and it holds the GIL
  while it works. It runs in a small pool of worker processes (`Settings.render_workers`
  processes of `python -m uds.dashboards.render_worker`, started on first use, then kept,
  talking over pipes), so a render never stalls the API's event loop; callers await it.
  Renders of the same picture at the same time share one job.
- A widget is drawn at the size of its place on the 12-column grid (`CELL_WIDTH` by
  `CELL_HEIGHT` pixels per cell), so the page, the widget PNG and the dashboard PNG agree.
- The whole dashboard is composed with Pillow from the widgets' own PNGs, placed on the
  grid: each widget picture is rendered (and cached) once and serves both, and the grid
  positions are honoured exactly, which a Vega-Lite concat layout (rows of charts of
  their own sizes and kinds) does not do.
- Pictures are cached in Redis under a key made of the widget id, its version and the
  data key of its rows (`picture_key`), plus the format, size and `RENDER_REVISION`: the
  same widget version with the same rows is rendered once, and new rows or an edited
  widget get a new key.

Outside the pool everything here is cheap; only `render_spec` and `compose_dashboard`
are costly, and both run off the event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import hashlib
import io
import json
import logging
import struct
import sys
import xml.etree.ElementTree as ET
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from uds.errors import BadUserInput, UdsError

log = logging.getLogger(__name__)

Format = Literal["png", "svg"]
MEDIA_TYPES: dict[str, str] = {"png": "image/png", "svg": "image/svg+xml"}
# Bumped whenever the pictures this module makes would look different: old keys then miss.
RENDER_REVISION = "1"
VEGA_LITE_VERSION = "6.4"  # the release uds.dashboards.vegalite validates against
CELL_WIDTH = 100  # pixels per grid column: the 12-column grid is 1200 px wide
CELL_HEIGHT = 70  # pixels per grid row
GAP = 16  # pixels between widgets
TITLE_HEIGHT = 56  # the dashboard PNG's title band
RENDER_TIMEOUT_SECONDS = 60.0
MAX_MARKS_SVG_BYTES = 20_000_000  # a picture larger than this is refused, not inlined
SVG_NS = "http://www.w3.org/2000/svg"
# What an SVG drawn by Vega may hold; anything else (script, foreignObject, image, use,
# animation, event handler attributes, links) is removed before it reaches a page.
SVG_ELEMENTS = frozenset(
    {
        "svg", "g", "path", "rect", "line", "text", "tspan", "circle", "ellipse", "polygon",
        "polyline", "defs", "clipPath", "linearGradient", "radialGradient", "stop", "title", "desc",
    }
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class Box:
    """A place on the 12-column grid (x, y, w, h in cells)."""

    x: int
    y: int
    w: int
    h: int

    @classmethod
    def of(cls, position: Any) -> Box:
        """From a GridPos, a stored widget (x, y, w, h) or a {"x", "y", "w", "h"} mapping."""
        get = position.get if isinstance(position, Mapping) else lambda k: getattr(position, k)
        return cls(*(max(0, int(get(k))) for k in ("x", "y", "w", "h")))

    @property
    def width(self) -> int:
        return max(1, self.w) * CELL_WIDTH - GAP

    @property
    def height(self) -> int:
        return max(1, self.h) * CELL_HEIGHT - GAP


@dataclass(frozen=True, slots=True)
class Picture:
    data: bytes
    media_type: str
    cached: bool
    key: str


@dataclass(frozen=True, slots=True)
class Tile:
    """One widget's PNG and its place, for the dashboard picture (or why it has none)."""

    box: Box
    png: bytes
    key: str
    error: str | None = None


# -- specs ------------------------------------------------------------------------------


def sized_spec(spec: Mapping[str, Any], box: Box) -> dict[str, Any]:
    """A copy of `spec` drawn to fit `box` (title, axes and legend included).

    Specs sized by steps (tables: one step per row and column) keep their own size.
    """
    out = copy.deepcopy(dict(spec))
    stepped = isinstance(out.get("width"), Mapping) or isinstance(out.get("height"), Mapping)
    if not stepped:
        out["width"] = box.width
        out["height"] = box.height
        out["autosize"] = {"type": "fit", "contains": "padding"}
    out.setdefault("background", "white")
    return out


def picture_key(*, tenant: str, widget_id: Any, version: int, data_key: str, fmt: str, box: Box) -> str:
    """The cache key of a widget picture: (widget version, data key) plus how it is drawn."""
    parts = [RENDER_REVISION, tenant, str(widget_id), str(version), data_key, fmt, f"{box.w}x{box.h}"]
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()


def dashboard_key(*, tenant: str, dashboard_id: Any, version: int, title: str, tiles: Sequence[Tile]) -> str:
    parts = [RENDER_REVISION, tenant, str(dashboard_id), str(version), title]
    parts += [f"{t.key}@{t.box.x},{t.box.y},{t.box.w},{t.box.h}" for t in tiles]
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()


# -- the worker processes ----------------------------------------------------------------


class _Worker:
    """One `python -m uds.dashboards.render_worker` process, serving one request at a time."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.served = 0

    @classmethod
    async def start(cls) -> _Worker:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "uds.dashboards.render_worker",
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.DEVNULL,
        )
        return cls(proc)

    @property
    def alive(self) -> bool:
        return self.proc.returncode is None

    async def call(self, request: bytes) -> tuple[int, bytes]:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(struct.pack(">I", len(request)) + request)
        await self.proc.stdin.drain()
        status, length = struct.unpack(">BI", await self.proc.stdout.readexactly(5))
        payload = await self.proc.stdout.readexactly(length)
        self.served += 1
        return status, payload

    async def stop(self) -> None:
        """End of input ends the worker; one that does not end at once is killed."""
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        try:
            await asyncio.wait_for(self.proc.wait(), 2.0)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                self.proc.kill()
            with contextlib.suppress(Exception):
                await self.proc.wait()


class RenderPool:
    """At most `workers` render processes, started on first use and kept; a render waits
    for a free one. A process that fails, times out or has served MAX_SERVED renders is
    replaced. Renders of the same key at the same time share one job."""

    MAX_SERVED = 1000  # bounds whatever the JavaScript engine keeps between renders

    def __init__(self, workers: int = 1) -> None:
        self.workers = max(1, workers)
        self._idle: list[_Worker] = []
        self._slots = asyncio.Semaphore(self.workers)
        self._inflight: dict[str, asyncio.Future[bytes]] = {}
        self._closed = False

    async def render(self, spec: Mapping[str, Any], fmt: Format, *, key: str | None = None) -> bytes:
        """PNG bytes or SVG (UTF-8) of `spec`, rendered in a worker process.

        Raises BadUserInput when vl-convert refuses the spec (with its reason), and
        UdsError when rendering takes longer than RENDER_TIMEOUT_SECONDS or the worker died.
        """
        if fmt not in MEDIA_TYPES:
            raise BadUserInput(f"unknown picture format {fmt!r}")
        shared = self._inflight.get(key) if key is not None else None
        if shared is not None:
            return await asyncio.shield(shared)
        future: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        if key is not None:
            self._inflight[key] = future
        try:
            data = await self._render(spec, fmt)
            future.set_result(data)
            return data
        except asyncio.CancelledError:
            future.cancel()
            raise
        except Exception as exc:
            future.set_exception(exc)
            future.exception()  # retrieved: no "never retrieved" warning when nobody shared it
            raise
        finally:
            if key is not None:
                self._inflight.pop(key, None)

    async def _render(self, spec: Mapping[str, Any], fmt: Format) -> bytes:
        request = json.dumps({"spec": spec, "fmt": fmt}, allow_nan=False, separators=(",", ":")).encode()
        async with self._slots:
            worker = self._idle.pop() if self._idle else await _Worker.start()
            keep = False
            try:
                status, payload = await asyncio.wait_for(worker.call(request), RENDER_TIMEOUT_SECONDS)
                keep = worker.served < self.MAX_SERVED
            except TimeoutError:
                raise UdsError(f"rendering took longer than {RENDER_TIMEOUT_SECONDS:.0f} s") from None
            except (asyncio.IncompleteReadError, ConnectionError, BrokenPipeError):
                raise UdsError("the render process stopped; try again") from None
            finally:
                if keep and worker.alive and not self._closed:
                    self._idle.append(worker)
                else:
                    await worker.stop()
        if status == 0:
            return payload
        message = _first_line(payload.decode("utf-8", "replace"))
        if status == 1:
            raise BadUserInput(f"the widget could not be drawn: {message}")
        raise UdsError(f"rendering failed: {message}")

    async def aclose(self) -> None:
        """Stop the idle workers; a render still running stops its worker when it ends."""
        self._closed = True
        idle, self._idle = self._idle, []
        for worker in idle:
            await worker.stop()


def _first_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    useful = [line for line in lines if not line.startswith("at ")]
    return (" ".join(useful[:2]) or "unknown error")[:300]


# One pool per event loop (its processes' pipes belong to that loop) and worker count.
_POOLS: dict[tuple[int, int], RenderPool] = {}


def render_pool(workers: int = 1) -> RenderPool:
    """The pool of the running event loop."""
    loop_id = id(asyncio.get_running_loop())
    pool = _POOLS.get((loop_id, workers))
    if pool is None:
        pool = _POOLS[(loop_id, workers)] = RenderPool(workers)
    return pool


async def close_pools() -> None:
    """Stop the running loop's render processes (the API's lifespan calls this at shutdown)."""
    loop_id = id(asyncio.get_running_loop())
    for key in [k for k in _POOLS if k[0] == loop_id]:
        await _POOLS.pop(key).aclose()


# -- the cache -----------------------------------------------------------------------


class PictureCache:
    """Rendered pictures in Redis (`<prefix>picture:<key>`), kept `ttl` seconds."""

    def __init__(self, redis: Any, *, prefix: str, ttl: int) -> None:
        self.redis = redis
        self.prefix = f"{prefix}picture:"
        self.ttl = ttl

    async def get(self, key: str) -> bytes | None:
        try:
            value = await self.redis.get(self.prefix + key)
        except Exception:  # a cache that is down costs a render, never the answer
            log.warning("picture cache read failed", exc_info=True)
            return None
        return bytes(value) if value is not None else None

    async def put(self, key: str, data: bytes) -> None:
        try:
            await self.redis.set(self.prefix + key, data, ex=self.ttl)
        except Exception:
            log.warning("picture cache write failed", exc_info=True)


class Renderer:
    """Widget and dashboard pictures, cached; what the web routes and GraphQL use."""

    def __init__(self, cache: PictureCache, pool: RenderPool) -> None:
        self.cache = cache
        self.pool = pool

    @classmethod
    def for_services(cls, services: Any) -> Renderer:
        settings = services.settings
        cache = PictureCache(services.redis, prefix=settings.redis_prefix, ttl=settings.picture_ttl_seconds)
        return cls(cache, render_pool(settings.render_workers))

    async def widget_picture(
        self,
        *,
        tenant: str,
        widget_id: Any,
        version: int,
        data_key: str,
        spec: Mapping[str, Any],
        position: Any,
        fmt: Format,
    ) -> Picture:
        """The widget drawn from `spec` (rows inlined) at its grid size, from cache or fresh."""
        if fmt not in MEDIA_TYPES:
            raise BadUserInput(f"unknown picture format {fmt!r}: use png or svg")
        box = Box.of(position)
        key = picture_key(
            tenant=tenant, widget_id=widget_id, version=version, data_key=data_key, fmt=fmt, box=box
        )
        hit = await self.cache.get(key)
        if hit is not None:
            return Picture(hit, MEDIA_TYPES[fmt], True, key)
        data = await self.pool.render(sized_spec(spec, box), fmt, key=key)
        if fmt == "svg":
            data = clean_svg(data.decode("utf-8")).encode("utf-8")
        await self.cache.put(key, data)
        return Picture(data, MEDIA_TYPES[fmt], False, key)

    async def dashboard_png(
        self, *, tenant: str, dashboard_id: Any, version: int, title: str, tiles: Sequence[Tile]
    ) -> Picture:
        """The dashboard as one PNG: its title, then every widget's PNG on the grid."""
        key = dashboard_key(
            tenant=tenant, dashboard_id=dashboard_id, version=version, title=title, tiles=tiles
        )
        hit = await self.cache.get(key)
        if hit is not None:
            return Picture(hit, MEDIA_TYPES["png"], True, key)
        data = await asyncio.to_thread(compose_dashboard, title, tiles)
        await self.cache.put(key, data)
        return Picture(data, MEDIA_TYPES["png"], False, key)


# -- composing and cleaning --------------------------------------------------------------


def compose_dashboard(title: str, tiles: Sequence[Tile]) -> bytes:
    """One PNG: a title band, then each tile pasted at its grid place (Pillow)."""
    from PIL import Image, ImageDraw, ImageFont

    width = 12 * CELL_WIDTH
    rows = max((t.box.y + max(1, t.box.h) for t in tiles), default=1)
    height = TITLE_HEIGHT + rows * CELL_HEIGHT
    canvas = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(canvas)
    font = ImageFont.load_default(size=24)
    draw.text((GAP // 2, TITLE_HEIGHT // 2), title[:100], fill="black", font=font, anchor="lm")
    draw.line((0, TITLE_HEIGHT - 4, width, TITLE_HEIGHT - 4), fill="#dddddd", width=1)
    small = ImageFont.load_default(size=14)
    for tile in tiles:
        left = tile.box.x * CELL_WIDTH + GAP // 2
        top = TITLE_HEIGHT + tile.box.y * CELL_HEIGHT + GAP // 2
        if tile.error is not None or not tile.png:
            right, bottom = left + tile.box.width - 1, top + tile.box.height - 1
            draw.rectangle((left, top, right, bottom), outline="#c9a2a2", fill="#fdf6f6")
            text = _wrap(tile.error or "no picture", max(10, tile.box.width // 8))
            draw.multiline_text((left + 10, top + 10), text, fill="#7a2b2b", font=small, spacing=4)
            continue
        with Image.open(io.BytesIO(tile.png)) as img:
            piece = img.convert("RGBA")
            # Step-sized specs (tables) can be larger than their place: cut to the box.
            piece = piece.crop((0, 0, min(piece.width, tile.box.width), min(piece.height, tile.box.height)))
            canvas.paste(piece, (left, top), piece)
    out = io.BytesIO()
    canvas.save(out, format="PNG", optimize=False)
    return out.getvalue()


def _wrap(text: str, width: int) -> str:
    import textwrap

    return "\n".join(textwrap.wrap(text, width)[:8])


def clean_svg(svg: str) -> str:
    """The SVG with only drawing elements and attributes left: safe to inline in a page.

    Vega escapes the texts it draws; this is the second line of defence (the page's CSP
    is the third): no scripts, no event handlers, no links, nothing that loads.
    """
    if len(svg) > MAX_MARKS_SVG_BYTES:
        raise UdsError("the picture is too large to show")
    ET.register_namespace("", SVG_NS)
    try:
        root = ET.fromstring(svg)
    except ET.ParseError as exc:
        raise UdsError(f"the renderer produced an SVG that does not parse: {exc}") from None
    _clean(root)
    return ET.tostring(root, encoding="unicode")


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _clean(node: ET.Element) -> None:
    for name in list(node.attrib):
        local = _local(name).lower()
        value = node.attrib[name].strip().lower()
        if local.startswith("on") or local in ("href", "src", "style") or value.startswith("javascript:"):
            del node.attrib[name]
    for child in list(node):
        if _local(child.tag) not in SVG_ELEMENTS:
            node.remove(child)
        else:
            _clean(child)


def count_marks(svg: str) -> int:
    """Elements drawn inside Vega's mark groups (class `role-mark`): bars, lines, points,
    arcs, texts. Axes, titles and legends are not counted."""
    root = ET.fromstring(svg)
    total = 0
    for group in root.iter():
        if "role-mark" in group.attrib.get("class", "").split():
            total += sum(1 for el in group.iter() if _local(el.tag) != "g" and el is not group)
    return total


# -- pictures of stored dashboards ---------------------------------------------------


def widget_box(widget: Any) -> Box:
    """A stored widget's place (its `position`, or x/y/w/h on the record itself)."""
    return Box.of(getattr(widget, "position", None) or widget)


async def widget_picture(
    services: Any,
    tenant: str,
    dashboard: Any,
    widget: Any,
    fmt: Format,
    *,
    renderer: Renderer | None = None,
    data: Any = None,
) -> Picture:
    """A stored widget's picture: its data (uds.dashboards.service.widget_data, cached
    there, unless the caller has it already), then the picture (cached here). Raises what
    either raises, with its code."""
    from uds.dashboards import service

    if data is None:
        data = await service.widget_data(services, tenant, dashboard, widget)
    return await (renderer or Renderer.for_services(services)).widget_picture(
        tenant=tenant,
        widget_id=widget.id,
        version=widget.version,
        data_key=data.data_key,
        spec=data.spec,
        position=widget_box(widget),
        fmt=fmt,
    )


async def dashboard_picture(services: Any, tenant: str, dashboard: Any) -> Picture:
    """The whole dashboard as one PNG. A widget whose data or picture fails is drawn as
    a box that says why, so one broken source never breaks the picture."""
    renderer = Renderer.for_services(services)

    async def tile(widget: Any) -> Tile:
        box = widget_box(widget)
        try:
            pic = await widget_picture(services, tenant, dashboard, widget, "png", renderer=renderer)
        except UdsError as exc:
            return Tile(box, b"", f"error:{exc.code}:{exc.message}", error=f"{widget.title}: {exc.message}")
        return Tile(box, pic.data, pic.key)

    tiles = list(await asyncio.gather(*(tile(w) for w in dashboard.widgets)))
    return await renderer.dashboard_png(
        tenant=tenant,
        dashboard_id=dashboard.id,
        version=dashboard.version,
        title=dashboard.title,
        tiles=tiles,
    )


async def dashboard_png(services: Any, tenant: str, dashboard: Any) -> bytes:
    """The dashboard's PNG bytes (`uds dashboards generate --png`)."""
    return (await dashboard_picture(services, tenant, dashboard)).data
