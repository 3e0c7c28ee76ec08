"""Credentials at rest: AES-GCM with UDS_SECRET_KEYS, newest first; rotation; the dev key
file; prod refuses to start without keys."""

from __future__ import annotations

import logging
import stat
import uuid
from pathlib import Path

import pytest
from sqlalchemy import select, text

from conftest import Server, make_tenant
from uds.datasources import service
from uds.datasources.credentials import CredentialCipher, CredentialError, generate_key, key_id, load_cipher
from uds.datasources.guard import NetworkGuard
from uds.datasources.models import DataSource
from uds.datasources.params import ConnectionParams
from uds.db import transaction
from uds.errors import ConfigError
from uds.services import Services
from uds.settings import Settings
from uds.tenants.slugs import tenant_schema

OPEN = NetworkGuard(enforce=False)


def test_sealed_values_open_only_with_their_key_and_context() -> None:
    cipher = CredentialCipher.from_texts([generate_key()])
    sealed = cipher.seal("hunter2", context="uds/data_source/acme/1")
    assert sealed.startswith(f"v1.{cipher.current_kid}.") and "hunter2" not in sealed
    assert cipher.open(sealed, context="uds/data_source/acme/1") == "hunter2"
    assert cipher.seal("hunter2", context="c") != cipher.seal("hunter2", context="c")  # fresh nonce
    with pytest.raises(CredentialError, match="altered or moved"):
        cipher.open(sealed, context="uds/data_source/other-tenant/1")
    tampered = sealed[:-2] + ("A" if sealed[-2] != "A" else "B") + sealed[-1]
    with pytest.raises(CredentialError):
        cipher.open(tampered, context="uds/data_source/acme/1")


def test_old_keys_still_open_and_rotation_moves_to_the_newest() -> None:
    old, new = generate_key(), generate_key()
    before = CredentialCipher.from_texts([old])
    sealed = before.seal("pw", context="ctx")
    after = CredentialCipher.from_texts([new, old])
    assert after.open(sealed, context="ctx") == "pw"
    assert after.needs_rotation(sealed)
    rotated = after.rotate(sealed, context="ctx")
    assert not after.needs_rotation(rotated)
    only_new = CredentialCipher.from_texts([new])
    assert only_new.open(rotated, context="ctx") == "pw"
    with pytest.raises(CredentialError, match=f"sealed with key {key_id(before._sealing)}"):
        only_new.open(sealed, context="ctx")


@pytest.mark.parametrize("bad", ["short", "!!!!", generate_key()[:-4]])
def test_a_malformed_key_fails_at_start_up(bad: str, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="UDS_SECRET_KEYS"):
        load_cipher(Settings(secret_keys=(bad,), data_dir=tmp_path))


def test_dev_mode_without_keys_makes_a_private_key_file_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    settings = Settings(mode="dev", data_dir=tmp_path)
    first = load_cipher(settings)
    path = tmp_path / "keys" / "secrets.key"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert "created dev credential key" in caplog.text and str(path) in caplog.text
    again = load_cipher(settings)
    assert again.current_kid == first.current_kid
    assert again.open(first.seal("x", context="c"), context="c") == "x"


async def test_prod_mode_without_keys_refuses_to_start(base_settings: Settings, tmp_path: Path) -> None:
    settings = Settings(
        mode="prod",
        data_dir=tmp_path,
        database_url=base_settings.database_url,
        redis_url=base_settings.redis_url,
    )
    with pytest.raises(ConfigError, match="UDS_SECRET_KEYS is required in prod mode"):
        load_cipher(settings)
    with pytest.raises(ConfigError, match="UDS_SECRET_KEYS"):
        await Services.start(settings)
    assert not (tmp_path / "keys" / "secrets.key").exists()


