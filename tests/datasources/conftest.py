"""Fixtures for data source tests: an admin connection to the test server, and a
PostgreSQL cluster that checks passwords.

The machine's PostgreSQL (and the embedded one) trust local connections, so a wrong
password would be accepted there. `password_cluster` therefore uses an embedded cluster
with a pg_hba.conf rule requiring scram-sha-256 for one role: the test session's own
embedded cluster when the tests run on embedded servers, else a private one started for
this purpose (a few seconds) and stopped at the end.
"""

from __future__ import annotations

import asyncio
import os
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import pytest

from discovery.kit import connect_args
from uds.datasources.params import ConnectionParams, params_from_url
from uds.errors import ConfigError
from uds.settings import Settings


@pytest.fixture(scope="session")
def admin_params(base_settings: Settings) -> ConnectionParams:
    assert base_settings.database_url
    return params_from_url(base_settings.database_url, database="postgres")


@dataclass(frozen=True)
class PasswordCluster:
    params: ConnectionParams  # role `user` with `password`, on database postgres
    password: str


@pytest.fixture(scope="session")
def password_cluster(data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[PasswordCluster]:
    stop = None
    if os.environ.get("UDS_DATABASE_URL") and os.environ.get("UDS_REDIS_URL"):
        from uds.embedded import start_embedded

        root = tmp_path_factory.mktemp("pwcluster")
        servers = start_embedded(root)
        url, pgdata, stop = servers.database_url, root / "postgres", servers.stop
    else:
        from uds.embedded import start_embedded

        servers = start_embedded(data_dir / "servers")  # reuses the session's servers
        url, pgdata = servers.database_url, data_dir / "servers" / "postgres"
    admin = params_from_url(url, database="postgres")
    role, password = f"uds_pw_{uuid.uuid4().hex[:8]}", f"right-{uuid.uuid4().hex[:8]}"
    hba = pgdata / "pg_hba.conf"
    original = hba.read_text()
    hba.write_text(f"local all {role} scram-sha-256\nhost all {role} 127.0.0.1/32 scram-sha-256\n" + original)

    async def prepare() -> None:
        conn = await asyncpg.connect(**connect_args(admin))
        try:
            await conn.execute("set password_encryption = 'scram-sha-256'")
            await conn.execute(f"create role {role} login password '{password}'")
            await conn.fetchval("select pg_reload_conf()")
        finally:
            await conn.close()

    async def cleanup() -> None:
        conn = await asyncpg.connect(**connect_args(admin))
        try:
            await conn.execute(f"drop role if exists {role}")
            await conn.fetchval("select pg_reload_conf()")
        finally:
            await conn.close()

    asyncio.run(prepare())
    try:
        params = ConnectionParams(
            host=admin.host,
            port=admin.port,
            database="postgres",
            user=role,
            password=password,
            sslmode=admin.sslmode,
        )
        yield PasswordCluster(params=params, password=password)
    finally:
        hba.write_text(original)
        asyncio.run(cleanup())
        if stop is not None:
            try:
                stop()
            except ConfigError as exc:
                # Seen on a loaded machine: Valkey (started alongside, unused here) slow to
                # write its snapshot. The cluster is private to this run; say so and go on.
                sys.stderr.write(f"password_cluster: {exc.message}: {'; '.join(exc.reasons)}\n")
