"""Tenant schemas: the fast provisioning script matches the revisions, and concurrency is safe."""

from __future__ import annotations

import asyncio

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from conftest import Server, make_tenant, unique_slug
from uds.db import transaction
from uds.migrations import head, run_tenant_upgrade
from uds.runtime import migrate_all_tenants
from uds.tenants import service
from uds.tenants.slugs import tenant_schema

SHAPE = """
select 'column', table_name || '.' || column_name || ' ' || data_type || ' ' || is_nullable
       || ' ' || coalesce(column_default, '')
  from information_schema.columns where table_schema = :s
union all
select 'constraint', conrelid::regclass::text || ' ' || pg_get_constraintdef(oid)
  from pg_constraint where connamespace = to_regnamespace(:s)
union all
select 'index', indexdef from pg_indexes where schemaname = :s
"""


async def shape(conn: AsyncConnection, schema: str) -> set[str]:
    rows = (await conn.execute(text(SHAPE), {"s": schema})).all()
    return {f"{kind}: {value.replace(schema + '.', '')}" for kind, value in rows}


async def test_fast_provisioning_matches_the_revisions(server: Server) -> None:
    fast = await make_tenant(server)
    slow = unique_slug("slow")
    async with transaction(server.services.engine) as tx:
        conn = await tx.connection()
        await conn.execute(text(f'create schema "{tenant_schema(slow)}"'))
        await run_tenant_upgrade(conn, slow)
    async with server.services.engine.connect() as conn:
        fast_shape = await shape(conn, tenant_schema(fast))
        slow_shape = await shape(conn, tenant_schema(slow))
        version = await conn.scalar(text(f'select version_num from "{tenant_schema(fast)}".alembic_version'))
    assert fast_shape == slow_shape
    assert len(fast_shape) > 10
    assert version == head("tenant")
    async with server.services.engine.begin() as conn:
        await conn.execute(text(f'drop schema "{tenant_schema(slow)}" cascade'))


async def test_concurrent_provisioning(server: Server) -> None:
    slugs = [unique_slug("con") for _ in range(8)]

    async def create(slug: str) -> None:
        async with transaction(server.services.engine) as tx:
            await service.create_tenant(await tx.core(), slug=slug, name=slug, actor="test")

    await asyncio.gather(*(create(s) for s in slugs))
    async with server.services.engine.connect() as conn:
        for slug in slugs:
            tables = set(
                (
                    await conn.scalars(
                        text("select tablename from pg_tables where schemaname = :s"),
                        {"s": tenant_schema(slug)},
                    )
                ).all()
            )
            assert {"audit_log", "alembic_version", "jobs"} <= tables, slug


async def test_concurrent_rollout_of_behind_tenants(server: Server) -> None:
    behind = [await make_tenant(server) for _ in range(6)]
    async with server.services.engine.begin() as conn:
        for slug in behind:
            schema = tenant_schema(slug)
            later = (
                await conn.scalars(
                    text("select tablename from pg_tables where schemaname = :s and tablename <> all(:keep)"),
                    {"s": schema, "keep": ["audit_log", "alembic_version"]},
                )
            ).all()
            for table in later:
                await conn.execute(text(f'drop table if exists "{schema}"."{table}" cascade'))
            await conn.execute(
                text(f'update "{schema}".alembic_version set version_num = :v'), {"v": "t0001"}
            )
    await migrate_all_tenants(server.services.engine, concurrency=4)
    async with server.services.engine.connect() as conn:
        for slug in behind:
            schema = tenant_schema(slug)
            assert await conn.scalar(text(f'select version_num from "{schema}".alembic_version')) == head(
                "tenant"
            )
            assert await conn.scalar(text(f'select count(*) from "{schema}".jobs')) == 0
