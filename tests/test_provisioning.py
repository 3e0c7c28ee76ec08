"""Tenant lifecycle through the GraphQL admin API, and atomic provisioning."""

from __future__ import annotations

from typing import Any

import asyncpg
from sqlalchemy import text

from conftest import CREATE_TENANT, Server, make_tenant, unique_slug
from uds.db import transaction
from uds.tenants import service
from uds.tenants.slugs import tenant_schema


async def schema_exists(server: Server, slug: str) -> bool:
    async with server.services.engine.connect() as conn:
        return bool(
            await conn.scalar(
                text("select exists(select 1 from pg_namespace where nspname = :n)"),
                {"n": tenant_schema(slug)},
            )
        )


async def tenant_row(server: Server, slug: str) -> Any:
    async with server.services.engine.connect() as conn:
        return (
            await conn.execute(text("select slug, status from uds.tenants where slug = :s"), {"s": slug})
        ).first()


SUSPEND = (
    "mutation($s: String!) { admin { suspendTenant(slug: $s) { __typename ... on Tenant { status } } } }"
)
RESUME = "mutation($s: String!) { admin { resumeTenant(slug: $s) { __typename ... on Tenant { status } } } }"
DELETE = """mutation($s: String!, $c: String!) { admin { deleteTenant(slug: $s, confirm: $c) {
  __typename ... on TenantDeleted { slug } ... on ValidationError { message } ... on NotFound { message } } } }"""
SET_MEMBER = "mutation($s: String!, $r: TenantRole!) { setMember(subject: $s, role: $r) { __typename ... on NotAllowed { reasons } } }"


async def test_lifecycle(server: Server) -> None:
    slug = await make_tenant(server, members={"admin@acme": "ADMIN"})
    assert await schema_exists(server, slug)
    user = server.token("admin@acme")

    # use: a write that lands in the tenant
    _, body = await server.gql(SET_MEMBER, {"s": "viewer@acme", "r": "VIEWER"}, token=user, tenant=slug)
    assert body["data"]["setMember"]["__typename"] == "Member"

    # suspend: reads still work, writes are refused with the policy's reason
    data = await server.admin(SUSPEND, {"s": slug})
    assert data["admin"]["suspendTenant"] == {"__typename": "Tenant", "status": "SUSPENDED"}
    _, body = await server.gql("{ tenant { status members { subject } } }", token=user, tenant=slug)
    assert body["data"]["tenant"]["status"] == "SUSPENDED"
    _, body = await server.gql(SET_MEMBER, {"s": "x@acme", "r": "VIEWER"}, token=user, tenant=slug)
    assert body["data"]["setMember"] == {
        "__typename": "NotAllowed",
        "reasons": ["tenant is suspended: read-only"],
    }

    # resume: writes work again
    data = await server.admin(RESUME, {"s": slug})
    assert data["admin"]["resumeTenant"]["status"] == "ACTIVE"
    _, body = await server.gql(SET_MEMBER, {"s": "x@acme", "r": "VIEWER"}, token=user, tenant=slug)
    assert body["data"]["setMember"]["__typename"] == "Member"

    # delete needs the slug as confirmation
    data = await server.admin(DELETE, {"s": slug, "c": "wrong"})
    assert data["admin"]["deleteTenant"]["__typename"] == "ValidationError"
    assert await schema_exists(server, slug)
    data = await server.admin(DELETE, {"s": slug, "c": slug})
    assert data["admin"]["deleteTenant"] == {"__typename": "TenantDeleted", "slug": slug}
    assert not await schema_exists(server, slug)
    assert await tenant_row(server, slug) is None
    # the former member is refused like any stranger
    status, _ = await server.gql("{ tenant { slug } }", token=user, tenant=slug)
    assert status == 403


async def test_lifecycle_is_audited(server: Server) -> None:
    slug = await make_tenant(server)
    await server.admin(SUSPEND, {"s": slug})
    async with server.services.engine.connect() as conn:
        actions = (
            await conn.scalars(
                text("select action from uds.platform_audit where target = :s order by id"), {"s": slug}
            )
        ).all()
    assert actions == ["tenant.create", "tenant.suspend"]


async def test_duplicate_and_invalid(server: Server) -> None:
    slug = await make_tenant(server)
    data = await server.admin(CREATE_TENANT, {"slug": slug, "name": "again"})
    assert data["admin"]["createTenant"]["__typename"] == "Conflict"
    for bad in ("ab", "Bad-Slug", "../x", "t1; drop schema uds"):
        data = await server.admin(CREATE_TENANT, {"slug": bad, "name": "x"})
        assert data["admin"]["createTenant"]["__typename"] == "ValidationError", bad
    data = await server.admin(CREATE_TENANT, {"slug": unique_slug(), "name": "  "})
    assert data["admin"]["createTenant"]["__typename"] == "ValidationError"


async def test_unknown_tenant_in_admin_mutations(server: Server) -> None:
    missing = unique_slug("gone")
    data = await server.admin(SUSPEND, {"s": missing})
    assert data["admin"]["suspendTenant"]["__typename"] == "NotFound"
    data = await server.admin(DELETE, {"s": missing, "c": missing})
    assert data["admin"]["deleteTenant"]["__typename"] == "NotFound"


