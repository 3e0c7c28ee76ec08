"""Fixtures for the web tests: a server with a worker and the demo shop discovered (the
dashboards app fixtures), a generated dashboard, and headless Chromium when it is here.

Browser tests need Debian's `chromium` (/usr/bin/chromium, or UDS_CHROMIUM) and the
`playwright` package. Without them they are skipped, and the end of the run says so in a
section of its own, so a missing browser is never mistaken for a pass.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import AsyncIterator
from typing import Any

import pytest

from dashboards.app_kit import World
from dashboards.conftest import dash_admin, dash_server, shop_db, world  # noqa: F401

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


@pytest.fixture(scope="session")
async def shop_dashboard(world: World) -> dict[str, Any]:  # noqa: F811
    """A dashboard generated from the demo shop (KPIs, bars, time series...)."""
    return await world.dashboard(GOAL)


@pytest.fixture(scope="session")
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
