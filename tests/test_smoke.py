"""The main request path end to end: admin creates a tenant, a member reads it."""

from __future__ import annotations

from conftest import Server, make_tenant


async def test_me_without_tenant(server: Server) -> None:
    status, body = await server.gql("{ me { subject kind platformRoles } }", token=server.token("alice@x"))
    assert status == 200, body
    assert body["data"]["me"] == {"subject": "alice@x", "kind": "user", "platformRoles": []}


async def test_member_reads_tenant_and_audit(server: Server) -> None:
    slug = await make_tenant(server, members={"bob@x": "ADMIN"})
    status, body = await server.gql(
        "{ tenant { slug status members { subject role } } auditLog(first: 5) { edges { node { action } } } "
        "me { tenants { tenant { slug } role } } }",
        token=server.token("bob@x"),
        tenant=slug,
    )
    assert status == 200 and "errors" not in body, body
    assert body["data"]["tenant"]["slug"] == slug
    assert body["data"]["tenant"]["members"] == [{"subject": "bob@x", "role": "ADMIN"}]
    assert {"tenant": {"slug": slug}, "role": "ADMIN"} in body["data"]["me"]["tenants"]
