"""Run the Rego unit tests (`test_*` rules of the policy directory) with regopy.

`python -m uds.policies.selftest [DIR]` prints one line per test and a JSON summary; the
project's test suite runs it in a subprocess, so a crash inside rego-cpp fails the Rego
tests instead of killing pytest.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

from uds.policies.catalogue import REGO_DIR
from uds.policies.embedded import build_interpreter

_PACKAGE = re.compile(r"^package\s+([\w.]+)", re.MULTILINE)
_TEST_RULE = re.compile(r"^(test_\w+)\b", re.MULTILINE)


def discover(rego_dir: Path = REGO_DIR) -> list[str]:
    """Every test rule as `package/path/test_name`, in file order."""
    found: list[str] = []
    for path in sorted(rego_dir.glob("*_test.rego")):
        source = path.read_text()
        package = _PACKAGE.search(source)
        if package is None:
            continue
        prefix = package.group(1).replace(".", "/")
        for name in dict.fromkeys(_TEST_RULE.findall(source)):
            found.append(f"{prefix}/{name}")
    return found


def run(rego_dir: Path = REGO_DIR) -> dict[str, str]:
    """Result per test: "pass", "fail" (false or undefined), or an error message."""
    tests = discover(rego_dir)
    if not tests:
        return {}
    interpreter = build_interpreter(rego_dir, tests=True)
    bundle = interpreter.build(None, tests)
    if not bundle.ok():
        return dict.fromkeys(tests, "error: the test bundle did not build")
    results: dict[str, str] = {}
    for test in tests:
        output = interpreter.query_bundle_entrypoint(bundle, test)
        if not output.ok():
            results[test] = f"error: {output}"
        elif len(output.results) == 1 and output.results[0].expressions == [True]:
            results[test] = "pass"
        else:
            results[test] = "fail"
    return results


def main() -> int:
    rego_dir = Path(sys.argv[1]) if len(sys.argv) > 1 else REGO_DIR
    results = run(rego_dir)
    for test, result in results.items():
        print(f"{result.upper() if result in ('pass', 'fail') else 'ERROR'} {test}", file=sys.stderr)
    print(json.dumps(results))
    return 0 if results and all(r == "pass" for r in results.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
