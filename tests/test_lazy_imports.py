"""The API process imports what serving GraphQL needs, and the rest on first use.

The MCP SDK (with pydantic and jsonschema), Alembic, the OPA client (with aiohttp) and
httpx cost some 90 MB of RSS together; an API process that never serves /mcp, never runs a
migration, uses the embedded policy engine and verifies only its own tokens must not hold
them (docs/performance.md, memory). Checked in a fresh interpreter: the app is built as
`uds serve` builds it.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

LAZY = ("mcp", "mcp_types", "pydantic", "jsonschema", "alembic", "mako", "opa_client", "aiohttp", "httpx")

PROBE = """
import json, sys
from pathlib import Path
import uds.cli
from uds.app import create_app
from uds.settings import Settings
create_app(Settings(database_url="postgresql://x@127.0.0.1/x", redis_url="redis://127.0.0.1/0",
                    data_dir=Path(sys.argv[1])))
print(json.dumps(sorted({name.split(".")[0] for name in sys.modules})))
"""


def test_api_app_does_not_import_what_it_serves_lazily(tmp_path: Path) -> None:
    out = subprocess.run(
        [sys.executable, "-c", PROBE, str(tmp_path)], check=True, capture_output=True, text=True
    ).stdout
    loaded = set(json.loads(out.splitlines()[-1]))
    assert "strawberry" in loaded  # the probe did build the app
    assert loaded.isdisjoint(LAZY), sorted(loaded & set(LAZY))
