"""Authorization: every operation names an action and asks a `PolicyEngine`.

Resolvers never decide access themselves; they build a `PolicyInput` (through
`uds.api.context.Context.authorize`) and act on the `Decision`.
"""

from uds.policies.engine import ACTIONS, Decision, PolicyEngine, PolicyInput, RoleTableEngine

__all__ = ["ACTIONS", "Decision", "PolicyEngine", "PolicyInput", "RoleTableEngine"]
