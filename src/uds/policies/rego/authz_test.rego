# Unit tests for authz.rego: every rule, against the real catalogue (data.uds.actions) and,
# for the generic rules, against small made-up ones.
#
# Run by tests/policies/test_rego_unit.py (regopy), or `opa test src/uds/policies/rego`.
# No `with input as ...` here: regopy 1.5 crashes on it, so tests call authz.decide().
package uds.authz_test

import rego.v1

import data.uds.authz

# --- fixtures ------------------------------------------------------------------------

user(role) := {"sub": "ana@acme", "kind": "user", "platform_roles": [], "tenant_role": role}

service(role) := {"sub": "svc-ci", "kind": "service", "platform_roles": [], "tenant_role": role}

root := {"sub": "root@uds", "kind": "user", "platform_roles": ["platform-admin"], "tenant_role": null}

free_limits := {
	"max_data_sources": 2,
	"max_concurrent_jobs": 2,
	"discovery_row_budget": 1000000,
	"max_dashboards": 10,
	"max_members": 5,
}

active := {
	"slug": "acme",
	"status": "active",
	"plan": "free",
	"features": ["discovery", "dashboards"],
	"limits": free_limits,
}

suspended := object.union(active, {"status": "suspended"})

ask(principal, tenant, action, resource) := authz.decide(
	{"principal": principal, "tenant": tenant, "action": action, "resource": resource},
	data.uds.actions,
)

allowed := {"allow": true, "reasons": []}

denied(reasons) := {"allow": false, "reasons": reasons}

# --- unknown actions, missing principal ----------------------------------------------

# Where a reason quotes the action, the test writes the input out: regopy 1.5's sprintf
# prints a string literal that reached it through a function argument with its quotes.
test_unknown_action_denied if {
	inp := {"principal": user("ADMIN"), "tenant": active, "action": "nuke.everything", "resource": {}}
	authz.decide(inp, data.uds.actions) == denied(["unknown action nuke.everything"])
}

test_unknown_action_denied_even_for_platform_admin if {
	inp := {"principal": root, "tenant": null, "action": "nuke.everything", "resource": {}}
	authz.decide(inp, data.uds.actions) == denied(["unknown action nuke.everything"])
}

test_missing_action_denied if {
	authz.decide({"principal": user("ADMIN"), "tenant": active}, data.uds.actions) == denied(["unknown action (none)"])
}

test_decision_defined_for_malformed_input if {
	authz.decide("garbage", data.uds.actions) == denied(["unknown action (none)"])
	authz.decide(null, data.uds.actions) == denied(["unknown action (none)"])
	authz.decide({}, data.uds.actions) == denied(["unknown action (none)"])
}

test_unauthenticated_denied if {
	ask(null, active, "tenant.read", {}) == denied(["authentication required"])
}

test_principal_without_subject_denied if {
	ask({"kind": "user", "platform_roles": ["platform-admin"]}, null, "tenant.list", {}) == denied(["authentication required"])
	ask(object.union(user("ADMIN"), {"sub": ""}), active, "tenant.read", {}) == denied(["authentication required"])
}

# --- principal actions -----------------------------------------------------------------

test_principal_read_needs_only_a_principal if {
	ask(user(null), null, "principal.read", {}) == allowed
	ask(service(null), null, "principal.read", {}) == allowed
}

# --- platform actions ------------------------------------------------------------------

test_platform_admin_may_do_platform_actions if {
	every action in ["tenant.list", "tenant.create", "tenant.suspend", "tenant.resume", "tenant.delete", "tenants.migrate"] {
		ask(root, null, action, {}) == allowed
	}
}

test_platform_action_needs_platform_admin if {
	ask(user("ADMIN"), active, "tenant.create", {}) == denied(["platform admin role required"])
}

test_service_client_never_does_platform_actions if {
	claims_admin := object.union(service("ADMIN"), {"platform_roles": ["platform-admin"]})
	ask(claims_admin, null, "tenant.list", {}) == denied(["service clients cannot perform platform actions"])
	ask(service(null), null, "serviceclient.create", {}) == denied(["service clients cannot perform platform actions"])
}

test_principal_without_kind_is_not_a_user if {
	no_kind := {"sub": "x", "platform_roles": ["platform-admin"]}
	ask(no_kind, null, "tenant.list", {}) == denied(["service clients cannot perform platform actions"])
}

test_platform_actions_ignore_the_request_tenant_status if {
	ask(root, suspended, "tenant.resume", {"slug": "acme"}) == allowed
}

# --- tenant actions: tenant required, role hierarchy ---------------------------------

test_tenant_action_needs_a_tenant if {
	ask(user("ADMIN"), null, "tenant.read", {}) == denied(["this action needs a tenant (X-Tenant-ID)"])
}

test_viewer_reads if {
	every action in ["tenant.read", "member.read", "datasource.read", "catalog.read", "dashboard.read", "widget.read", "job.read"] {
		ask(user("VIEWER"), active, action, {}) == allowed
	}
}

