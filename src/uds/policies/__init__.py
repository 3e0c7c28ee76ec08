"""Authorization: every operation names an action and asks a `PolicyEngine`.

Resolvers never decide access themselves; they build a `PolicyInput` (through
`uds.api.context.Context.authorize`) and act on the `Decision`. The rules are Rego
(`rego/authz.rego`), the actions and what they need are data (`rego/data.json`).
"""

from uds.policies.backend import open_engine
from uds.policies.catalogue import ACTIONS, Action, Limit, action_scope, load_catalogue
from uds.policies.embedded import EmbeddedRegoEngine
from uds.policies.engine import Decision, PolicyEngine, PolicyInput, TenantFacts
from uds.policies.opa import OpaServerEngine

__all__ = [
    "ACTIONS",
    "Action",
    "Decision",
    "EmbeddedRegoEngine",
    "Limit",
    "OpaServerEngine",
    "PolicyEngine",
    "PolicyInput",
    "TenantFacts",
    "action_scope",
    "load_catalogue",
    "open_engine",
]
