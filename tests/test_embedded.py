"""Embedded PostgreSQL + Valkey: start, persist across restarts, reuse, recover after a kill."""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
import redis.asyncio as aioredis
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

import uds
from uds.embedded import EmbeddedServers, start_embedded
from uds.errors import ConfigError

# A child process that starts the servers, prints their URLs, then waits to be killed.
_OWNER_SCRIPT = """
import json, sys, time
from pathlib import Path
from uds.embedded import start_embedded
servers = start_embedded(Path(sys.argv[1]))
print(json.dumps({"database_url": servers.database_url, "redis_url": servers.redis_url}))
sys.stdout.flush()
if sys.argv[2] == "wait":
    time.sleep(120)
"""


def _gone(pid: int, timeout: float = 5) -> bool:
    """Whether pid exits within timeout; a zombie counts as exited (pid 1 may not reap)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
                return True
        except psutil.NoSuchProcess:
            return True
        time.sleep(0.05)
    return False


def _server_processes(root: Path) -> list[psutil.Process]:
    """Live processes working under root: postgres runs in PGDATA, valkey in its data dir."""
    found = []
    for process in psutil.process_iter(["pid", "cwd", "status"]):
        cwd = process.info["cwd"]
        if process.info["status"] == psutil.STATUS_ZOMBIE or not cwd or process.pid == os.getpid():
            continue
        if Path(cwd).is_relative_to(root):
            found.append(process)
    return found


@pytest.fixture
def data_dir(tmp_path: Path) -> Iterator[Path]:
    """A fresh data dir; fails the test if a server is still running under it afterwards."""
    yield tmp_path / "uds"
    deadline = time.monotonic() + 5
    while (left := _server_processes(tmp_path)) and time.monotonic() < deadline:
        time.sleep(0.1)
    for process in left:
        process.kill()
    assert not left, f"servers left running: {[p.info for p in left]}"


def _child(data_dir: Path, mode: str) -> subprocess.Popen[str]:
    # The package may not be installed in the venv: hand the child our import path.
    src = str(Path(uds.__file__).resolve().parents[1])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [src, os.environ.get("PYTHONPATH")]))}
    return subprocess.Popen(
        [sys.executable, "-c", _OWNER_SCRIPT, str(data_dir), mode],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )


def _read_urls(child: subprocess.Popen[str]) -> dict[str, str]:
    assert child.stdout is not None
    ready, _, _ = select.select([child.stdout], [], [], 30)
    assert ready, "child did not start the servers within 30s"
    return json.loads(child.stdout.readline())


async def _write(servers: EmbeddedServers, value: str) -> None:
    engine = create_async_engine(servers.database_url)
    try:
        async with engine.begin() as conn:
            assert (await conn.execute(text("select 1"))).scalar_one() == 1
            await conn.execute(text("create table if not exists notes (body text not null)"))
            await conn.execute(text("insert into notes (body) values (:body)"), {"body": value})
    finally:
        await engine.dispose()
    client = aioredis.from_url(servers.redis_url)
    try:
        await client.set("note", value)
        assert await client.get("note") == value.encode()
    finally:
        await client.aclose()


async def _read(servers: EmbeddedServers) -> tuple[list[str], bytes | None]:
    engine = create_async_engine(servers.database_url)
    try:
        async with engine.connect() as conn:
            rows = list((await conn.execute(text("select body from notes order by body"))).scalars())
    finally:
        await engine.dispose()
    client = aioredis.from_url(servers.redis_url)
    try:
        return rows, await client.get("note")
    finally:
        await client.aclose()


async def test_data_persists_across_stop_and_start(data_dir: Path) -> None:
    lines: list[str] = []
    servers = start_embedded(data_dir, progress=lines.append)
    try:
        assert "starting PostgreSQL..." in lines
        assert any(line.startswith("PostgreSQL ready (") for line in lines)
        await _write(servers, "first")
        info = json.loads((data_dir / "run" / "servers.json").read_text())
        assert info["owner_pid"] == os.getpid()
        assert info["database_url"] == servers.database_url
    finally:
        servers.stop()
    servers.stop()  # idempotent
    assert not (data_dir / "run" / "servers.json").exists()
    assert _gone(info["valkey_pid"])
    assert _gone(info["postgres_pid"])

    servers = start_embedded(data_dir)
    try:
        assert await _read(servers) == (["first"], b"first")
    finally:
        servers.stop()


async def test_second_caller_reuses_running_servers(data_dir: Path) -> None:
    owner = start_embedded(data_dir)
    try:
        # Same process: a second handle, whose stop() leaves the servers alone.
        again = start_embedded(data_dir)
        assert again == owner
        again.stop()
        await _write(owner, "shared")

        # Another process (e.g. a second `uds` command): it reuses, and exiting stops nothing.
        with _child(data_dir, "exit") as child:
            urls = _read_urls(child)
            assert child.wait(timeout=30) == 0
        assert urls == {"database_url": owner.database_url, "redis_url": owner.redis_url}
        assert await _read(owner) == (["shared"], b"shared")

        # Another database in the same cluster is created on demand.
        other = start_embedded(data_dir, database="other_db")
        assert other.database_url.startswith("postgresql+asyncpg://postgres@/other_db?")
        engine = create_async_engine(other.database_url)
        try:
            async with engine.connect() as conn:
                assert (await conn.execute(text("select current_database()"))).scalar_one() == "other_db"
        finally:
            await engine.dispose()
    finally:
        owner.stop()


async def test_servers_of_a_killed_owner_are_recovered(data_dir: Path) -> None:
    with _child(data_dir, "wait") as child:
        try:
            urls = _read_urls(child)
            orphaned = EmbeddedServers(database_url=urls["database_url"], redis_url=urls["redis_url"])
            await _write(orphaned, "before kill")
        finally:
            child.send_signal(signal.SIGKILL)
            child.wait(timeout=10)

    # Its servers outlive it, with its servers.json and pid files; the next start takes over.
    assert (data_dir / "run" / "servers.json").exists()
    lines: list[str] = []
    servers = start_embedded(data_dir, progress=lines.append)
    try:
        assert any("left running by a process that exited" in line for line in lines)
        assert servers.database_url == orphaned.database_url
        # The orphaned Valkey was shut down with SHUTDOWN, which saved its snapshot.
        assert await _read(servers) == (["before kill"], b"before kill")
    finally:
        servers.stop()


def test_bad_database_name_is_a_config_error(data_dir: Path) -> None:
    with pytest.raises(ConfigError, match="database name"):
        start_embedded(data_dir, database="no-dashes; drop")
