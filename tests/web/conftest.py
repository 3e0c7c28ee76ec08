"""Fixtures for the web tests: a server with a worker and the demo shop discovered (the
dashboards app fixtures), a generated dashboard, and headless Chromium when it is here.

Browser tests need Debian's `chromium` (/usr/bin/chromium, or UDS_CHROMIUM) and the
`playwright` package. Without them they are skipped, and the end of the run says so in a
section of its own, so a missing browser is never mistaken for a pass.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any

import pytest

from conftest import Server, start_server
from dashboards.app_kit import World, make_world, running_worker
from discovery.kit import drop_database
from uds.datasources.params import ConnectionParams, params_from_url
from uds.demo import build_demo_database
from uds.settings import Settings

CHROMIUM = os.environ.get("UDS_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
GOAL = "how many orders per status"

_browser_skips: list[str] = []


def browser_missing() -> str | None:
    """Why the browser tests cannot run here, or None."""
    if not os.path.exists(CHROMIUM):
        return f"Chromium not found at {CHROMIUM} (apt-get install -y chromium, or set UDS_CHROMIUM)"
    try:
        import playwright.async_api  # noqa: F401
    except ImportError:
        return "the playwright package is not installed (pip install -e '.[test]')"
    return None


# Package scope: the server, its worker and their connections go when tests/web is done
# (the PostgreSQL server is shared with other test sessions; its connections are few).


@pytest.fixture(scope="package")
async def web_server(migrated: Settings) -> AsyncIterator[Server]:
    """A server and worker on a Redis namespace of their own, with small pools."""
    settings = replace(
        migrated, redis_prefix=f"uds-test-web-{uuid.uuid4().hex[:8]}:", job_lease_seconds=3.0, db_pool_size=3
    )
    async for s in start_server(settings):
        async with running_worker(settings):
            yield s


@pytest.fixture(scope="package")
async def web_shop_db(base_settings: Settings) -> AsyncIterator[ConnectionParams]:
    assert base_settings.database_url
    admin = params_from_url(base_settings.database_url, database="postgres")
    name = f"uds_web_shop_{uuid.uuid4().hex[:8]}"
    await build_demo_database(admin, rows=3_000, database=name)
    try:
        yield admin.with_database(name)
    finally:
        await drop_database(admin, name)


@pytest.fixture(scope="package")
async def world(web_server: Server, web_shop_db: ConnectionParams) -> World:
    """A tenant with a viewer, an editor and an admin, and the demo shop discovered."""
    return await make_world(web_server, web_shop_db, source_name="demo-shop", schemas=["shop"])


@pytest.fixture(scope="package")
async def shop_dashboard(world: World) -> dict[str, Any]:
    """A dashboard generated from the demo shop (KPIs, bars, time series...)."""
    return await world.dashboard(GOAL)


@pytest.fixture(scope="package")
async def browser() -> AsyncIterator[Any]:
    reason = browser_missing()
    if reason is not None:
        _browser_skips.append(reason)
        pytest.skip(f"BROWSER TESTS SKIPPED: {reason}")
    from playwright.async_api import async_playwright

    async with async_playwright() as p:
        b = await p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS, headless=True)
        try:
            yield b
        finally:
            await b.close()


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if _browser_skips:
        terminalreporter.section("browser tests skipped", sep="!", red=True, bold=True)
        for reason in sorted(set(_browser_skips)):
            terminalreporter.line(f"tests/web browser tests did NOT run: {reason}", red=True, bold=True)
