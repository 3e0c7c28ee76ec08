"""The default backend: the Rego bundle evaluated in process by regopy (rego-cpp).

The bundle (every non-test `.rego` file and `data.json` of the policy directory) is
compiled once; one evaluation costs a few tenths of a millisecond, so it runs inline on
the event loop, and decisions are cached per input in a bounded LRU. In dev mode the
files are re-read when they change (checked at most once a second, on `decide`).
"""

from __future__ import annotations

import logging
import time
import uuid
from pathlib import Path
from typing import Any

from regopy import Input, Interpreter

from uds.errors import PolicyUnavailable
from uds.observability.metrics import cache_lookup
from uds.policies.catalogue import CATALOGUE_FILE, REGO_DIR, load_catalogue
from uds.policies.engine import Decision, DecisionCache, PolicyInput, canonical_json, parse_decision

log = logging.getLogger(__name__)

ENTRYPOINT = "uds/authz/decision"
RELOAD_CHECK_SECONDS = 1.0


_SCALARS = (str, int, float, bool, type(None), uuid.UUID)


def _quick_key(request: PolicyInput) -> tuple[Any, ...] | None:
    """A hashable key equal only for requests with the same input; None if there is none."""
    resource: tuple[Any, ...] = ()
    if request.resource:
        items = []
        for name, value in request.resource.items():
            if not isinstance(value, _SCALARS):
                return None
            items.append((name, type(value), value))
        resource = tuple(sorted(items, key=lambda item: str(item[0])))
    return (request.action, request.principal, request.tenant_role, id(request.tenant), resource)


def policy_files(rego_dir: Path, *, tests: bool = False) -> list[Path]:
    """The bundle's Rego modules (and, with `tests`, the `*_test.rego` files too)."""
    return sorted(p for p in rego_dir.glob("*.rego") if tests or not p.name.endswith("_test.rego"))


def build_interpreter(rego_dir: Path, *, tests: bool = False) -> Interpreter:
    """An interpreter holding the catalogue and the policy modules of `rego_dir`."""
    interpreter = Interpreter()
    interpreter.add_data_json((rego_dir / CATALOGUE_FILE).read_text())
    for path in policy_files(rego_dir, tests=tests):
        interpreter.add_module(path.name, path.read_text())
    return interpreter


class EmbeddedRegoEngine:
    """PolicyEngine on regopy: compile once, evaluate inline, cache per input."""

    def __init__(self, rego_dir: Path = REGO_DIR, *, cache_size: int = 10_000, reload: bool = False) -> None:
        self.rego_dir = rego_dir
        self.cache = DecisionCache(cache_size)
        self._quick: dict[tuple[Any, ...], tuple[Any, Decision]] = {}
        self.reload = reload
        self.compile_seconds = 0.0
        self.error: str | None = None  # why the bundle is unusable, if it is
        self._interpreter: Interpreter | None = None
        self._bundle: Any = None
        self._signature: tuple[tuple[str, int, int], ...] | None = None
        self._next_check = 0.0
        self._load()

    async def decide(self, request: PolicyInput) -> Decision:
        if self.reload:
            self._reload_if_changed()
        # First by the request's own parts (no input document written): the principal by
        # value, the tenant facts by identity (held in the entry, so the id stays theirs),
        # the resource's items with their types (True and 1 are different inputs).
        quick = _quick_key(request)
        if quick is not None:
            hit = self._quick.get(quick)
            if hit is not None and hit[0] is request.tenant:
                self.cache.hits += 1
                cache_lookup("policy", True)
                return hit[1]
        key = canonical_json(value := request.to_input())
        decision = self.cache.get(key)
        if decision is None:
            decision = self.evaluate(value)
            self.cache.put(key, decision)
        if quick is not None:
            if len(self._quick) >= self.cache.maxsize:
                self._quick.clear()
            self._quick[quick] = (request.tenant, decision)
        return decision

    def evaluate(self, value: Any) -> Decision:
        """Evaluate one input document, uncached."""
        if self._interpreter is None:
            raise PolicyUnavailable("the policy bundle failed to compile")
        try:
            self._interpreter.set_input(Input(value))
            output = self._interpreter.query_bundle_entrypoint(self._bundle, ENTRYPOINT)
        except Exception as exc:
            log.error("policy evaluation failed: %s", exc)
            raise PolicyUnavailable("policy evaluation failed") from exc
        if not output.ok():
            log.error("policy evaluation failed: %s", output)
            raise PolicyUnavailable("policy evaluation failed")
        results = output.results
        if len(results) != 1 or len(results[0].expressions) != 1:
            raise PolicyUnavailable("the policy decision is undefined")
        return parse_decision(results[0].expressions[0])

    async def ready(self) -> bool:
        if self.reload:
            self._reload_if_changed()
        return self._interpreter is not None

    async def aclose(self) -> None:
        self._interpreter = self._bundle = None

    def _reload_if_changed(self) -> None:
        now = time.monotonic()
        if now < self._next_check:
            return
        self._next_check = now + RELOAD_CHECK_SECONDS
        if self._files_signature() != self._signature:
            log.info("policy files in %s changed; recompiling", self.rego_dir)
            self._load()

    def _files_signature(self) -> tuple[tuple[str, int, int], ...] | None:
        try:
            paths = [*policy_files(self.rego_dir), self.rego_dir / CATALOGUE_FILE]
            return tuple((p.name, (s := p.stat()).st_mtime_ns, s.st_size) for p in paths)
        except OSError:
            return None

    def _load(self) -> None:
        """Compile the bundle; on failure the engine refuses every decision until fixed."""
        self._signature = self._files_signature()
        self.cache.clear()
        self._quick.clear()
        started = time.perf_counter()
        try:
            load_catalogue(self.rego_dir)  # the same checks Python relies on
            interpreter = build_interpreter(self.rego_dir)
            bundle = interpreter.build(None, [ENTRYPOINT])
            if not bundle.ok():
                raise RuntimeError("the bundle did not build")
        except Exception as exc:
            self.error = str(exc)
            self._interpreter = self._bundle = None
            log.error("policy bundle in %s failed to compile: %s", self.rego_dir, exc)
            return
        self.compile_seconds = time.perf_counter() - started
        self.error = None
        self._interpreter, self._bundle = interpreter, bundle