async def test_non_admins_cannot_administer(server: Server) -> None:
    slug = await make_tenant(server, members={"boss@x": "ADMIN"})
    for query, variables in (
        (CREATE_TENANT, {"slug": unique_slug(), "name": "x"}),
        (SUSPEND, {"s": slug}),
        (DELETE, {"s": slug, "c": slug}),
    ):
        status, body = await server.gql(query, variables, token=server.token("boss@x"))
        result = next(iter(body["data"]["admin"].values()))
        assert result["__typename"] == "NotAllowed", query
    status, body = await server.gql(
        "{ admin { tenants { edges { cursor } } } }", token=server.token("boss@x")
    )
    assert body["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    assert await tenant_row(server, slug) == (slug, "active")


async def test_failure_halfway_leaves_nothing(server: Server) -> None:
    """A tenant migration that fails after the row and schema were created rolls all back."""
    slug = unique_slug("boom")
    schema = tenant_schema(slug)
    admin = await asyncpg.connect(**_dsn(server))
    # A real failure inside PostgreSQL, mid-migration: creating the audit_log table in
    # this tenant's schema raises.
    await admin.execute(f"""
        create or replace function uds_test_fail() returns event_trigger language plpgsql as $$
        begin
          if exists (select 1 from pg_event_trigger_ddl_commands() where schema_name = '{schema}'
                     and command_tag = 'CREATE TABLE' and object_identity like '%audit_log') then
            raise exception 'injected failure';
          end if;
        end $$;
        create event trigger uds_test_fail on ddl_command_end execute function uds_test_fail();
    """)
    try:
        status, body = await server.gql(
            CREATE_TENANT, {"slug": slug, "name": "x"}, token=server.token("r@x", admin=True)
        )
        assert body["errors"][0]["extensions"]["code"] == "INTERNAL"
        assert "injected" not in body["errors"][0]["message"]
    finally:
        await admin.execute("drop event trigger uds_test_fail; drop function uds_test_fail()")
        await admin.close()
    assert await tenant_row(server, slug) is None
    assert not await schema_exists(server, slug)
    async with server.services.engine.connect() as conn:
        assert not (
            await conn.scalar(text("select count(*) from uds.platform_audit where target = :s"), {"s": slug})
        )
    # and the slug is free to use afterwards
    await make_tenant(server, slug)
    assert await schema_exists(server, slug)


async def test_service_level_rollback(server: Server) -> None:
    """The service never commits: a caller that raises after create_tenant leaves nothing."""
    slug = unique_slug()

    class Abort(Exception):
        pass

    try:
        async with transaction(server.services.engine) as tx:
            await service.create_tenant(await tx.core(), slug=slug, name="x", actor="test")
            assert await (await tx.connection()).scalar(
                text("select count(*) from information_schema.tables where table_schema = :s"),
                {"s": tenant_schema(slug)},
            )
            raise Abort
    except Abort:
        pass
    assert await tenant_row(server, slug) is None
    assert not await schema_exists(server, slug)


def _dsn(server: Server) -> dict[str, Any]:
    from conftest import _asyncpg_dsn

    return _asyncpg_dsn(server.settings.database_url or "")


async def test_changes_and_denials_are_audited_in_the_tenant(server: Server) -> None:
    slug = await make_tenant(server, members={"adm@x": "ADMIN", "view@x": "VIEWER"})
    _, body = await server.gql(
        SET_MEMBER, {"s": "new@x", "r": "EDITOR"}, token=server.token("adm@x"), tenant=slug
    )
    assert body["data"]["setMember"]["__typename"] == "Member"
    _, body = await server.gql(
        SET_MEMBER, {"s": "new@x", "r": "ADMIN"}, token=server.token("view@x"), tenant=slug
    )
    assert body["data"]["setMember"]["__typename"] == "NotAllowed"
    status, _ = await server.gql(
        "{ auditLog { edges { cursor } } }", token=server.token("view@x"), tenant=slug
    )
    assert status == 200  # the request is answered (with a FORBIDDEN error inside)
    _, body = await server.gql(
        "{ auditLog(first: 20) { edges { node { actor action allowed } } } }",
        token=server.token("adm@x"),
        tenant=slug,
    )
    entries = [e["node"] for e in body["data"]["auditLog"]["edges"]]
    assert entries[:3] == [
        {"actor": "view@x", "action": "audit.read", "allowed": False},
        {"actor": "view@x", "action": "member.write", "allowed": False},
        {"actor": "adm@x", "action": "member.write", "allowed": True},
    ]
    assert {"actor": "root@test", "action": "tenant.create", "allowed": True} in entries


async def test_platform_denials_are_audited(server: Server) -> None:
    missing = unique_slug("nope")
    _, body = await server.gql(SUSPEND, {"s": missing}, token=server.token("intruder@x"))
    assert body["data"]["admin"]["suspendTenant"]["__typename"] == "NotAllowed"
    async with server.services.engine.connect() as conn:
        row = (
            await conn.execute(
                text("select actor, action, allowed from uds.platform_audit where target = :t"),
                {"t": f"slug={missing}"},
            )
        ).one()
    assert tuple(row) == ("intruder@x", "tenant.suspend", False)