async def test_rotating_a_tenants_sources_re_seals_every_password(server: Server) -> None:
    slug = await make_tenant(server)
    old, new = generate_key(), generate_key()
    before = CredentialCipher.from_texts([old])
    params = ConnectionParams(
        host="db.example.com", database="d", user="u", password="pw-old-key", sslmode="require"
    )
    async with transaction(server.services.engine, slug) as tx:
        session = await tx.tenant()
        for i in range(3):
            await service.register_source(
                session, tenant=slug, name=f"s{i}", params=params, cipher=before, guard=OPEN, created_by="t"
            )
    after = CredentialCipher.from_texts([new, old])
    async with transaction(server.services.engine, slug) as tx:
        assert (await service.rotate_credentials(await tx.tenant(), tenant=slug, cipher=after)).rotated == 3
    async with transaction(server.services.engine, slug) as tx:
        session = await tx.tenant()
        assert (
            await service.rotate_credentials(session, tenant=slug, cipher=after)
        ).rotated == 0  # idempotent
        rows = (await session.scalars(select(DataSource))).all()
        only_new = CredentialCipher.from_texts([new])
        for row in rows:
            assert row.secret_kid == only_new.current_kid
            assert service.connection_params(row, tenant=slug, cipher=only_new).password == "pw-old-key"
        raw = (
            await session.execute(
                text(f"select string_agg(secret, ',') from {tenant_schema(slug)}.data_sources")
            )
        ).scalar_one()
    assert "pw-old-key" not in raw
    # Under a key the process does not know, the rows stay unusable: left for the CLI test.
    async with transaction(server.services.engine, slug) as tx:
        session = await tx.tenant()
        lost = await service.rotate_credentials(
            session, tenant=slug, cipher=CredentialCipher.from_texts([old])
        )
        assert lost.rotated == 0 and len(lost.failed) == 3 and "not in UDS_SECRET_KEYS" in lost.failed[0][1]
        await session.execute(text(f"delete from {tenant_schema(slug)}.data_sources"))


def test_uds_secrets_rotate_command(migrated: Settings) -> None:
    """The CLI re-seals every tenant's sources with the newest key (run in-process).

    The newest key here is the session's dev key, so every other source of the session
    is already under it and stays usable by the running test servers.
    """
    import asyncio
    import os

    from uds.cli import main

    dev = load_cipher(migrated)
    older = generate_key()
    slug = f"rot-{uuid.uuid4().hex[:8]}"

    async def seed() -> None:
        from uds.db import make_engine
        from uds.tenants import service as tenants

        engine = make_engine(migrated, pool_size=1)
        try:
            async with transaction(engine) as tx:
                await tenants.create_tenant(await tx.core(), slug=slug, name=slug, actor="t")
            async with transaction(engine, slug) as tx:
                await service.register_source(
                    await tx.tenant(),
                    tenant=slug,
                    name="s",
                    cipher=CredentialCipher.from_texts([older]),
                    guard=OPEN,
                    params=ConnectionParams(host="h", database="d", user="u", password="p"),
                    created_by="t",
                )
        finally:
            await engine.dispose()

    async def kid() -> str:
        from uds.db import make_engine

        engine = make_engine(migrated, pool_size=1)
        try:
            async with transaction(engine, slug) as tx:
                query = text(f"select secret_kid from {tenant_schema(slug)}.data_sources")
                return str((await (await tx.tenant()).execute(query)).scalar())
        finally:
            await engine.dispose()

    asyncio.run(seed())
    assert asyncio.run(kid()) == CredentialCipher.from_texts([older]).current_kid
    dev_key = (migrated.data_dir / "keys" / "secrets.key").read_text().strip()
    env = {
        "UDS_DATABASE_URL": migrated.database_url or "",
        "UDS_REDIS_URL": migrated.redis_url or "",
        "UDS_DATA_DIR": str(migrated.data_dir),
        "UDS_SECRET_KEYS": f"{dev_key},{older}",
    }
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        assert main(["secrets", "rotate"]) == 0
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    assert asyncio.run(kid()) == dev.current_kid
