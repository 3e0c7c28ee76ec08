"""Who may read /metrics: the allow-list, the token, the off switch, the worker's own port."""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import pytest

from conftest import Server, _free_port, start_server
from observability.kit import parse
from uds.observability import metrics
from uds.observability.exposition import MetricsAccess, serve_worker_metrics
from uds.settings import Settings

ROOT = Path(__file__).resolve().parents[2]


async def test_refused_from_outside_the_allow_list(obs_settings: Settings, obs_server: Server) -> None:
    async for server in start_server(replace(obs_settings, metrics_allow=("10.20.30.0/24", "fd00::/8"))):
        response = await server.http.get(f"{server.url}/metrics")
        assert response.status_code == 403
        assert response.json()["errors"][0]["extensions"]["code"] == "FORBIDDEN"
        assert "uds_requests_total" not in response.text
        # GraphQL on the same server is not affected.
        status, _ = await server.gql("{ me { subject } }", token=server.token("a@x"))
        assert status == 200
    metrics.configure_metrics(obs_settings)


async def test_a_token_is_required_when_set(obs_settings: Settings, obs_server: Server) -> None:
    async for server in start_server(replace(obs_settings, metrics_token="scrape-me-7f3a")):
        url = f"{server.url}/metrics"
        for headers in ({}, {"authorization": "Bearer wrong"}, {"authorization": "scrape-me-7f3a"}):
            response = await server.http.get(url, headers=headers)
            assert response.status_code == 401, headers
            assert response.headers["www-authenticate"].startswith("Bearer")
        response = await server.http.get(url, headers={"authorization": "Bearer scrape-me-7f3a"})
        assert response.status_code == 200 and "uds_requests_total" in response.text
    metrics.configure_metrics(obs_settings)


def test_allow_list_matching() -> None:
    access = MetricsAccess(Settings(metrics_allow=("10.0.0.0/8", "::1")))
    assert access.refusal("10.1.2.3", None) is None
    assert access.refusal("::ffff:10.1.2.3", None) is None, "IPv4-mapped IPv6 counts as IPv4"
    assert access.refusal("::1", None) is None
    for outside in ("11.0.0.1", "127.0.0.1", "fe80::1", None, "", "not-an-address"):
        refusal = access.refusal(outside, None)
        assert refusal is not None and refusal.code == "FORBIDDEN", outside


async def test_metrics_off_means_no_endpoint_and_no_counting(
    obs_settings: Settings, obs_server: Server
) -> None:
    async for server in start_server(replace(obs_settings, metrics_enabled=False)):
        assert (await server.http.get(f"{server.url}/metrics")).status_code == 404
        before = parse(metrics.exposition().decode())
        status, _ = await server.gql("query ObsSilent { me { subject } }", token=server.token("a@x"))
        assert status == 200
        after = parse(metrics.exposition().decode())
        # (other tests in this process may have sent the same document to servers with metrics)
        assert after.total("uds_requests_total", operation="ObsSilent") == before.total(
            "uds_requests_total", operation="ObsSilent"
        )
        assert after.total("uds_policy_decisions_total") == before.total("uds_policy_decisions_total")
        response = await server.http.get(f"{server.url}/healthz", headers={"x-request-id": "still-here"})
        assert response.headers["x-request-id"] == "still-here", "request ids do not depend on metrics"
    metrics.configure_metrics(obs_settings)


async def test_a_worker_serves_its_own_metrics_port(obs_settings: Settings) -> None:
    port = _free_port()
    settings = replace(obs_settings, worker_metrics_port=port)
    async with serve_worker_metrics(settings) as server:
        await _started(server)
        async with httpx.AsyncClient() as http:
            response = await http.get(f"http://127.0.0.1:{port}/metrics")
            assert response.status_code == 200
            assert "uds_jobs_total" in response.text or "uds_jobs_running" in response.text
    refusing = replace(settings, worker_metrics_port=_free_port(), metrics_allow=("192.0.2.0/24",))
    async with serve_worker_metrics(refusing) as server:
        await _started(server)
        async with httpx.AsyncClient() as http:
            response = await http.get(f"http://127.0.0.1:{refusing.worker_metrics_port}/metrics")
            assert response.status_code == 403


async def _started(server: Any) -> None:
    for _ in range(500):
        if server.started:
            return
        await asyncio.sleep(0.02)
    pytest.fail("the worker's metrics server did not start")


def test_several_server_processes_add_up(obs_settings: Settings, tmp_path: Path) -> None:
    """`uds serve --workers 2`: requests land on either process; /metrics counts them all."""
    port = _free_port()
    env = dict(os.environ)
    env.update(
        UDS_DATABASE_URL=obs_settings.database_url or "",
        UDS_REDIS_URL=obs_settings.redis_url or "",
        UDS_REDIS_PREFIX=obs_settings.redis_prefix,
        UDS_DATA_DIR=str(obs_settings.data_dir),
        PROMETHEUS_MULTIPROC_DIR=str(tmp_path / "prom"),
        UDS_LOG_LEVEL="WARNING",
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "uds.cli", "serve", "--workers", "2", "--port", str(port)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        with httpx.Client(timeout=10) as http:
            deadline = time.monotonic() + 60
            while True:
                assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
                with contextlib.suppress(httpx.HTTPError):
                    if http.get(f"{base}/healthz").status_code == 200:
                        break
                if time.monotonic() > deadline:
                    pytest.fail("uds serve --workers 2 did not start")
                time.sleep(0.2)
            before = parse(http.get(f"{base}/metrics").text)
            for _ in range(40):
                # A new connection each time, so both processes get some of them.
                with httpx.Client(timeout=10) as one:
                    response = one.post(f"{base}/graphql", json={"query": "query ObsMulti { __typename }"})
                    assert response.status_code == 200
            # Each process applies its tallied counts at least once a second (and the one
            # scraped, at once): the other's arrive within that.
            for _ in range(50):
                after = parse(http.get(f"{base}/metrics").text)
                counted = after.total("uds_requests_total", operation="ObsMulti") - before.total(
                    "uds_requests_total", operation="ObsMulti"
                )
                if counted >= 40:
                    break
                time.sleep(0.1)
        assert counted == 40
        files = {p.name.split("_")[0] for p in (tmp_path / "prom").glob("*.db")}
        assert "counter" in files and "histogram" in files
        writers = {p.name.rsplit("_", 1)[1] for p in (tmp_path / "prom").glob("counter_*.db")}
        assert len(writers) >= 2, "each server process writes its own file"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if proc.stderr:
            proc.stderr.close()
