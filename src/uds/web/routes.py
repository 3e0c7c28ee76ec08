"""The dashboard page and pictures:

GET /dashboards/{id}                         HTML page (charts as inline SVG)
GET /dashboards/{id}.png                     the whole dashboard
GET /dashboards/{id}/widgets/{widgetId}.png  one widget (also .svg)

Who may call: the same as GraphQL (`Authorization: Bearer` and `X-Tenant-ID`, resolved by
the auth and tenant middlewares), or a signed link (`?sig=`, uds.dashboards.links) made
for this dashboard. Either way the policy engine is asked (`dashboard.read`, and
`widget.read` for pictures) exactly as GraphQL asks it, denials are audited, and the
dashboard is read from the caller's tenant only, so another tenant's id is NOT_FOUND.
Each request is charged to the tenant's and member's rate limits like a GraphQL operation
(429 RATE_LIMITED beyond them).
Errors: 401 UNAUTHENTICATED, 403 FORBIDDEN, 404 NOT_FOUND, 400 TENANT_REQUIRED; the page
answers them as a small HTML page, the pictures as JSON like GraphQL errors.
"""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

from uds.api.admission import Gate
from uds.api.context import Context
from uds.api.loaders import Loaders
from uds.auth.principal import Principal
from uds.dashboards import render
from uds.dashboards.links import LINK_PARAM, DashboardLink, verify_link
from uds.db import TransactionScope
from uds.errors import Forbidden, NotFound, TenantRequired, UdsError, Unauthenticated
from uds.http import error_body
from uds.observability.activity import note_identity, note_outcome
from uds.services import Services
from uds.tenants.registry import TenantRecord
from uds.tenants.routing import NOT_YOURS
from uds.web.page import PageView, WidgetView, error_page, render_page
from uds.web.security import page_headers, picture_headers

# Request units charged to the tenant's and member's rate limits (as GraphQL charges its
# operations): a page or a dashboard picture may draw every widget, a widget one picture.
PAGE_WEIGHT = 5
PICTURE_WEIGHT = 2
_GATES: dict[int, Gate] = {}

NO_CREDENTIALS = (
    "send 'Authorization: Bearer <token>' and 'X-Tenant-ID: <tenant>', "
    "or open the signed link from Dashboard.url"
)


@dataclass(slots=True)
class Access:
    ctx: Context
    tenant: TenantRecord
    link: DashboardLink | None
    token: str | None  # the link token, for the page's own picture links


def _dashboard_id(raw: str) -> uuid.UUID:
    try:
        return uuid.UUID(raw)
    except ValueError:
        raise NotFound("no such dashboard") from None


def _gate(services: Services) -> Gate:
    gate = _GATES.get(id(services))
    if gate is None or gate.settings is not services.settings:
        gate = _GATES[id(services)] = Gate(services.settings)
    return gate


async def _access(request: Request, dashboard_id: uuid.UUID, weight: int) -> Access:
    """The caller's context in the dashboard's tenant, from the headers or a signed link,
    charged `weight` to its rate limits (RateLimited beyond them)."""
    services: Services = request.state.services
    scope = request.scope
    token = request.query_params.get(LINK_PARAM)
    link = None
    if token is not None and scope.get("principal") is None:
        link = verify_link(services.signing_key, services.settings, token)
        if link.dashboard_id != dashboard_id:
            raise Forbidden("this link is for another dashboard")
        tenant = await services.registry.get(link.tenant)
        if tenant is None:
            raise Forbidden(NOT_YOURS)
        if link.shared:
            role: str | None = "VIEWER"  # a share link lets its holder view this dashboard
        else:
            role = await services.registry.role_of(tenant, link.subject)
            if role is None:
                raise Forbidden(NOT_YOURS)
        principal: Principal | None = Principal(
            subject=link.subject,
            issuer=services.settings.own_issuer,
            kind="user",
            expires_at=float(link.expires_at),
        )
    else:
        principal = scope.get("principal")
        if principal is None:
            raise Unauthenticated(f"a bearer token is required: {NO_CREDENTIALS}")
        tenant = scope.get("tenant")
        if tenant is None:
            raise TenantRequired(f"this page needs the X-Tenant-ID header: {NO_CREDENTIALS}")
        role = scope.get("tenant_role")
        token = None
    note_identity(subject=principal.subject, tenant=tenant.slug)
    tx = TransactionScope(services.engine, tenant.slug, read_engine=services.read_engine)
    tx.read_only()
    ctx = Context(
        request=request,
        services=services,
        principal=principal,
        tenant=tenant,
        tenant_role=role,
        tx=tx,
        loaders=Loaders(tx),
    )
    await _gate(services).charge(ctx, weight)
    return Access(ctx, tenant, link, token)


async def _load(access: Access, dashboard_id: uuid.UUID, *actions: str) -> Any:
    from uds.dashboards import service

    for action in actions:
        await access.ctx.authorize(action, {"id": str(dashboard_id)})
    try:
        found = await service.get_dashboard(await access.ctx.tx.tenant(), dashboard_id)
    finally:
        await access.ctx.tx.rollback()
        await access.ctx.tx.close()
    if found is None:
        raise NotFound("no such dashboard")
    return found


