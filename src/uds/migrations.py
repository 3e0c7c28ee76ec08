"""Run the two Alembic trees: `core` (schema `uds`) and `tenant` (one tenant schema).

Alembic's env.py is bypassed on purpose: the revisions are loaded once per process and
run on a connection the caller owns, inside the caller's transaction. That is what makes
tenant provisioning atomic (row + schema + tables commit or vanish together).

Two things follow from Alembic keeping its `op`/`context` proxies in module globals:
- upgrades in one process must not interleave (an upgrade awaiting the database would
  let another one swap the globals, and DDL could land in the other tenant's schema), so
  every online upgrade goes through `_alembic_lock`;
- a brand-new tenant does not replay the revisions one by one: `tenant_ddl()` renders
  the whole tree once per process as offline SQL (schema-less, like the revisions), and
  `provision_tenant_schema` runs that script in the new schema in one round trip.
"""

from __future__ import annotations

import asyncio
import io
import weakref
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import Connection, text
from sqlalchemy.ext.asyncio import AsyncConnection

from uds.tenants.slugs import CORE_SCHEMA, tenant_schema

# Alembic (with Mako) is imported where a migration runs: an API process that serves
# requests and never creates a tenant does not hold it in memory.
if TYPE_CHECKING:
    from alembic.script import ScriptDirectory

MIGRATIONS_DIR = Path(__file__).resolve().parents[2] / "migrations"
# Serialises concurrent `uds migrate` / `uds up` runs on one database (any fixed bigint).
CORE_LOCK_KEY = 0x75647301


@cache
def script_directory(tree: str) -> ScriptDirectory:
    from alembic.script import ScriptDirectory

    return ScriptDirectory(str(MIGRATIONS_DIR / tree))


def head(tree: str) -> str:
    heads = script_directory(tree).get_heads()
    if len(heads) != 1:
        raise RuntimeError(f"migration tree {tree!r} must have exactly one head, has {heads}")
    return heads[0]


def _upgrade(conn: Connection, tree: str, version_schema: str, target: str) -> None:
    from alembic.config import Config
    from alembic.runtime.environment import EnvironmentContext

    script = script_directory(tree)

    def steps(rev: object, _context: object) -> object:
        return script._upgrade_revs(target, rev)

    with EnvironmentContext(Config(), script, fn=steps, destination_rev=target) as env:
        env.configure(
            connection=conn,
            version_table_schema=version_schema,
            transactional_ddl=True,
        )
        env.run_migrations()


def upgrade_core(conn: Connection, target: str = "head") -> None:
    """Bring schema `uds` to `target`, holding a transaction-level advisory lock."""
    conn.execute(text("select pg_advisory_xact_lock(:k)"), {"k": CORE_LOCK_KEY})
    conn.execute(text(f'create schema if not exists "{CORE_SCHEMA}"'))
    _upgrade(conn, "core", CORE_SCHEMA, target)


def upgrade_tenant(conn: Connection, slug: str, target: str = "head") -> None:
    """Bring the tenant's schema (which must exist) to `target` in the caller's transaction."""
    schema = tenant_schema(slug)
    # Local to the transaction: raw op.execute() statements resolve to the tenant schema;
    # schema-less op.create_table() is mapped by schema_translate_map.
    conn.execute(text("select set_config('search_path', :p, true)"), {"p": f'"{schema}"'})
    mapped = conn.execution_options(schema_translate_map={None: schema})
    _upgrade(mapped, "tenant", schema, target)
    conn.execute(text("select set_config('search_path', '', true)"))


_locks: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Lock] = weakref.WeakKeyDictionary()


def _alembic_lock() -> asyncio.Lock:
    loop = asyncio.get_running_loop()
    lock = _locks.get(loop)
    if lock is None:
        lock = _locks[loop] = asyncio.Lock()
    return lock


async def run_core_upgrade(conn: AsyncConnection, target: str = "head") -> None:
    async with _alembic_lock():
        await conn.run_sync(upgrade_core, target)


async def run_tenant_upgrade(conn: AsyncConnection, slug: str, target: str = "head") -> None:
    async with _alembic_lock():
        await conn.run_sync(upgrade_tenant, slug, target)


@cache
def tenant_ddl() -> str:
    """The whole tenant tree, base to head, as one schema-less SQL script (rendered once)."""
    from alembic.config import Config
    from alembic.runtime.environment import EnvironmentContext

    script = script_directory("tenant")
    target = head("tenant")
    out = io.StringIO()

    def steps(rev: object, _context: object) -> object:
        return script._upgrade_revs(target, rev)

    with EnvironmentContext(Config(), script, fn=steps, as_sql=True, destination_rev=target) as env:
        env.configure(
            dialect_name="postgresql", output_buffer=out, transactional_ddl=False, literal_binds=True
        )
        env.run_migrations()
    return out.getvalue()


async def provision_tenant_schema(conn: AsyncConnection, slug: str) -> None:
    """Create the tenant's schema with every table at head, in the caller's transaction."""
    schema = tenant_schema(slug)
    await conn.execute(text(f'create schema "{schema}"'))
    await conn.execute(text("select set_config('search_path', :p, true)"), {"p": f'"{schema}"'})
    raw = await conn.get_raw_connection()
    # asyncpg's execute() without arguments takes a multi-statement script in one round trip.
    await raw.driver_connection.execute(tenant_ddl())  # type: ignore[union-attr]
    await conn.execute(text("select set_config('search_path', '', true)"))


def current_revision(conn: Connection, schema: str) -> str | None:
    """The revision a schema is at, or None if it was never migrated."""
    from alembic.runtime.migration import MigrationContext

    context = MigrationContext.configure(conn, opts={"version_table_schema": schema})
    return context.get_current_revision()
