"""The dashboard page as HTML, from a plain view model (no database, no rendering here).

The page has no JavaScript at all: every chart is an SVG drawn on the server
(`uds.dashboards.render`) and inlined. The only stylesheet besides `/static/uds.css` is
the page's grid placement, one `<style>` block whose SHA-256 goes into the
Content-Security-Policy (`PageHtml.style_hash`), so the policy can forbid every other
inline style and every script.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from html import escape

from uds.dashboards.render import Box

# Below this width the grid collapses into one column.
NARROW_PX = 800


@dataclass(frozen=True, slots=True)
class WidgetView:
    id: str
    title: str
    box: Box
    reason: str
    insights: Sequence[str] = ()
    svg: str | None = None  # cleaned SVG (render.clean_svg) or None when it failed
    error: str | None = None  # what went wrong, e.g. "SOURCE_UNAVAILABLE: ..."
    png_url: str = ""
    svg_url: str = ""
    cached: bool = False


@dataclass(frozen=True, slots=True)
class PageView:
    id: str
    title: str
    goal: str | None
    version: int
    widgets: Sequence[WidgetView]
    png_url: str = ""
    data_source: str | None = None
    updated: str | None = None
    notes: Sequence[str] = field(default_factory=tuple)


@dataclass(frozen=True, slots=True)
class PageHtml:
    html: str
    style_hash: str  # "sha256-<base64>" of the inline <style> block, for the CSP


def grid_css(widgets: Sequence[WidgetView]) -> str:
    """Each widget's place on the 12-column grid (wide screens only)."""
    rules = []
    for i, w in enumerate(widgets):
        b = w.box
        col = f"{min(b.x, 11) + 1} / span {max(1, min(b.w, 12 - min(b.x, 11)))}"
        row = f"{b.y + 1} / span {max(1, b.h)}"
        rules.append(f"#w{i}{{grid-column:{col};grid-row:{row}}}")
    return f"@media (min-width:{NARROW_PX}px){{{''.join(rules)}}}"


def style_hash(css: str) -> str:
    digest = hashlib.sha256(css.encode("utf-8")).digest()
    return "sha256-" + base64.b64encode(digest).decode("ascii")


def render_page(view: PageView) -> PageHtml:
    css = grid_css(view.widgets)
    parts = [
        "<!doctype html>",
        '<html lang="en">',
        "<head>",
        '<meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        '<meta name="referrer" content="no-referrer">',
        f"<title>{escape(view.title)} · UDS</title>",
        '<link rel="stylesheet" href="/static/uds.css">',
        f"<style>{css}</style>",
        "</head>",
        "<body>",
        '<header class="dash-header">',
        f"<h1>{escape(view.title)}</h1>",
    ]
    if view.goal:
        parts.append(f'<p class="goal"><span class="label">Goal</span> {escape(view.goal)}</p>')
    meta = [f"version {view.version}"]
    if view.data_source:
        meta.append(f"data source {escape(view.data_source)}")
    if view.updated:
        meta.append(f"updated {escape(view.updated)}")
    links = f' · <a href="{escape(view.png_url)}">PNG of the dashboard</a>' if view.png_url else ""
    parts.append(f'<p class="meta">{" · ".join(meta)}{links}</p>')
    parts.extend(f'<p class="note">{escape(note)}</p>' for note in view.notes)
    parts.append("</header>")
    if not view.widgets:
        parts.append('<p class="empty">This dashboard has no widgets.</p>')
    parts.append('<main class="grid">')
    for i, w in enumerate(view.widgets):
        parts.append(_widget(i, w))
    parts.append("</main>")
    parts.append(
        '<footer class="dash-footer">Drawn by UDS on the server; this page runs no scripts.</footer>'
    )
    parts.append("</body></html>")
    return PageHtml("\n".join(parts), style_hash(css))


def _widget(index: int, w: WidgetView) -> str:
    out = [
        f'<section class="widget" id="w{index}" data-widget-id="{escape(w.id)}">',
        f'<h2 class="visually-hidden">{escape(w.title)}</h2>',
    ]
    if w.svg is not None:
        out.append(f'<div class="chart" role="img" aria-label="{escape(w.title)}">{w.svg}</div>')
    else:
        message = w.error or "this chart could not be drawn"
        out.append(f'<div class="chart chart-error" role="alert"><p>{escape(w.title)}</p>')
        out.append(f"<p>{escape(message)}</p></div>")
    if w.reason:
        out.append(f'<p class="reason"><span class="label">Why</span> {escape(w.reason)}</p>')
    if w.insights:
        items = "".join(f"<li>{escape(text)}</li>" for text in w.insights)
        out.append(f'<ul class="insights" aria-label="Insights">{items}</ul>')
    pics = []
    if w.png_url:
        pics.append(f'<a href="{escape(w.png_url)}">PNG</a>')
    if w.svg_url:
        pics.append(f'<a href="{escape(w.svg_url)}">SVG</a>')
    if pics:
        out.append(f'<p class="pictures">{" · ".join(pics)}</p>')
    out.append("</section>")
    return "".join(out)


def error_page(status: int, code: str, message: str) -> PageHtml:
    """A plain page for a refused or failed request (no inline style, no script)."""
    html = "\n".join(
        [
            "<!doctype html>",
            '<html lang="en"><head><meta charset="utf-8">',
            '<meta name="referrer" content="no-referrer">',
            f"<title>{status} · UDS</title>",
            '<link rel="stylesheet" href="/static/uds.css"></head>',
            '<body><main class="error-page">',
            f"<h1>{status}</h1>",
            f'<p class="code">{escape(code)}</p>',
            f"<p>{escape(message)}</p>",
            "</main></body></html>",
        ]
    )
    return PageHtml(html, "")
