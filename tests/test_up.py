"""`uds up` with nothing configured: embedded servers, demo tenant, dev token, clean stop."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from conftest import _free_port

ROOT = Path(__file__).resolve().parents[1]


def start_up(data_dir: Path, port: int) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("UDS_DATABASE_URL", "UDS_REDIS_URL")}
    env["UDS_DATA_DIR"] = str(data_dir)
    return subprocess.Popen(
        [sys.executable, "-m", "uds.cli", "up", "--port", str(port)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_ready(proc: subprocess.Popen[str], port: int) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"uds up exited: {proc.stderr.read() if proc.stderr else ''}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise AssertionError("uds up did not become ready")


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is stopped for our purpose.
    status = Path(f"/proc/{pid}/status")
    return status.exists() and "State:\tZ" not in status.read_text()


def run_once(data_dir: Path, stop_signal: int = signal.SIGINT) -> tuple[str, list[int]]:
    port = _free_port()
    proc = start_up(data_dir, port)
    try:
        wait_ready(proc, port)
        assert proc.stdout is not None
        token = proc.stdout.readline().strip()
        response = httpx.post(
            f"http://127.0.0.1:{port}/graphql",
            json={"query": "{ me { platformRoles } tenant { id slug } }"},
            headers={"authorization": f"Bearer {token}", "x-tenant-id": "demo"},
        )
        data = response.json()["data"]
        assert data["me"]["platformRoles"] == ["platform-admin"]
        assert data["tenant"]["slug"] == "demo"
        servers = json.loads((data_dir / "run" / "servers.json").read_text())
        pids = [int(v) for k, v in servers.items() if k.endswith("pid") and isinstance(v, int)]
    finally:
        proc.send_signal(stop_signal)
        try:
            proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()
            raise
    return data["tenant"]["id"], pids


def wait_gone(pids: list[int], seconds: float = 30) -> None:
    # Generous: on a loaded 2-core machine a fast shutdown of PostgreSQL can take a while.
    deadline = time.monotonic() + seconds
    while any(alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.1)


def test_up_twice_reuses_data_and_stops_everything(tmp_path: Path) -> None:
    data_dir = tmp_path / "uds"
    first_id, pids = run_once(data_dir, signal.SIGINT)
    assert pids, "servers.json names the server pids"
    wait_gone(pids)
    assert not [p for p in pids if alive(p)], "Ctrl-C stops the servers uds up started"
    second_id, pids = run_once(data_dir, signal.SIGTERM)
    assert second_id == first_id, "the second run reuses the data of the first"
    wait_gone(pids)
    assert not [p for p in pids if alive(p)], "SIGTERM stops them too"
