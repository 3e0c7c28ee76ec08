"""What the fuzzer found, kept as plain tests: each was INTERNAL (or a wrong code) before."""

from __future__ import annotations

from conftest import Server, make_tenant


def codes(body: dict) -> list[str]:
    return [e["extensions"]["code"] for e in body.get("errors", [])]


async def test_sibling_mutations_below_the_root_take_turns(server: Server) -> None:
    """graphql-core runs fields below the root concurrently, `admin { ... }` mutations too;
    they share the request's one session, so they must not overlap."""
    slug = await make_tenant(server)
    other = await make_tenant(server)
    query = """mutation($a: String!, $b: String!) { admin {
      s1: suspendTenant(slug: $a) { __typename ... on Tenant { status } }
      s2: suspendTenant(slug: $b) { __typename ... on Tenant { status } }
      r1: resumeTenant(slug: $a) { __typename ... on Tenant { status } }
      bad: setTenantLimits(slug: "Not A Slug", limits: {memberRequestBurst: null}) { __typename }
    } }"""
    status, body = await server.gql(query, {"a": slug, "b": other}, token=server.token("root@test", admin=True))
    assert "errors" not in body, body
    admin = body["data"]["admin"]
    assert admin["s1"]["status"] == "SUSPENDED" and admin["s2"]["status"] == "SUSPENDED"
    assert admin["r1"]["status"] == "ACTIVE"  # in document order
    assert admin["bad"]["__typename"] == "ValidationError"


async def test_sibling_reads_below_the_root_take_turns(server: Server) -> None:
    await make_tenant(server, members={"a@x": "VIEWER", "b@x": "ADMIN"})
    query = "{ admin { tenants(first: 50) { nodes { slug members { subject } serviceClients { name } } } } }"
    status, body = await server.gql(query, token=server.token("root@test", admin=True))
    assert "errors" not in body, body


async def test_tenant_field_without_tenant_header(server: Server) -> None:
    status, body = await server.gql(
        'mutation { startDiscovery(dataSourceId: "x") { __typename } }', token=server.token("root@test", admin=True)
    )
    assert codes(body) == ["TENANT_REQUIRED"]


async def test_malformed_action_name_is_bad_input_not_a_policy_failure(server: Server) -> None:
    status, body = await server.gql(
        "query($a: String!) { me { can(action: $a) { allow } } }", {"a": "8\x197 tenant.read"},
        token=server.token("a@x"),
    )
    assert codes(body) == ["BAD_USER_INPUT"]
    status, body = await server.gql(
        "query($a: String!) { me { can(action: $a) { allow reasons } } }", {"a": "no.such.action"},
        token=server.token("a@x"),
    )
    assert body["data"]["me"]["can"] == {"allow": False, "reasons": ["unknown action no.such.action"]}


async def test_unknown_enum_value_in_variables_is_bad_input(server: Server) -> None:
    slug = await make_tenant(server, members={"boss@x": "ADMIN"})
    status, body = await server.gql(
        'mutation($r: TenantRole!) { setMember(subject: "a@x", role: $r) { __typename } }', {"r": "OWNER"},
        token=server.token("boss@x"), tenant=slug,
    )
    assert codes(body) == ["BAD_USER_INPUT"]
