"""The action catalogue: every action an API field or job may name, and what it needs.

One source of truth, `rego/data.json` (served to Rego as `data.uds.actions`). The policy
decides from it; Python reads it only to know an action's scope (does it need a tenant?).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any, Literal, cast

from uds.errors import ConfigError

Scope = Literal["principal", "tenant", "platform"]
SCOPES: frozenset[str] = frozenset({"principal", "tenant", "platform"})
ROLES = ("VIEWER", "EDITOR", "ADMIN")  # lowest first

REGO_DIR = Path(__file__).parent / "rego"
CATALOGUE_FILE = "data.json"


@dataclass(frozen=True, slots=True)
class Limit:
    """A plan limit an action is checked against, with the resource key the caller fills."""

    name: str
    usage: str | None = None  # current usage: denied once it reaches the limit
    request: str | None = None  # requested amount: denied above the limit


@dataclass(frozen=True, slots=True)
class Action:
    """What an action needs: who may ask, the least tenant role, and whether it writes."""

    scope: Scope
    min_role: str | None = None
    write: bool = False
    feature: str | None = None
    limits: tuple[Limit, ...] = ()
    others_need: str | None = None  # role needed by anyone but the resource's owner
    users_only: bool = False  # never a service client


def load_catalogue(rego_dir: Path = REGO_DIR) -> Mapping[str, Action]:
    """Read and check `data.json` in `rego_dir`; raise ConfigError naming what is wrong."""
    path = rego_dir / CATALOGUE_FILE
    try:
        raw = json.loads(path.read_text())
        entries = raw["uds"]["actions"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ConfigError(f"{path}: no action catalogue at uds.actions ({exc})") from None
    if not isinstance(entries, dict):
        raise ConfigError(f"{path}: uds.actions must be an object")
    return MappingProxyType({name: _action(path, name, entry) for name, entry in entries.items()})


def _action(path: Path, name: str, entry: Any) -> Action:
    def bad(why: str) -> ConfigError:
        return ConfigError(f"{path}: action {name!r}: {why}")

    if not isinstance(entry, dict) or entry.get("scope") not in SCOPES:
        raise bad(f"scope must be one of {sorted(SCOPES)}")
    role = entry.get("role")
    if entry["scope"] == "tenant" and role not in ROLES:
        raise bad(f"a tenant action needs a role from {ROLES}")
    others_need = entry.get("others_need")
    if others_need is not None and others_need not in ROLES:
        raise bad(f"others_need must be one of {ROLES}")
    limits = []
    for item in entry.get("limits", []):
        if not isinstance(item, dict) or not isinstance(item.get("name"), str):
            raise bad("each limit needs a name")
        if ("usage" in item) == ("request" in item):
            raise bad(f"limit {item['name']} needs exactly one of usage, request")
        limits.append(Limit(item["name"], item.get("usage"), item.get("request")))
    return Action(
        scope=cast(Scope, entry["scope"]),
        min_role=role,
        write=bool(entry.get("write", False)),
        feature=entry.get("feature"),
        limits=tuple(limits),
        others_need=others_need,
        users_only=bool(entry.get("users_only", False)),
    )


ACTIONS: Mapping[str, Action] = load_catalogue()


def action_scope(name: str) -> Scope | None:
    """The scope of action `name`, or None for an action the catalogue does not know."""
    action = ACTIONS.get(name)
    return action.scope if action else None
