"""The policy directory is a valid OPA bundle, and deploy/opa configures OPA to serve it.

There is no OPA binary here, so these check what OPA would refuse or silently skip.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import yaml

from uds.policies.catalogue import REGO_DIR

ROOT = Path(__file__).resolve().parents[2]


def test_manifest_roots_cover_every_package_and_data_key() -> None:
    roots = json.loads((REGO_DIR / ".manifest").read_text())["roots"]
    packages = [
        re.search(r"^package\s+([\w.]+)", p.read_text(), re.MULTILINE).group(1)  # type: ignore[union-attr]
        for p in REGO_DIR.glob("*.rego")
    ]
    assert "uds.authz" in packages
    data_keys = list(json.loads((REGO_DIR / "data.json").read_text()))
    for path in [p.replace(".", "/") for p in packages] + data_keys:
        assert any(path == root or path.startswith(root + "/") for root in roots), path


def test_only_data_json_holds_data() -> None:
    # OPA loads data only from files named data.json / data.yaml: a catalogue split into
    # another JSON file would silently never reach an OPA server.
    assert sorted(p.name for p in REGO_DIR.glob("*.json")) == ["data.json"]
    assert not list(REGO_DIR.rglob("*.yaml"))


def test_opa_configs_parse() -> None:
    for name in ("config.yaml", "bundle-server.yaml"):
        config = yaml.safe_load((ROOT / "deploy" / "opa" / name).read_text())
        assert config["decision_logs"] == {"console": False}
    pulled = yaml.safe_load((ROOT / "deploy" / "opa" / "bundle-server.yaml").read_text())
    assert pulled["bundles"]["uds"]["service"] in pulled["services"]


def test_policy_files_are_packaged() -> None:
    pyproject = (ROOT / "pyproject.toml").read_text()
    for pattern in ("policies/rego/*.rego", "policies/rego/*.json", "policies/rego/.manifest"):
        assert f'"{pattern}"' in pyproject