test_viewer_cannot_do_editor_actions if {
	ask(user("VIEWER"), active, "datasource.register", {}) == denied(["role EDITOR or higher required"])
	ask(user("VIEWER"), active, "dashboard.update", {}) == denied(["role EDITOR or higher required"])
}

test_editor_does_editor_actions if {
	every action in ["datasource.register", "datasource.test", "discovery.start", "dashboard.generate", "dashboard.update", "dashboard.delete", "job.start"] {
		ask(user("EDITOR"), active, action, {}) == allowed
	}
}

test_editor_cannot_do_admin_actions if {
	ask(user("EDITOR"), active, "member.write", {}) == denied(["role ADMIN or higher required"])
	ask(user("EDITOR"), active, "datasource.delete", {}) == denied(["role ADMIN or higher required"])
	ask(user("EDITOR"), active, "audit.read", {}) == denied(["role ADMIN or higher required"])
}

test_admin_does_everything_in_the_tenant if {
	all_features := object.union(active, {"features": ["discovery", "dashboards", "grafana_export"]})
	every name in tenant_actions {
		ask(user("ADMIN"), all_features, name, {}) == allowed
	}
}

tenant_actions contains name if {
	some name
	data.uds.actions[name].scope == "tenant"
}

test_non_member_and_unknown_role_denied if {
	ask(user(null), active, "tenant.read", {}) == denied(["role VIEWER or higher required"])
	ask(user("OWNER"), active, "tenant.read", {}) == denied(["role VIEWER or higher required"])
}

test_platform_admin_acts_as_tenant_admin if {
	ask(root, active, "member.write", {}) == allowed
	ask(root, active, "audit.read", {}) == allowed
}

# --- suspended tenants -----------------------------------------------------------------

test_suspended_tenant_denies_writes if {
	ask(user("ADMIN"), suspended, "member.write", {}) == denied(["tenant is suspended: read-only"])
	ask(user("EDITOR"), suspended, "datasource.register", {}) == denied(["tenant is suspended: read-only"])
}

test_suspended_tenant_allows_reads if {
	ask(user("VIEWER"), suspended, "tenant.read", {}) == allowed
	ask(user("VIEWER"), suspended, "dashboard.read", {}) == allowed
}

test_suspended_tenant_denies_platform_admin_writes if {
	ask(root, suspended, "member.write", {}) == denied(["tenant is suspended: read-only"])
}

test_tenant_in_unknown_state_is_read_only if {
	ask(user("ADMIN"), object.union(active, {"status": "provisioning"}), "member.write", {}) == denied(["tenant is provisioning: read-only"])
	no_status := object.remove(active, ["status"])
	ask(user("ADMIN"), no_status, "member.write", {}) == denied(["tenant is in an unknown state: read-only"])
	ask(user("ADMIN"), no_status, "tenant.read", {}) == allowed
}

test_denial_lists_every_reason_sorted if {
	ask(user("VIEWER"), suspended, "member.write", {}) == denied(["role ADMIN or higher required", "tenant is suspended: read-only"])
}

# --- plan features -----------------------------------------------------------------------

test_feature_off_in_plan_denied if {
	ask(user("VIEWER"), active, "dashboard.export", {}) == denied(["plan free does not include feature grafana_export"])
	no_discovery := object.union(active, {"features": ["dashboards"]})
	ask(user("EDITOR"), no_discovery, "discovery.start", {}) == denied(["plan free does not include feature discovery"])
}

test_feature_on_allowed if {
	pro := object.union(active, {"plan": "pro", "features": ["discovery", "dashboards", "grafana_export"]})
	ask(user("VIEWER"), pro, "dashboard.export", {}) == allowed
}

test_feature_gating_applies_to_platform_admins if {
	ask(root, active, "dashboard.export", {}) == denied(["plan free does not include feature grafana_export"])
}

test_feature_denial_without_plan_name if {
	ask(user("VIEWER"), object.remove(active, ["plan"]), "dashboard.export", {}) == denied(["plan (unknown) does not include feature grafana_export"])
}

test_missing_feature_list_denies_gated_actions if {
	ask(user("EDITOR"), object.remove(active, ["features"]), "discovery.start", {}) == denied(["plan free does not include feature discovery"])
	ask(user("EDITOR"), object.remove(active, ["features"]), "datasource.test", {}) == allowed
}

# --- plan limits ---------------------------------------------------------------------------

test_usage_below_limit_allowed if {
	ask(user("EDITOR"), active, "datasource.register", {"data_sources": 1}) == allowed
}

test_usage_at_limit_denied if {
	ask(user("EDITOR"), active, "datasource.register", {"data_sources": 2}) == denied(["limit max_data_sources (2) reached"])
	ask(user("EDITOR"), active, "job.start", {"running_jobs": 3}) == denied(["limit max_concurrent_jobs (2) reached"])
}

