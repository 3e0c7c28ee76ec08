"""Health endpoints, and the exported schema matching the code."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from redis.asyncio import Redis

from conftest import Server

ROOT = Path(__file__).resolve().parents[1]


async def test_healthz(server: Server) -> None:
    response = await server.http.get(f"{server.url}/healthz")
    assert response.status_code == 200 and response.json() == {"status": "ok"}


async def test_readyz(server: Server) -> None:
    response = await server.http.get(f"{server.url}/readyz")
    assert response.status_code == 200
    assert response.json()["checks"] == {"database": "ok", "redis": "ok", "policy": "ok"}


async def test_readyz_reports_redis_down(server: Server) -> None:
    real = server.services.redis
    server.services.redis = Redis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=0.5)
    try:
        response = await server.http.get(f"{server.url}/readyz")
    finally:
        await server.services.redis.aclose()
        server.services.redis = real
    assert response.status_code == 503
    assert response.json()["checks"]["redis"] == "failing"


def test_schema_file_matches_code() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "uds.cli", "schema", "--check"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr


def test_schema_check_detects_drift(tmp_path: Path) -> None:
    from uds import cli

    stale = tmp_path / "schema.graphql"
    stale.write_text("type Query { old: Int }\n")
    original = cli.SCHEMA_FILE
    cli.SCHEMA_FILE = stale
    try:
        assert cli.main(["schema", "--check"]) == 1
    finally:
        cli.SCHEMA_FILE = original
