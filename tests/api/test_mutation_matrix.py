"""Every mutation, for every kind of caller: allowed or denied as the policy says, and a
denial changes nothing (only the audit log, which records it)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from sqlalchemy import text

from conftest import Server, make_tenant, unique_slug
from uds.api.schema import build_schema
from uds.tenants.slugs import tenant_schema

ROLES = ("stranger", "viewer", "editor", "admin", "platform")
MEMBERS = {"viewer@m": "VIEWER", "editor@m": "EDITOR", "admin@m": "ADMIN"}


@dataclass
class World:
    slug: str
    source_id: str
    job_id: str


@dataclass(frozen=True)
class Case:
    query: str
    variables: Callable[[World], dict[str, Any]]
    allowed: frozenset[str]
    tenant_header: bool = True


TENANT_ADMINS = frozenset({"admin", "platform"})
EDITORS = frozenset({"editor", *TENANT_ADMINS})
PLATFORM = frozenset({"platform"})

CASES: dict[str, Case] = {
    "setMember": Case(
        'mutation { setMember(subject: "new@m", role: VIEWER) { __typename } }', lambda w: {}, TENANT_ADMINS
    ),
    "removeMember": Case(
        'mutation { removeMember(subject: "viewer@m") { __typename } }', lambda w: {}, TENANT_ADMINS
    ),
    "cancelJob": Case(  # the job was started by admin@m: an editor may cancel only their own
        "mutation($id: ID!) { cancelJob(id: $id) { __typename } }", lambda w: {"id": w.job_id}, TENANT_ADMINS
    ),
    "registerDataSource": Case(
        'mutation { registerDataSource(input: {name: "second", host: "127.0.0.1", port: 1, database: "d", '
        'user: "u", password: "p"}) { __typename } }',
        lambda w: {},
        EDITORS,
    ),
    "testDataSource": Case(
        "mutation($id: ID!) { testDataSource(id: $id) { __typename } }",
        lambda w: {"id": w.source_id},
        EDITORS,
    ),
    "deleteDataSource": Case(
        "mutation($id: ID!) { deleteDataSource(id: $id) { __typename } }",
        lambda w: {"id": w.source_id},
        TENANT_ADMINS,
    ),
    "startDiscovery": Case(
        "mutation($id: ID!) { startDiscovery(dataSourceId: $id) { __typename } }",
        lambda w: {"id": w.source_id},
        EDITORS,
    ),
    "generateDashboard": Case(  # no catalog yet: a ValidationError for those allowed
        "mutation($id: ID!) { generateDashboard(input: {dataSourceId: $id, goal: \"x\"}) { __typename } }",
        lambda w: {"id": w.source_id},
        EDITORS,
    ),
    "updateDashboard": Case(
        'mutation { updateDashboard(input: {id: "00000000-0000-4000-8000-000000000000", title: "t"}) '
        "{ __typename } }",
        lambda w: {},
        EDITORS,
    ),
    "deleteDashboard": Case(
        'mutation { deleteDashboard(id: "00000000-0000-4000-8000-000000000000") { __typename } }',
        lambda w: {},
        EDITORS,
    ),
    "admin.createTenant": Case(
        'mutation($s: String!) { admin { createTenant(input: {slug: $s, name: "x"}) { __typename } } }',
        lambda w: {"s": unique_slug("new")},
        PLATFORM,
        tenant_header=False,
    ),
    "admin.suspendTenant": Case(
        "mutation($s: String!) { admin { suspendTenant(slug: $s) { __typename } } }",
        lambda w: {"s": w.slug},
        PLATFORM,
        tenant_header=False,
    ),
    "admin.resumeTenant": Case(
        "mutation($s: String!) { admin { resumeTenant(slug: $s) { __typename } } }",
        lambda w: {"s": w.slug},
        PLATFORM,
        tenant_header=False,
    ),
    "admin.deleteTenant": Case(
        "mutation($s: String!) { admin { deleteTenant(slug: $s, confirm: $s) { __typename } } }",
        lambda w: {"s": w.slug},
        PLATFORM,
        tenant_header=False,
    ),
    "admin.addMember": Case(
        'mutation($s: String!) { admin { addMember(slug: $s, subject: "z@m", role: ADMIN) { __typename } } }',
        lambda w: {"s": w.slug},
        PLATFORM,
        tenant_header=False,
    ),
    "admin.setTenantLimits": Case(
        "mutation($s: String!) { admin { setTenantLimits(slug: $s, limits: {maxDataSources: 9}) { __typename } } }",
        lambda w: {"s": w.slug},
        PLATFORM,
        tenant_header=False,
    ),
    "admin.createServiceClient": Case(
        'mutation($s: String!) { admin { createServiceClient(slug: $s, name: "c", role: ADMIN) { __typename } } }',
        lambda w: {"s": w.slug},
        PLATFORM,
        tenant_header=False,
    ),
    "admin.revokeServiceClient": Case(
        'mutation($s: String!) { admin { revokeServiceClient(slug: $s, clientId: "uds_sc_x") { __typename } } }',
        lambda w: {"s": w.slug},
        PLATFORM,
        tenant_header=False,
    ),
}


def schema_mutations() -> set[str]:
    schema = build_schema()._schema
    names = {f for f in schema.mutation_type.fields if f != "admin"}
    names |= {f"admin.{f}" for f in schema.get_type("AdminMutation").fields}
    return names


def test_every_mutation_is_in_the_matrix() -> None:
    assert schema_mutations() == set(CASES), "add the new mutation to CASES with who may call it"


async def snapshot(server: Server, slug: str) -> dict[str, str]:
    """A digest of every row that a mutation could change (audit logs excluded)."""
    tables = ["uds.tenants", "uds.memberships", "uds.service_clients"]
    async with server.services.engine.connect() as conn:
        schema = tenant_schema(slug)
        names = (
            await conn.scalars(
                text("select tablename from pg_tables where schemaname = :s and tablename <> 'audit_log'"),
                {"s": schema},
            )
        ).all()
        tables += [f'"{schema}"."{n}"' for n in names]
        return {
            t: await conn.scalar(
                text(f"select md5(coalesce(string_agg(x::text, '|' order by x::text), '')) from {t} x")
            )
            for t in tables
        }


async def denial_count(server: Server, slug: str) -> int:
    async with server.services.engine.connect() as conn:
        return int(
            await conn.scalar(
                text(f'select count(*) from "{tenant_schema(slug)}".audit_log where not allowed')
            )
        )


async def make_world(server: Server) -> World:
    slug = await make_tenant(server, members=MEMBERS)
    # Roomy limits, so this test sees role decisions only (limits have their own tests).
    await server.admin(
        "mutation($s: String!) { admin { setTenantLimits(slug: $s, limits: "
        "{maxDataSources: 50, maxConcurrentJobs: 50}) { __typename } } }",
        {"s": slug},
    )
    admin = server.token("admin@m")
    _, body = await server.gql(
        'mutation { registerDataSource(input: {name: "first", host: "127.0.0.1", port: 1, database: "d", '
        'user: "u", password: "p"}) { __typename ... on DataSource { id } } }',
        token=admin,
        tenant=slug,
    )
    source_id = body["data"]["registerDataSource"]["id"]
    _, body = await server.gql(
        "mutation($id: ID!) { startDiscovery(dataSourceId: $id) { __typename ... on Job { id } } }",
        {"id": source_id},
        token=admin,
        tenant=slug,
    )
    return World(slug, source_id, body["data"]["startDiscovery"]["id"])


def caller_token(server: Server, role: str) -> str:
    if role == "platform":
        return server.token("root@m", admin=True)
    if role == "stranger":
        return server.token("stranger@m")
    return server.token(f"{role}@m")


def denied(status: int, body: dict[str, Any]) -> bool:
    if status in (401, 403):
        return True
    errors = body.get("errors") or []
    if any(e["extensions"]["code"] in ("FORBIDDEN", "UNAUTHENTICATED") for e in errors):
        return True
    data = body.get("data") or {}
    result = next(iter(data.values()))
    if "admin" in data:
        result = next(iter(result.values()))
    return result["__typename"] == "NotAllowed"


@pytest.mark.parametrize("name", sorted(CASES))
async def test_matrix(server: Server, name: str) -> None:
    case = CASES[name]
    world = await make_world(server)
    for role in ROLES:  # lowest first: allowed calls change the world for later roles
        before = await snapshot(server, world.slug)
        denials = await denial_count(server, world.slug)
        status, body = await server.gql(
            case.query,
            case.variables(world),
            token=caller_token(server, role),
            tenant=world.slug if case.tenant_header else None,
        )
        assert "errors" not in body or denied(status, body), (name, role, body)
        if role in case.allowed:
            assert not denied(status, body), (name, role, body)
        else:
            assert denied(status, body), (name, role, body)
            assert await snapshot(server, world.slug) == before, (name, role, "a denial changed data")
            if status == 200 and case.tenant_header:  # a policy denial (not refused at routing)
                assert await denial_count(server, world.slug) == denials + 1, (
                    name,
                    role,
                    "denial not audited",
                )
