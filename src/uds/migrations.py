"""Run the two Alembic trees: `core` (schema `uds`) and `tenant` (one tenant schema).

Alembic's env.py is bypassed on purpose: the revisions are loaded once per process and
run on a connection the caller owns, inside the caller's transaction. That is what makes
tenant provisioning atomic (row + schema + tables commit or vanish together) and cheap.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

from alembic.config import Config
from alembic.runtime.environment import EnvironmentContext
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, text

from uds.tenants.slugs import CORE_SCHEMA, tenant_schema

MIGRATIONS_DIR = Path(__file__).resolve().parents[2] / "migrations"
# Serialises concurrent `uds migrate` / `uds up` runs on one database (any fixed bigint).
CORE_LOCK_KEY = 0x75647301


@cache
def script_directory(tree: str) -> ScriptDirectory:
    return ScriptDirectory(str(MIGRATIONS_DIR / tree))


def head(tree: str) -> str:
    heads = script_directory(tree).get_heads()
    if len(heads) != 1:
        raise RuntimeError(f"migration tree {tree!r} must have exactly one head, has {heads}")
    return heads[0]


def _upgrade(conn: Connection, tree: str, version_schema: str, target: str) -> None:
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


def current_revision(conn: Connection, schema: str) -> str | None:
    """The revision a schema is at, or None if it was never migrated."""
    context = MigrationContext.configure(conn, opts={"version_table_schema": schema})
    return context.get_current_revision()
