"""Connecting to a source: each way it can fail has its own clear error, none shows the
password, and none hangs."""

from __future__ import annotations

import socket
import time
import uuid
from dataclasses import replace

import asyncpg
import pytest

from datasources.conftest import PasswordCluster
from discovery.kit import connect_args
from uds.datasources.connect import SourceLimits, open_source
from uds.datasources.errors import SourceAuthFailed, SourceRefused, SourceUnreachable
from uds.datasources.guard import NetworkGuard
from uds.datasources.params import ConnectionParams
from uds.datasources.service import check_source

OPEN = NetworkGuard(enforce=False)
FAST = SourceLimits(connect_timeout=5, statement_timeout_ms=2_000, lock_timeout_ms=500)


async def test_the_right_password_connects(password_cluster: PasswordCluster) -> None:
    async with open_source(password_cluster.params, guard=OPEN, limits=FAST) as conn:
        assert await conn.fetchval("select current_user") == password_cluster.params.user


async def test_a_wrong_password_fails_as_such(password_cluster: PasswordCluster) -> None:
    wrong = replace(password_cluster.params, password="wrong-" + uuid.uuid4().hex)
    with pytest.raises(SourceAuthFailed) as info:
        async with open_source(wrong, guard=OPEN, limits=FAST):
            pass
    assert "password authentication failed" in info.value.message
    assert wrong.password not in info.value.message and password_cluster.password not in info.value.message
    check = await check_source(wrong, guard=OPEN, limits=FAST)
    assert (check.ok, check.error_kind) == (False, "auth_failed")


async def test_no_password_never_falls_back_to_the_hosts_pgpass(password_cluster: PasswordCluster) -> None:
    with pytest.raises(SourceAuthFailed):
        async with open_source(replace(password_cluster.params, password=""), guard=OPEN, limits=FAST):
            pass


async def test_a_closed_port_is_unreachable_at_once() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    params = ConnectionParams(host="127.0.0.1", port=port, database="d", user="u", password="secret-1")
    started = time.monotonic()
    check = await check_source(params, guard=OPEN, limits=FAST)
    assert time.monotonic() - started < 5
    assert (check.ok, check.error_kind) == (False, "unreachable")
    assert "connection refused" in check.message and "secret-1" not in check.message


async def test_a_host_that_never_answers_times_out() -> None:
    # A listening socket that never accepts: the TCP handshake completes (backlog) but
    # PostgreSQL's startup never answers, so only the connect timeout ends it.
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(1)
        params = ConnectionParams(
            host="127.0.0.1", port=s.getsockname()[1], database="d", user="u", sslmode="disable"
        )
        started = time.monotonic()
        with pytest.raises(SourceUnreachable, match="connect timeout"):
            async with open_source(params, guard=OPEN, limits=SourceLimits(connect_timeout=1)):
                pass
        assert time.monotonic() - started < 4


async def test_a_missing_database_says_so(admin_params: ConnectionParams) -> None:
    check = await check_source(
        admin_params.with_database("no_such_db_" + uuid.uuid4().hex[:6]), guard=OPEN, limits=FAST
    )
    assert check.error_kind == "unreachable" and "does not exist" in check.message


async def test_the_guard_runs_before_any_connection() -> None:
    prod = NetworkGuard(enforce=True)
    params = ConnectionParams(host="127.0.0.1", database="d", user="u")
    with pytest.raises(SourceRefused):
        async with open_source(params, guard=prod, limits=FAST):
            pass
    check = await check_source(params, guard=prod, limits=FAST)
    assert check.error_kind == "refused"


async def test_a_good_source_reports_version_and_readable_tables(admin_params: ConnectionParams) -> None:
    conn = await asyncpg.connect(**connect_args(admin_params))
    await conn.close()
    check = await check_source(admin_params, guard=OPEN, limits=FAST)
    assert check.ok and check.server_version and check.latency_ms is not None
