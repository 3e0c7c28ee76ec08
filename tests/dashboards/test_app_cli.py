"""`uds dashboards generate`: progress bar, the URL, clear errors."""

from __future__ import annotations

import io
import re
from pathlib import Path

from dashboards.app_kit import World
from uds.dashboards.command import generate


async def test_cli_generates_and_prints_the_url(world: World) -> None:
    err, out = io.StringIO(), io.StringIO()
    code = await generate(
        world.server.settings,
        tenant=world.slug,
        source="demo-shop",
        goal="payment methods",
        actor="editor@d",
        out=err,
        stdout=out,
    )
    assert code == 0, err.getvalue()
    assert "dashboard [" in err.getvalue() and "100.0%" in err.getvalue()  # the progress bar
    url = out.getvalue().strip()
    found = re.fullmatch(r"http://\S+/dashboards/([0-9a-f-]{36})\S*", url)
    assert found, url
    data = await world.ok("query($id: ID!) { dashboard(id: $id) { goal widgets { id } } }", {"id": found[1]})
    assert data["dashboard"]["goal"] == "payment methods" and data["dashboard"]["widgets"]


async def test_cli_writes_the_picture(world: World, tmp_path: Path) -> None:
    err, out = io.StringIO(), io.StringIO()
    png = tmp_path / "d.png"
    code = await generate(
        world.server.settings,
        tenant=world.slug,
        source="demo-shop",
        goal="how many orders per status",
        max_widgets=2,
        png=png,
        actor="editor@d",
        out=err,
        stdout=out,
    )
    assert code == 0, err.getvalue()
    assert png.read_bytes().startswith(b"\x89PNG\r\n\x1a\n") and png.stat().st_size > 5_000
    assert f"wrote {png}" in err.getvalue()


async def test_cli_refuses_an_unknown_source(world: World) -> None:
    err = io.StringIO()
    code = await generate(
        world.server.settings, tenant=world.slug, source="nope", goal=None, actor="editor@d", out=err
    )
    assert code == 1
    assert "no data source named 'nope'" in err.getvalue()
    # A viewer cannot generate.
    code = await generate(
        world.server.settings, tenant=world.slug, source="demo-shop", goal=None, actor="viewer@d", out=err
    )
    assert code == 1 and "viewer@d is not an EDITOR or ADMIN" in err.getvalue()
