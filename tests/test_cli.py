"""The `uds` command against the test servers, as a user would run it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from sqlalchemy import text

from conftest import Server, make_tenant, unique_slug
from uds.migrations import head
from uds.tenants.slugs import tenant_schema

ROOT = Path(__file__).resolve().parents[1]


def uds(server: Server, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "UDS_DATABASE_URL": server.settings.database_url or "",
        "UDS_REDIS_URL": server.settings.redis_url or "",
        "UDS_DATA_DIR": str(server.settings.data_dir),
        "UDS_REDIS_PREFIX": server.settings.redis_prefix,
    }
    return subprocess.run(
        [sys.executable, "-m", "uds.cli", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        input=stdin,
        timeout=60,
        check=False,
    )


async def test_tenant_commands_and_token(server: Server) -> None:
    slug = unique_slug("cli")
    created = uds(server, "tenants", "create", slug, "--name", "CLI Co")
    assert created.returncode == 0, created.stderr
    again = uds(server, "tenants", "create", slug)
    assert again.returncode == 1 and "already exists" in again.stderr
    bad = uds(server, "tenants", "create", "Bad Slug!")
    assert bad.returncode == 1 and "tenant slug must be" in bad.stderr

    token = uds(server, "token", "create", "--sub", "cli-user@x", "--tenant", slug, "--role", "ADMIN")
    assert token.returncode == 0, token.stderr
    assert token.stdout.count("\n") == 1 and token.stdout.count(".") == 2  # only the token
    status, body = await server.gql("{ tenant { slug name } }", token=token.stdout.strip(), tenant=slug)
    assert body["data"]["tenant"] == {"slug": slug, "name": "CLI Co"}

    assert uds(server, "tenants", "suspend", slug).returncode == 0
    listed = uds(server, "tenants", "list")
    assert any(line.split()[:2] == [slug, "suspended"] for line in listed.stdout.splitlines())
    assert uds(server, "tenants", "resume", slug).returncode == 0

    refused = uds(server, "tenants", "delete", slug, stdin="not-the-slug\n")
    assert refused.returncode == 1 and "confirm" in refused.stderr
    deleted = uds(server, "tenants", "delete", slug, "--yes")
    assert deleted.returncode == 0, deleted.stderr
    status, body = await server.gql("{ tenant { slug } }", token=token.stdout.strip(), tenant=slug)
    assert status == 403  # the CLI's change reached the server's cache through Redis


async def test_token_create_platform_admin_without_database(server: Server, tmp_path: Path) -> None:
    result = uds(server, "token", "create", "--sub", "ops@x", "--platform-admin")
    assert result.returncode == 0, result.stderr
    status, body = await server.gql("{ me { platformRoles } }", token=result.stdout.strip())
    assert body["data"]["me"]["platformRoles"] == ["platform-admin"]


async def test_migrate_all_tenants(server: Server) -> None:
    """A tenant schema left at the first revision is brought to head."""
    behind = await make_tenant(server)
    schema = tenant_schema(behind)
    async with server.services.engine.begin() as conn:
        # Undo every revision after t0001: drop the tables they created.
        later = (
            await conn.scalars(
                text("select tablename from pg_tables where schemaname = :s and tablename <> all(:keep)"),
                {"s": schema, "keep": ["audit_log", "alembic_version"]},
            )
        ).all()
        for table in later:
            await conn.execute(text(f'drop table if exists "{schema}"."{table}" cascade'))
        await conn.execute(text(f"update \"{schema}\".alembic_version set version_num = 't0001'"))
    result = uds(server, "migrate", "--all-tenants")
    assert result.returncode == 0, result.stderr
    assert "tenant schemas are up to date" in result.stderr
    assert "tenants [" in result.stderr  # the progress bar
    async with server.services.engine.connect() as conn:
        assert await conn.scalar(text(f'select version_num from "{schema}".alembic_version')) == head(
            "tenant"
        )
        assert await conn.scalar(text(f'select count(*) from "{schema}".jobs')) == 0
