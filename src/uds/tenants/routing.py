"""Pure-ASGI tenant routing: `X-Tenant-ID` -> slug rule -> registry -> membership.

Writes `scope["tenant"]` (a TenantRecord or None) and `scope["tenant_role"]`. A tenant
that does not exist and one the principal is not a member of get the same 403, so
slugs cannot be enumerated. The header value never reaches SQL unless it passed the
slug rule.
"""

from __future__ import annotations

import logging

from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.types import ASGIApp, Receive, Scope, Send

from uds.auth.principal import Principal
from uds.errors import BadUserInput, Forbidden, UdsError, Unauthenticated
from uds.http import header, send_error
from uds.observability import tracing
from uds.observability.activity import current_request_id
from uds.observability.audit import record_break_glass
from uds.tenants.registry import TenantRecord, TenantRegistry
from uds.tenants.slugs import is_valid_slug

log = logging.getLogger(__name__)

NOT_YOURS = "no such tenant, or you are not a member of it"


class TenantMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        scope["tenant"] = None
        scope["tenant_role"] = None
        raw = header(scope, b"x-tenant-id")
        if raw is not None:
            try:
                with tracing.span("tenant"):
                    await self._resolve(scope, raw)
            except UdsError as exc:
                await send_error(send, exc)
                return
        await self.app(scope, receive, send)

    async def _resolve(self, scope: Scope, raw: bytes) -> None:
        services = scope["state"]["services"]
        principal = scope.get("principal")
        tenant, role = await resolve_tenant(services.registry, principal, raw)
        scope["tenant"] = tenant
        scope["tenant_role"] = role
        if role is None and principal is not None:  # only platform admins get this far
            await audit_break_glass(
                services.engine,
                tenant,
                principal,
                transport="http",
                target=f"{scope['method']} {scope['path']}",
            )


async def audit_break_glass(
    engine: AsyncEngine, tenant: TenantRecord, principal: Principal, *, transport: str, target: str
) -> None:
    """Record a platform admin's entry into a tenant they are not a member of; refuse the
    request if that cannot be recorded (break-glass access is never unaudited)."""
    try:
        await record_break_glass(
            engine,
            slug=tenant.slug,
            actor=principal.subject,
            target=target,
            detail={
                "transport": transport,
                "requestId": current_request_id(),
                "roles": sorted(principal.platform_roles),
            },
        )
    except Exception:
        log.exception("could not record break-glass access of %s to %s", principal.subject, tenant.slug)
        raise UdsError("break-glass access could not be audited, so it is refused") from None


async def resolve_tenant(
    registry: TenantRegistry, principal: Principal | None, raw: bytes
) -> tuple[TenantRecord, str | None]:
    """The tenant named by `raw` and the principal's role in it (also used by WebSockets).

    Raises BadUserInput for a malformed slug, Unauthenticated without a principal, and the
    same Forbidden for a tenant that does not exist and one the principal may not enter.
    """
    try:
        slug = raw.decode("ascii").strip()
    except UnicodeDecodeError:
        slug = ""
    if not is_valid_slug(slug):
        raise BadUserInput("X-Tenant-ID is not a valid tenant slug")
    if principal is None:
        raise Unauthenticated("a bearer token is required with X-Tenant-ID")
    tenant = await registry.get(slug)
    if tenant is None:
        raise Forbidden(NOT_YOURS)
    if principal.tenant is not None and principal.tenant != slug:
        # Service tokens are bound to one tenant.
        raise Forbidden(NOT_YOURS)
    role = await registry.role_of(tenant, principal.subject)
    if role is None and not principal.is_platform_admin:
        raise Forbidden(NOT_YOURS)
    return tenant, role
