"""Discovery is safe to point at production: it cannot write, it is bounded in time, it
fails clearly when the source misbehaves, and it survives objects that do."""

from __future__ import annotations

import asyncio
import socket
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import replace

import asyncpg
import pytest

from discovery.kit import OPEN, TEST_OPTIONS, connect_args, drop_database, execute
from uds.datasources.connect import SourceLimits, open_source
from uds.datasources.errors import SourceAccessDenied, SourceGone, SourceTimeout, SourceUnreachable
from uds.datasources.params import ConnectionParams
from uds.demo import build_demo_database
from uds.discovery.budget import Budget
from uds.discovery.engine import discover

FAST = SourceLimits(connect_timeout=5, statement_timeout_ms=1_000, lock_timeout_ms=300)


@pytest.fixture
async def shop(admin_params: ConnectionParams) -> AsyncIterator[ConnectionParams]:
    """A small demo shop of this test's own (about 6 000 rows in all)."""
    name = f"uds_shop_{uuid.uuid4().hex[:8]}"
    await build_demo_database(admin_params, rows=2_000, database=name)
    try:
        yield admin_params.with_database(name)
    finally:
        await drop_database(admin_params, name)


@pytest.fixture
async def role(admin_params: ConnectionParams) -> AsyncIterator[str]:
    """A login role of this test's own (trust auth: no password needed), dropped afterwards."""
    name = f"uds_role_{uuid.uuid4().hex[:8]}"
    conn = await asyncpg.connect(**connect_args(admin_params))
    try:
        await conn.execute(f"create role {name} login")
        yield name
    finally:
        await conn.execute(f"drop role if exists {name}")
        await conn.close()


async def fingerprint(params: ConnectionParams) -> dict[str, object]:
    """Write counters and a checksum of every row of every shop table."""
    conn = await asyncpg.connect(**connect_args(params))
    try:
        await conn.execute("select pg_stat_clear_snapshot()")
        counters = {
            r["relname"]: (r["n_tup_ins"], r["n_tup_upd"], r["n_tup_del"])
            for r in await conn.fetch(
                "select relname, n_tup_ins, n_tup_upd, n_tup_del from pg_stat_user_tables where schemaname = 'shop'"
            )
        }
        sums = {}
        for (name,) in await conn.fetch(
            "select relname from pg_class where relnamespace = 'shop'::regnamespace and relkind = 'r'"
        ):
            sums[name] = await conn.fetchval(
                f"select md5(coalesce(string_agg(t::text, '|' order by t::text), '')) from shop.{name} t"
            )
        schema = await conn.fetchval(
            "select md5(string_agg(c.relname || ':' || a.attname || ':' || a.atttypid, ',' order by 1)) "
            "from pg_attribute a join pg_class c on c.oid = a.attrelid "
            "where c.relnamespace = 'shop'::regnamespace and a.attnum > 0"
        )
        return {"counters": counters, "sums": sums, "schema": schema}
    finally:
        await conn.close()


async def test_discovery_as_a_user_with_write_rights_changes_nothing(
    role: str, shop: ConnectionParams
) -> None:
    await execute(
        shop,
        f"grant all on schema shop to {role}",
        f"grant all on all tables in schema shop to {role}",
        f"grant all on all sequences in schema shop to {role}",
    )
    as_writer = replace(shop, user=role)
    before = await fingerprint(shop)
    snapshot = await discover(as_writer, budget=Budget(rows=1_000_000), guard=OPEN, options=TEST_OPTIONS)
    assert len(snapshot.tables) >= 7
    await asyncio.sleep(0.3)  # statistics of the discovery session are flushed when it ends
    assert await fingerprint(shop) == before

    # The session it uses refuses writes even though the role may write.
    async with open_source(as_writer, guard=OPEN, limits=FAST) as conn:
        with pytest.raises(asyncpg.ReadOnlySQLTransactionError):
            await conn.execute("insert into shop.categories (id, name) values (999, 'x')")
        assert await conn.fetchval("show transaction_read_only") == "on"
        assert await conn.fetchval("show statement_timeout") == "1s"
        assert await conn.fetchval("show lock_timeout") == "300ms"
        assert await conn.fetchval("show application_name") == "uds-discovery"


async def test_the_session_is_visible_to_the_dba_as_uds_discovery(shop: ConnectionParams) -> None:
    seen: list[str] = []

    async def progress(fraction: float, phase: str, message: str) -> None:
        if phase == "profiles" and not seen:
            conn = await asyncpg.connect(**connect_args(shop))
            try:
                seen.extend(
                    r[0]
                    for r in await conn.fetch(
                        "select application_name from pg_stat_activity where datname = $1 and pid <> pg_backend_pid()",
                        shop.database,
                    )
                )
            finally:
                await conn.close()

    await discover(shop, budget=Budget(rows=1_000_000), progress=progress, guard=OPEN, options=TEST_OPTIONS)
    assert "uds-discovery" in seen


