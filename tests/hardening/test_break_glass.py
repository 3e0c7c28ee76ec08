"""Break-glass: a platform admin entering a tenant they are not a member of is audited twice,
in the tenant's log (its admins read it with auditLog) and in the platform's."""

from __future__ import annotations

from typing import Any

from gql import Client
from gql.transport.websockets import WebsocketsTransport
from sqlalchemy import select

from conftest import Server, make_tenant
from uds.observability.audit import BREAK_GLASS
from uds.tenants.models import PlatformAudit

AUDIT = "{ auditLog(first: 20) { nodes { actor action target allowed } } }"


async def audit_log(server: Server, token: str, slug: str) -> list[dict[str, Any]]:
    status, body = await server.gql(AUDIT, token=token, tenant=slug)
    assert status == 200 and "errors" not in body, body
    return body["data"]["auditLog"]["nodes"]  # type: ignore[no-any-return]


async def platform_entries(server: Server, slug: str) -> list[Any]:
    async with server.services.engine.connect() as conn:
        rows = await conn.execute(
            select(PlatformAudit.actor, PlatformAudit.target, PlatformAudit.detail)
            .where(PlatformAudit.action == BREAK_GLASS, PlatformAudit.target.like(f"{slug}: %"))
            .order_by(PlatformAudit.id)
        )
        return list(rows)


async def test_platform_admin_reading_a_tenant_is_audited(server: Server) -> None:
    slug = await make_tenant(server, members={"boss@acme": "ADMIN", "ana@acme": "VIEWER"})
    other = await make_tenant(server, members={"boss@other": "ADMIN"})  # a second tenant, untouched
    ops = server.token("ops@platform", admin=True)  # platform admin, member of neither

    status, body = await server.gql("{ tenant { slug } }", token=ops, tenant=slug, headers={"x-request-id": "bg-1"})
    assert status == 200 and body["data"]["tenant"]["slug"] == slug

    entries = [e for e in await audit_log(server, server.token("boss@acme"), slug) if e["action"] == BREAK_GLASS]
    assert entries == [{"actor": "ops@platform", "action": BREAK_GLASS, "target": "POST /graphql", "allowed": True}]
    platform = await platform_entries(server, slug)
    assert [(p.actor, p.target) for p in platform] == [("ops@platform", f"{slug}: POST /graphql")]
    assert platform[0].detail["transport"] == "http" and platform[0].detail["requestId"] == "bg-1"
    assert platform[0].detail["roles"] == ["platform-admin"]

    # Members, platform admins without X-Tenant-ID, and the other tenant leave no such entry.
    await server.gql("{ tenant { slug } }", token=server.token("ana@acme"), tenant=slug)
    await server.gql("{ me { subject } }", token=ops)
    after = [e for e in await audit_log(server, server.token("boss@acme"), slug) if e["action"] == BREAK_GLASS]
    assert len(after) == 1
    assert [e for e in await audit_log(server, server.token("boss@other"), other) if e["action"] == BREAK_GLASS] == []
    assert await platform_entries(server, other) == []


async def test_every_break_glass_request_is_audited_even_when_it_fails(server: Server) -> None:
    slug = await make_tenant(server, members={"boss@acme": "ADMIN"})
    ops = server.token("ops2@platform", admin=True)
    await server.gql("{ tenant { slug } }", token=ops, tenant=slug)
    await server.gql("{ nonsense }", token=ops, tenant=slug)  # refused by validation: still entered
    entries = [e for e in await audit_log(server, server.token("boss@acme"), slug) if e["action"] == BREAK_GLASS]
    assert [e["actor"] for e in entries] == ["ops2@platform", "ops2@platform"]


async def test_a_platform_admin_who_is_a_member_is_not_break_glass(server: Server) -> None:
    slug = await make_tenant(server, members={"lead@platform": "ADMIN"})
    await server.gql("{ tenant { slug } }", token=server.token("lead@platform", admin=True), tenant=slug)
    entries = await audit_log(server, server.token("lead@platform"), slug)
    assert all(e["action"] != BREAK_GLASS for e in entries)


async def test_break_glass_over_websocket(server: Server) -> None:
    slug = await make_tenant(server, members={"boss@acme": "ADMIN"})
    ops = server.token("ops3@platform", admin=True)
    transport = WebsocketsTransport(
        url=server.url.replace("http://", "ws://") + "/graphql",
        subprotocols=[WebsocketsTransport.GRAPHQLWS_SUBPROTOCOL],
        init_payload={"authorization": f"Bearer {ops}", "tenant": slug},
    )
    client = Client(transport=transport)
    await client.connect_async()
    await client.close_async()
    entries = [e for e in await audit_log(server, server.token("boss@acme"), slug) if e["action"] == BREAK_GLASS]
    assert entries == [{"actor": "ops3@platform", "action": BREAK_GLASS, "target": "connect", "allowed": True}]
    assert (await platform_entries(server, slug))[0].detail["transport"] == "websocket"
