"""Shared fixtures: real PostgreSQL and Redis/Valkey, and a real UDS server on a free port.

With UDS_DATABASE_URL and UDS_REDIS_URL set, tests use those servers (in a database of
their own, dropped at the end); otherwise they start embedded PostgreSQL and Valkey.
"""

from __future__ import annotations

import asyncio
import os
import socket
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
import uvicorn
from sqlalchemy import make_url

from uds.api.wsframes import UdsWebSocketProtocol
from uds.app import create_app
from uds.auth.keys import SigningKey
from uds.datasources.params import params_from_url
from uds.db import make_engine
from uds.runtime import migrate_core
from uds.services import Services
from uds.settings import Settings


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("uds-data")


@pytest.fixture(scope="session")
def base_settings(data_dir: Path) -> Iterator[Settings]:
    """Settings pointing at a fresh test database and Redis."""
    env_db = os.environ.get("UDS_DATABASE_URL")
    env_redis = os.environ.get("UDS_REDIS_URL")
    stop = None
    if env_db and env_redis:
        admin_url, redis_url = env_db, env_redis
    else:
        from uds.embedded import start_embedded

        embedded = start_embedded(data_dir / "servers")
        admin_url, redis_url = embedded.database_url, embedded.redis_url
        stop = embedded.stop
    name = f"uds_test_{uuid.uuid4().hex[:8]}"
    asyncio.run(_create_database(admin_url, name))
    db_url = make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    try:
        yield Settings(
            database_url=db_url,
            redis_url=redis_url,
            data_dir=data_dir,
            mode="dev",
            # Test sessions may share one Redis (CI, several developers): keep keys apart.
            redis_prefix=f"uds-test-{uuid.uuid4().hex[:8]}:",
            # One test session sends thousands of requests as the same admin within
            # seconds; rate limits are tested on servers of their own (tests/limits).
            rate_limits=False,
            # Every test server shares this database, hence the event outbox, but each has
            # its own Redis prefix: only the servers of tests/events relay events.
            events_relay=False,
        )
    finally:
        asyncio.run(_drop_database(admin_url, name))
        if stop:
            stop()


def _asyncpg_dsn(url: str) -> dict[str, Any]:
    return replace(params_from_url(url), sslmode="disable").asyncpg_kwargs()


async def _create_database(admin_url: str, name: str) -> None:
    conn = await asyncpg.connect(**_asyncpg_dsn(admin_url))
    try:
        await conn.execute(f'create database "{name}"')
    finally:
        await conn.close()


async def _drop_database(admin_url: str, name: str) -> None:
    conn = await asyncpg.connect(**_asyncpg_dsn(admin_url))
    try:
        await conn.execute(f'drop database if exists "{name}" with (force)')
    finally:
        await conn.close()


@pytest.fixture(scope="session")
def settings(base_settings: Settings) -> Settings:
    return base_settings


@pytest.fixture(scope="session")
async def migrated(settings: Settings) -> Settings:
    engine = make_engine(settings, pool_size=1)
    try:
        await migrate_core(engine)
    finally:
        await engine.dispose()
    return settings


@dataclass
class Server:
    """A UDS server running in this process, and ways to call it."""

    url: str
    settings: Settings
    key: SigningKey
    http: httpx.AsyncClient
    services: Services

    def token(
        self, sub: str, *, admin: bool = False, ttl: int = 3600, kind: str = "user", tenant: str | None = None
    ) -> str:
        return self.key.issue(
            sub,
            issuer=self.settings.own_issuer,
            audience=self.settings.audience,
            ttl=ttl,
            roles=["platform-admin"] if admin else [],
            kind=kind,
            tenant=tenant,
        )

    async def gql(
        self,
        query: str,
        variables: dict[str, Any] | None = None,
        *,
        token: str | None = None,
        tenant: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, dict[str, Any]]:
        sent = dict(headers or {})
        if token:
            sent["authorization"] = f"Bearer {token}"
        if tenant is not None:
            sent["x-tenant-id"] = tenant
        response = await self.http.post(
            f"{self.url}/graphql", json={"query": query, "variables": variables or {}}, headers=sent
        )
        return response.status_code, response.json()

    async def admin(self, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
        """Run as a platform admin; fail the test on any GraphQL error."""
        status, body = await self.gql(query, variables, token=self.token("root@test", admin=True))
        assert status == 200 and "errors" not in body, body
        return body["data"]  # type: ignore[no-any-return]


async def start_server(settings: Settings) -> AsyncIterator[Server]:
    port = _free_port()
    # Keep-alive longer than any pause between a test's requests: uvicorn's default (5 s)
    # can close a pooled connection just as the client reuses it (httpx.ReadError).
    config = uvicorn.Config(
        create_app(settings),
        host="127.0.0.1",
        port=port,
        log_level="warning",
        lifespan="on",
        loop="asyncio",
        timeout_keep_alive=300,
        ws=UdsWebSocketProtocol,  # as `uds serve` (live subscription events as frames)
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()
        await asyncio.sleep(0.02)
    services = server.lifespan.state["services"]  # what the app's lifespan built
    async with httpx.AsyncClient(timeout=30) as http:
        yield Server(f"http://127.0.0.1:{port}", settings, services.signing_key, http, services)
    server.should_exit = True
    await task


@pytest.fixture(scope="session")
async def server(migrated: Settings) -> AsyncIterator[Server]:
    async for s in start_server(migrated):
        yield s


@pytest.fixture(scope="session")
async def small_pool_server(migrated: Settings) -> AsyncIterator[Server]:
    """A second server whose database pool has a single connection."""
    async for s in start_server(replace(migrated, db_pool_size=1)):
        yield s


CREATE_TENANT = """
mutation($slug: String!, $name: String!) {
  admin { createTenant(input: {slug: $slug, name: $name}) {
    __typename ... on Tenant { slug status } ... on ValidationError { message }
    ... on Conflict { message } ... on NotAllowed { message reasons } } }
}"""

ADD_MEMBER = """
mutation($slug: String!, $subject: String!, $role: TenantRole!) {
  admin { addMember(slug: $slug, subject: $subject, role: $role) {
    __typename ... on Member { subject role } ... on NotFound { message } } }
}"""


def unique_slug(prefix: str = "t") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


async def make_tenant(server: Server, slug: str | None = None, members: dict[str, str] | None = None) -> str:
    slug = slug or unique_slug()
    data = await server.admin(CREATE_TENANT, {"slug": slug, "name": slug.title()})
    assert data["admin"]["createTenant"]["__typename"] == "Tenant", data
    for subject, role in (members or {}).items():
        data = await server.admin(ADD_MEMBER, {"slug": slug, "subject": subject, "role": role})
        assert data["admin"]["addMember"]["__typename"] == "Member", data
    return slug
