"""Field markers that make every resolver's authorization visible and checked.

Every field with a resolver carries one of:

- `Policy("action", ...)`: the resolver asks the policy engine for one of these actions
  (through `Context.authorize`, `Context.decide` or `mutate`). At run time the marker
  checks that it really did, so a resolver that forgets its check fails loudly instead
  of leaking data.
- `NoPolicy("reason")`: the field reads nothing beyond what its parent already
  authorized (e.g. a namespace object, or a value computed from the parent).

`tests/api/test_policy_coverage.py` walks the schema and fails on any resolver field
with neither, so a new unguarded field cannot land.
"""

from __future__ import annotations

import contextlib
import inspect
from typing import Any

from strawberry.extensions import FieldExtension
from strawberry.types import Info

from uds.errors import UdsError


class UnguardedField(UdsError):
    """A resolver declared a policy action but returned without asking for it."""


class Policy(FieldExtension):
    def __init__(self, *actions: str) -> None:
        if not actions:
            raise ValueError("Policy needs at least one action")
        self.actions = frozenset(actions)

    async def resolve_async(self, next_: Any, source: Any, info: Info, **kwargs: Any) -> Any:
        # graphql-core resolves sibling fields concurrently (below the root of a mutation
        # too: `admin { suspendTenant ... resumeTenant ... }`), but a request has one
        # connection and session, which allow one operation at a time: guarded resolvers
        # (the ones that touch the database) take turns.
        async with getattr(info.context, "serial", None) or contextlib.nullcontext():
            result = await next_(source, info, **kwargs)
        if inspect.isasyncgen(result):
            return result  # subscriptions check when they start; covered by their tests
        asked = info.context.asked
        if not self.actions & asked:
            raise UnguardedField(f"{info.path.typename}.{info.field_name} did not check its policy")
        return result


class NoPolicy(FieldExtension):
    """Marker only: not part of the resolve chain, so it costs nothing."""

    def __init__(self, reason: str) -> None:
        if not reason:
            raise ValueError("NoPolicy needs a reason")
        self.reason = reason
