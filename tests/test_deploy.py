"""The deploy/ files: they parse, what they mount exists, and what they run is a real command."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from uds.cli import _parser

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "deploy"


def uds_commands(text: str) -> list[list[str]]:
    """Every `["uds", ...]` command array in a file."""
    found = []
    for match in re.finditer(r'\["uds",([^\]]*)\]', text):
        found.append(["uds", *re.findall(r'"([^"]+)"', match.group(1))])
    return found


def test_compose_parses_and_mounts_what_exists() -> None:
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    assert {"postgres", "redis", "opa", "migrate", "api", "worker"} <= set(compose["services"])
    opa_volume = compose["services"]["opa"]["volumes"][0].split(":")[0]
    assert (DEPLOY / opa_volume).resolve().is_dir()
    assert list((DEPLOY / opa_volume).glob("*.rego")), "OPA serves the policies UDS evaluates"
    assert (ROOT / compose["services"]["api"]["build"]["dockerfile"]).is_file()


@pytest.mark.parametrize(
    "path",
    [
        "compose.yaml",
        "Dockerfile",
        "helm/uds/templates/api.yaml",
        "helm/uds/templates/worker.yaml",
        "helm/uds/templates/migrate-job.yaml",
    ],
)
def test_commands_are_real(path: str) -> None:
    text = (DEPLOY / path).read_text()
    commands = uds_commands(text) or [
        ["uds", *re.findall(r'"([^"]+)"', line)[1:]] for line in text.splitlines() if line.startswith("CMD")
    ]
    assert commands, path
    parser = _parser()
    for command in commands:
        args = ["1" if "{{" in a else a for a in command[1:]]  # Helm fills template values
        parser.parse_args(args)  # exits (fails the test) on an unknown command or option


def test_helm_values_exist() -> None:
    chart = DEPLOY / "helm" / "uds"
    assert yaml.safe_load((chart / "Chart.yaml").read_text())["name"] == "uds"
    values = yaml.safe_load((chart / "values.yaml").read_text())
    for template in (chart / "templates").glob("*"):
        for ref in re.findall(r"\.Values\.([A-Za-z0-9_.]+)", template.read_text()):
            node = values
            for part in ref.split("."):
                assert isinstance(node, dict) and part in node, (
                    f"{template.name}: .Values.{ref} is not in values.yaml"
                )
                node = node[part]
