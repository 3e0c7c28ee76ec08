# Authorization for every UDS operation (docs/policies.md).
#
# Query data.uds.authz.decision with an input of
#   {principal: {sub, kind, platform_roles, tenant_role}, tenant: null | {slug, status,
#    plan, features, limits}, action, resource}
# and get {allow: bool, reasons: [string]}; reasons say why an action is denied.
# What each action needs is data, not code: data.uds.actions (data.json beside this file).
#
# Every rule is a function of (input, catalogue) and `decision` is the only rule that reads
# `input`. The unit tests therefore call decide() with literal inputs: regopy 1.5 crashes on
# `with input as ...` when the rule under test calls other rules.
package uds.authz

import rego.v1

decision := decide(input, data.uds.actions)

role_rank := {"VIEWER": 1, "EDITOR": 2, "ADMIN": 3}

platform_admin_role := "platform-admin"

# The decision for one input against a catalogue of actions; defined for every input.
decide(inp, actions) := {"allow": count(denials) == 0, "reasons": sort([r | some r in denials])} if {
	denials := reasons(inp, actions)
}

# Why the action is denied (empty: allowed). An unknown action or a missing principal
# stop at that one reason.
reasons(inp, actions) := {sprintf("unknown action %v", [action_name(inp)])} if {
	not known_action(inp, actions)
} else := {"authentication required"} if {
	not authenticated(inp)
} else := scope_reasons(inp, actions[inp.action])

known_action(inp, actions) if {
	is_string(inp.action)
	is_object(actions[inp.action])
}

action_name(inp) := inp.action if {
	is_string(inp.action)
} else := "(none)"

authenticated(inp) if {
	is_string(inp.principal.sub)
	inp.principal.sub != ""
}

# Only a user token carries platform power; a service client never does, whatever its
# token claims.
is_user(inp) if inp.principal.kind == "user"

platform_admin(inp) if {
	is_user(inp)
	platform_admin_role in inp.principal.platform_roles
}

scope_reasons(inp, act) := set() if {
	act.scope == "principal"
} else := platform_reasons(inp) if {
	act.scope == "platform"
} else := tenant_reasons(inp, act) if {
	act.scope == "tenant"
} else := {sprintf("action %s has no valid scope in the catalogue", [inp.action])}

# Platform actions: platform admins only, and never a service client.
platform_reasons(inp) := {"service clients cannot perform platform actions"} if {
	not is_user(inp)
} else := set() if {
	platform_admin(inp)
} else := {"platform admin role required"}

# Tenant actions: every check runs, so a denial lists all of its reasons.
tenant_reasons(inp, act) := {"this action needs a tenant (X-Tenant-ID)"} if {
	not is_object(inp.tenant)
} else := union({
	status_reasons(inp, act),
	role_reasons(inp, act),
	owner_reasons(inp, act),
	kind_reasons(inp, act),
	feature_reasons(inp, act),
	limit_reasons(inp, act),
})

# A tenant that is not active (suspended, or any state this policy does not know) is
# read-only, for platform admins too: they resume it first.
status_reasons(inp, act) := {sprintf("tenant is %v: read-only", [tenant_status(inp)])} if {
	act.write
	not inp.tenant.status == "active"
} else := set()

tenant_status(inp) := inp.tenant.status if {
	is_string(inp.tenant.status)
} else := "in an unknown state"

# viewer < editor < admin; platform admins act as tenant admins.
role_reasons(inp, act) := set() if {
	platform_admin(inp)
} else := set() if {
	role_rank[inp.principal.tenant_role] >= role_rank[act.role]
} else := {sprintf("role %s or higher required", [act.role])}

# Actions on something a member created (e.g. cancelling a job): its creator may, anyone
# else needs the role in `others_need`.
owner_reasons(inp, act) := set() if {
	not act.others_need
} else := set() if {
	platform_admin(inp)
} else := set() if {
	inp.resource.owner == inp.principal.sub
} else := set() if {
	role_rank[inp.principal.tenant_role] >= role_rank[act.others_need]
} else := {sprintf("only its creator or role %s or higher may do this", [act.others_need])}

kind_reasons(inp, act) := {sprintf("service clients cannot perform %s", [inp.action])} if {
	act.users_only
	not is_user(inp)
} else := set()

# A feature the tenant's plan (with its overrides) does not include is denied.
feature_reasons(inp, act) := {sprintf("plan %v does not include feature %s", [tenant_plan(inp), act.feature])} if {
	act.feature
	not act.feature in inp.tenant.features
} else := set()

tenant_plan(inp) := inp.tenant.plan if {
	is_string(inp.tenant.plan)
} else := "(unknown)"

# Plan limits, checked against what the caller passes in `resource`: current usage
# (`usage`: denied once it reaches the limit) or a requested amount (`request`: denied
# above the limit). The caller that owns a limit passes its figure; without it the limit
# is not checked here (`me.can` asks about roles and features only).
limit_reasons(inp, act) := {r |
	some lim in object.get(act, "limits", [])
	r := limit_reason(inp, lim)
}

limit_reason(inp, lim) := sprintf("limit %s is not set for this tenant", [lim.name]) if {
	not is_number(inp.tenant.limits[lim.name])
} else := sprintf("resource.%s must be a number", [lim.usage]) if {
	_ = inp.resource[lim.usage]
	not is_number(inp.resource[lim.usage])
} else := sprintf("resource.%s must be a number", [lim.request]) if {
	_ = inp.resource[lim.request]
	not is_number(inp.resource[lim.request])
} else := sprintf("limit %s (%v) reached", [lim.name, inp.tenant.limits[lim.name]]) if {
	inp.resource[lim.usage] >= inp.tenant.limits[lim.name]
} else := sprintf("limit %s (%v) exceeded: %v requested", [
	lim.name,
	inp.tenant.limits[lim.name],
	inp.resource[lim.request],
]) if {
	inp.resource[lim.request] > inp.tenant.limits[lim.name]
}
