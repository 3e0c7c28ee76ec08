"""The Rego unit tests (`test_*` rules in src/uds/policies/rego/*_test.rego), one pytest each.

They run once, in a subprocess (`python -m uds.policies.selftest`), so a crash inside
rego-cpp fails these tests instead of taking the whole test session down.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from uds.policies.catalogue import REGO_DIR
from uds.policies.selftest import discover

RULES = discover()


def run_selftest(rego_dir: Path) -> dict[str, str]:
    proc = subprocess.run(
        [sys.executable, "-m", "uds.policies.selftest", str(rego_dir)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.stdout.strip(), f"the Rego test run crashed (exit {proc.returncode}):\n{proc.stderr[-4000:]}"
    results: dict[str, str] = json.loads(proc.stdout.strip().splitlines()[-1])
    return results


@pytest.fixture(scope="module")
def results() -> dict[str, str]:
    return run_selftest(REGO_DIR)


def test_rego_tests_are_discovered() -> None:
    assert len(RULES) >= 40
    assert all(rule.startswith("uds/authz_test/test_") for rule in RULES)


@pytest.mark.parametrize("rule", RULES, ids=lambda rule: rule.rsplit("/", 1)[-1])
def test_rego(rule: str, results: dict[str, str]) -> None:
    assert results.get(rule) == "pass", f"Rego test {rule}: {results.get(rule, 'not run')}"


def test_runner_reports_failing_and_undefined_rules(tmp_path: Path) -> None:
    """A false rule and a rule whose body fails are both failures, not passes."""
    (tmp_path / "data.json").write_text('{"uds": {"actions": {}}}')
    (tmp_path / "p_test.rego").write_text(
        "package p_test\nimport rego.v1\n"
        "test_true if { 1 == 1 }\n"
        "test_false if { 1 == 2 }\n"
        "test_undefined if { input.nothing.here }\n"
    )
    assert run_selftest(tmp_path) == {
        "p_test/test_true": "pass",
        "p_test/test_false": "fail",
        "p_test/test_undefined": "fail",
    }