async def test_a_slow_view_hits_the_statement_timeout_and_the_run_goes_on(shop: ConnectionParams) -> None:
    await execute(shop, "create view shop.slow_report as select 1 as answer from pg_sleep(30)")
    started = time.monotonic()
    snapshot = await discover(
        shop, budget=Budget(rows=1_000_000), guard=OPEN, limits=FAST, options=TEST_OPTIONS
    )
    assert time.monotonic() - started < 15
    slow = snapshot.table("shop", "slow_report")
    assert slow is not None and slow.profile_method == "skipped"
    assert any("statement timeout" in w for w in slow.warnings), slow.warnings
    orders = snapshot.table("shop", "orders")
    assert orders is not None and orders.profiled and orders.profile_method != "skipped"


async def test_a_locked_table_waits_only_the_lock_timeout(shop: ConnectionParams) -> None:
    holder = await asyncpg.connect(**connect_args(shop))
    try:
        tx = holder.transaction()
        await tx.start()
        await holder.execute("lock table shop.products in access exclusive mode")
        started = time.monotonic()
        snapshot = await discover(
            shop, budget=Budget(rows=1_000_000), guard=OPEN, limits=FAST, options=TEST_OPTIONS
        )
        assert time.monotonic() - started < 15
        await tx.rollback()
    finally:
        await holder.close()
    products = snapshot.table("shop", "products")
    assert products is not None and products.columns  # structure is still known
    assert any("lock timeout" in w for w in products.warnings), products.warnings


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_an_unreachable_source_fails_at_once_with_a_clear_error() -> None:
    params = ConnectionParams(host="127.0.0.1", port=closed_port(), database="x", user="u", password="pw-123")
    started = time.monotonic()
    with pytest.raises(SourceUnreachable) as info:
        await discover(params, budget=Budget(rows=1_000), guard=OPEN, limits=FAST)
    assert time.monotonic() - started < 5
    assert "connection refused" in info.value.message and "pw-123" not in info.value.message


async def test_a_database_dropped_mid_run_ends_it_clearly(
    admin_params: ConnectionParams, shop: ConnectionParams
) -> None:
    async def progress(fraction: float, phase: str, message: str) -> None:
        if phase == "profiles" and message == "shop.events":
            await drop_database(admin_params, shop.database)

    with pytest.raises(SourceGone) as info:
        await discover(
            shop, budget=Budget(rows=1_000_000), progress=progress, guard=OPEN, options=TEST_OPTIONS
        )
    assert shop.database in info.value.message


async def test_a_table_dropped_mid_run_is_left_out_with_a_warning(shop: ConnectionParams) -> None:
    async def progress(fraction: float, phase: str, message: str) -> None:
        # Reported as each table finishes: payments (later in the order) has not started.
        if phase == "profiles" and message == "shop.categories":
            await execute(shop, "drop table shop.payments")

    snapshot = await discover(
        shop, budget=Budget(rows=1_000_000), progress=progress, guard=OPEN, options=TEST_OPTIONS
    )
    assert snapshot.table("shop", "payments") is None
    assert "shop.payments was dropped during discovery" in snapshot.warnings


async def test_access_denied_to_a_table_keeps_its_structure(role: str, shop: ConnectionParams) -> None:
    await execute(
        shop,
        f"grant usage on schema shop to {role}",
        f"grant select on all tables in schema shop to {role}",
        f"revoke select on shop.payments from {role}",
    )
    snapshot = await discover(
        replace(shop, user=role), budget=Budget(rows=1_000_000), guard=OPEN, options=TEST_OPTIONS
    )
    payments = snapshot.table("shop", "payments")
    assert payments is not None and [c.name for c in payments.columns][:2] == ["id", "order_id"]
    assert payments.profile_method == "skipped" and all(c.profile is None for c in payments.columns)
    assert any("no SELECT privilege" in w for w in payments.warnings)


async def test_access_denied_to_the_database_fails_clearly(role: str, shop: ConnectionParams) -> None:
    await execute(shop, f'revoke connect on database "{shop.database}" from public')
    with pytest.raises(SourceAccessDenied) as info:
        await discover(replace(shop, user=role), budget=Budget(rows=1_000), guard=OPEN, limits=FAST)
    assert role in info.value.message


async def test_a_slow_catalog_ends_the_run_with_a_timeout(shop: ConnectionParams) -> None:
    # statement_timeout applies to every statement: a source too slow even for the
    # catalog queries fails with SourceTimeout instead of hanging.
    limits = SourceLimits(connect_timeout=5, statement_timeout_ms=1, lock_timeout_ms=1)
    with pytest.raises(SourceTimeout):
        await discover(shop, budget=Budget(rows=1_000), guard=OPEN, limits=limits)


async def test_the_row_budget_is_kept(shop: ConnectionParams) -> None:
    budget = 1_500  # the shop has about 6 000 rows
    snapshot = await discover(shop, budget=Budget(rows=budget), guard=OPEN, options=TEST_OPTIONS)
    assert snapshot.rows_read <= budget * 1.1  # page sampling returns about, not exactly, what it is asked
    events = snapshot.table("shop", "events")
    assert events is not None
    # The big table got a share of the budget, not all its rows: sampled smaller, or skipped.
    assert events.profile_method == "skipped" or (events.sample_size or 0) < 1_000, events
    assert all(t.columns for t in snapshot.tables)  # structure for all

    starved = await discover(shop, budget=Budget(rows=100), guard=OPEN, options=TEST_OPTIONS)
    assert any("budget" in w for t in starved.tables for w in t.warnings)