def _with_sig(path: str, token: str | None) -> str:
    return f"{path}?{LINK_PARAM}={token}" if token else path


async def dashboard_page(request: Request) -> Response:
    try:
        dashboard_id = _dashboard_id(request.path_params["dashboard"])
        access = await _access(request, dashboard_id, PAGE_WEIGHT)
        dashboard = await _load(access, dashboard_id, "dashboard.read", "widget.read")
        view = await _page_view(request.state.services, access, dashboard)
    except UdsError as exc:
        note_outcome(exc.code)
        page = error_page(exc.http_status, exc.code, exc.message)
        headers = page_headers(page.style_hash)
        if exc.http_status == 401:
            headers["www-authenticate"] = 'Bearer realm="uds"'
        return HTMLResponse(page.html, status_code=exc.http_status, headers=headers)
    page = render_page(view)
    return HTMLResponse(page.html, headers=page_headers(page.style_hash))


async def _page_view(services: Services, access: Access, dashboard: Any) -> PageView:
    from uds.dashboards import service

    renderer = render.Renderer.for_services(services)
    slug = access.tenant.slug
    base = f"/dashboards/{dashboard.id}"

    async def one(widget: Any) -> WidgetView:
        svg = error = None
        insights = list(widget.insights or [])
        cached = False
        try:
            data = await service.widget_data(services, slug, dashboard, widget)
            insights = list(data.insights or insights)  # computed on the first fetch
            pic = await render.widget_picture(
                services, slug, dashboard, widget, "svg", renderer=renderer, data=data
            )
            svg, cached = pic.data.decode("utf-8"), pic.cached
        except UdsError as exc:
            error = f"{exc.code}: {exc.message}"
        return WidgetView(
            id=str(widget.id),
            title=widget.title,
            box=render.widget_box(widget),
            reason=widget.reason,
            insights=insights,
            svg=svg,
            error=error,
            png_url=_with_sig(f"{base}/widgets/{widget.id}.png", access.token),
            svg_url=_with_sig(f"{base}/widgets/{widget.id}.svg", access.token),
            cached=cached,
        )

    widgets = list(await asyncio.gather(*(one(w) for w in dashboard.widgets)))
    return PageView(
        id=str(dashboard.id),
        title=dashboard.title,
        goal=dashboard.goal,
        version=dashboard.version,
        widgets=widgets,
        png_url=_with_sig(f"{base}.png", access.token),
        updated=dashboard.updated_at.strftime("%Y-%m-%d %H:%M UTC") if dashboard.updated_at else None,
        notes=[dashboard.message] if getattr(dashboard, "message", None) else [],
    )


def _picture_error(exc: UdsError) -> Response:
    note_outcome(exc.code)
    headers = {"x-content-type-options": "nosniff", "cache-control": "no-store"}
    if exc.http_status == 401:
        headers["www-authenticate"] = 'Bearer realm="uds"'
    body = error_body(exc)
    return Response(body, status_code=exc.http_status, media_type="application/json", headers=headers)


async def dashboard_image(request: Request) -> Response:
    try:
        dashboard_id = _dashboard_id(request.path_params["dashboard"])
        access = await _access(request, dashboard_id, PAGE_WEIGHT)
        dashboard = await _load(access, dashboard_id, "dashboard.read", "widget.read")
        pic = await render.dashboard_picture(request.state.services, access.tenant.slug, dashboard)
    except UdsError as exc:
        return _picture_error(exc)
    return _picture(pic)


async def widget_image(request: Request) -> Response:
    fmt = request.path_params["format"]
    try:
        if fmt not in render.MEDIA_TYPES:
            raise NotFound("widget pictures are .png or .svg")
        dashboard_id = _dashboard_id(request.path_params["dashboard"])
        try:
            widget_id = uuid.UUID(request.path_params["widget"])
        except ValueError:
            raise NotFound("no such widget on this dashboard") from None
        access = await _access(request, dashboard_id, PICTURE_WEIGHT)
        dashboard = await _load(access, dashboard_id, "dashboard.read", "widget.read")
        widget = next((w for w in dashboard.widgets if w.id == widget_id), None)
        if widget is None:
            raise NotFound("no such widget on this dashboard")
        pic = await render.widget_picture(request.state.services, access.tenant.slug, dashboard, widget, fmt)
    except UdsError as exc:
        return _picture_error(exc)
    return _picture(pic)


def _picture(pic: render.Picture) -> Response:
    headers = picture_headers(pic.media_type)
    headers["x-uds-picture-cache"] = "hit" if pic.cached else "miss"
    return Response(pic.data, media_type=pic.media_type, headers=headers)


ROUTES = [
    Route("/dashboards/{dashboard}.png", dashboard_image, methods=["GET"]),
    Route("/dashboards/{dashboard}/widgets/{widget}.{format:str}", widget_image, methods=["GET"]),
    Route("/dashboards/{dashboard}", dashboard_page, methods=["GET"]),
]
