"""GraphQL pictures: `widgetImage` and `dashboardImage`, for clients that cannot send
headers with an image request (the MCP bridge hands them to a model as image content).

Each answer carries the picture itself (base64) and a signed link to the same picture
(`url`, valid Settings.dashboard_link_ttl_seconds, for the caller only: uds.dashboards.links).
Pictures come from the same renderer and cache as the web routes (uds.dashboards.render).
"""

from __future__ import annotations

import base64
import enum

import strawberry
from strawberry.types import Info

from uds.api.context import Context
from uds.dashboards import render
from uds.dashboards.links import dashboard_url
from uds.errors import NotFound


@strawberry.enum(description="Picture formats.")
class ImageFormat(enum.Enum):
    PNG = "png"
    SVG = "svg"


@strawberry.type(description="A rendered picture: inline (base64) and as a short-lived signed link.")
class Image:
    media_type: str = strawberry.field(description="image/png or image/svg+xml.")
    base64: str = strawberry.field(description="The picture's bytes, base64-encoded.")
    url: str = strawberry.field(description="A signed link to the same picture, for the caller only.")


async def _dashboard(
    ctx: Context, dashboard_id: strawberry.ID, *, widget_id: strawberry.ID | None = None
) -> object:
    from uds.dashboards import service

    await ctx.authorize("dashboard.read", {"id": str(dashboard_id)})
    await ctx.authorize("widget.read", {"id": str(widget_id or dashboard_id)})
    found = await service.get_dashboard(await ctx.tx.tenant(), dashboard_id)
    if found is None:
        raise NotFound("no such dashboard")
    return found


def _url(ctx: Context, dashboard_id: object, suffix: str) -> str:
    principal = ctx.require_principal()
    tenant = ctx.require_tenant()
    return dashboard_url(
        ctx.services.settings,
        tenant.slug,
        str(dashboard_id),
        principal.subject,
        suffix=suffix,
        key=ctx.services.signing_key,
    )


async def widget_image(
    info: Info[Context, None],
    dashboard_id: strawberry.ID,
    widget_id: strawberry.ID,
    format: ImageFormat = ImageFormat.PNG,
) -> Image:
    """One widget drawn at its grid size, from its current data."""
    ctx = info.context
    tenant = ctx.require_tenant()
    found = await _dashboard(ctx, dashboard_id, widget_id=widget_id)
    widget = found.widget(widget_id)  # type: ignore[attr-defined]
    if widget is None:
        raise NotFound("no such widget on this dashboard")
    pic = await render.widget_picture(ctx.services, tenant.slug, found, widget, format.value)
    return Image(
        media_type=pic.media_type,
        base64=base64.b64encode(pic.data).decode("ascii"),
        url=_url(ctx, found.id, f"/widgets/{widget.id}.{format.value}"),  # type: ignore[attr-defined]
    )


async def dashboard_image(info: Info[Context, None], id: strawberry.ID) -> Image:
    """The whole dashboard as one PNG, widgets on the 12-column grid."""
    ctx = info.context
    tenant = ctx.require_tenant()
    found = await _dashboard(ctx, id)
    pic = await render.dashboard_picture(ctx.services, tenant.slug, found)
    return Image(
        media_type=pic.media_type,
        base64=base64.b64encode(pic.data).decode("ascii"),
        url=_url(ctx, found.id, ".png"),  # type: ignore[attr-defined]
    )