test_requested_amount_over_limit_denied if {
	ask(user("EDITOR"), active, "discovery.start", {"row_budget": 1000000}) == allowed
	ask(user("EDITOR"), active, "discovery.start", {"row_budget": 1000001}) == denied(["limit discovery_row_budget (1000000) exceeded: 1000001 requested"])
}

test_every_limit_of_an_action_is_checked if {
	ask(user("EDITOR"), active, "discovery.start", {"running_jobs": 2, "row_budget": 2000000}) == denied([
		"limit discovery_row_budget (1000000) exceeded: 2000000 requested",
		"limit max_concurrent_jobs (2) reached",
	])
}

test_limit_not_checked_without_usage if {
	ask(user("EDITOR"), active, "datasource.register", {}) == allowed
}

test_usage_must_be_a_number if {
	ask(user("EDITOR"), active, "datasource.register", {"data_sources": "2"}) == denied(["resource.data_sources must be a number"])
	ask(user("EDITOR"), active, "discovery.start", {"row_budget": null}) == denied(["resource.row_budget must be a number"])
}

test_limit_missing_from_tenant_denied if {
	no_limits := object.union(active, {"limits": {}})
	ask(user("EDITOR"), no_limits, "datasource.register", {"data_sources": 0}) == denied(["limit max_data_sources is not set for this tenant"])
}

test_limits_apply_to_platform_admins if {
	ask(root, active, "datasource.register", {"data_sources": 2}) == denied(["limit max_data_sources (2) reached"])
}

# --- service clients -------------------------------------------------------------------

test_service_client_acts_by_its_role if {
	ask(service("EDITOR"), active, "discovery.start", {}) == allowed
	ask(service("VIEWER"), active, "discovery.start", {}) == denied(["role EDITOR or higher required"])
}

test_service_client_never_manages_members if {
	inp := {"principal": service("ADMIN"), "tenant": active, "action": "member.write", "resource": {}}
	authz.decide(inp, data.uds.actions) == denied(["service clients cannot perform member.write"])
}

test_service_client_gets_no_platform_admin_power_in_a_tenant if {
	claims_admin := object.union(service(null), {"platform_roles": ["platform-admin"]})
	ask(claims_admin, active, "tenant.read", {}) == denied(["role VIEWER or higher required"])
}

# --- owner rule (job.cancel) -------------------------------------------------------------

test_editor_cancels_own_job if {
	ask(user("EDITOR"), active, "job.cancel", {"owner": "ana@acme"}) == allowed
	ask(service("EDITOR"), active, "job.cancel", {"owner": "svc-ci"}) == allowed
}

test_editor_cannot_cancel_others_job if {
	ask(user("EDITOR"), active, "job.cancel", {"owner": "bob@acme"}) == denied(["only its creator or role ADMIN or higher may do this"])
	ask(user("EDITOR"), active, "job.cancel", {}) == denied(["only its creator or role ADMIN or higher may do this"])
}

test_admin_cancels_any_job if {
	ask(user("ADMIN"), active, "job.cancel", {"owner": "bob@acme"}) == allowed
	ask(root, active, "job.cancel", {"owner": "bob@acme"}) == allowed
}

test_viewer_cannot_cancel_even_own_job if {
	ask(user("VIEWER"), active, "job.cancel", {"owner": "ana@acme"}) == denied(["role EDITOR or higher required"])
}

# --- generic rules against made-up catalogues ---------------------------------------------

test_catalogue_with_bad_scope_denies if {
	d := authz.decide(
		{"principal": root, "tenant": active, "action": "x.y", "resource": {}},
		{"x.y": {"scope": "galaxy"}},
	)
	d == denied(["action x.y has no valid scope in the catalogue"])
}

test_others_need_is_generic if {
	catalogue := {"doc.edit": {"scope": "tenant", "role": "VIEWER", "others_need": "EDITOR"}}
	inp := {"principal": user("VIEWER"), "tenant": active, "action": "doc.edit", "resource": {"owner": "bob@acme"}}
	authz.decide(inp, catalogue) == denied(["only its creator or role EDITOR or higher may do this"])
	authz.decide(object.union(inp, {"principal": user("EDITOR")}), catalogue) == allowed
}

# --- the catalogue itself ------------------------------------------------------------------

test_catalogue_entries_are_well_formed if {
	every action in data.uds.actions {
		action.scope in {"principal", "platform", "tenant"}
		well_formed_role(action)
		every lim in object.get(action, "limits", []) {
			is_string(lim.name)
			count(object.keys(object.filter(lim, ["usage", "request"]))) == 1
		}
		object.get(action, "others_need", "ADMIN") in object.keys(authz.role_rank)
	}
}

well_formed_role(action) if action.scope != "tenant"

well_formed_role(action) if authz.role_rank[action.role]
