"""The embedded regopy engine: real decisions from the packaged Rego, cache, dev reload, fail closed."""

from __future__ import annotations

import json
import shutil
import uuid
from pathlib import Path
from typing import Any

import pytest

from uds.auth.principal import PLATFORM_ADMIN, Principal
from uds.errors import ConfigError, PolicyUnavailable
from uds.policies import (
    ACTIONS,
    EmbeddedRegoEngine,
    PolicyInput,
    TenantFacts,
    action_scope,
    load_catalogue,
    open_engine,
)
from uds.policies import embedded as embedded_module
from uds.policies.catalogue import REGO_DIR
from uds.policies.engine import Decision, parse_decision
from uds.settings import Settings
from uds.tenants.registry import TenantRecord


def user(sub: str = "ana@acme", *, admin: bool = False) -> Principal:
    return Principal(sub, "uds", "user", frozenset({PLATFORM_ADMIN} if admin else ()))


def service(sub: str = "svc-ci") -> Principal:
    return Principal(sub, "uds", "service", frozenset(), tenant="acme")


def record(status: str = "active", plan: str = "free", **overrides: Any) -> TenantRecord:
    return TenantRecord(uuid.uuid4(), "acme", "Acme", status, plan, overrides)


def ask(
    action: str,
    role: str | None = None,
    *,
    principal: Principal | None = None,
    tenant: TenantRecord | None = None,
    resource: dict[str, Any] | None = None,
) -> PolicyInput:
    return PolicyInput(
        principal=principal or user(),
        action=action,
        tenant_role=role,
        tenant=TenantFacts.from_record(tenant or record()),
        resource=resource or {},
    )


@pytest.fixture(scope="module")
def engine() -> EmbeddedRegoEngine:
    return EmbeddedRegoEngine()


# --- decisions ---------------------------------------------------------------------------

READS = ["tenant.read", "datasource.read", "catalog.read", "dashboard.read", "widget.read", "job.read"]
EDITS = ["datasource.register", "discovery.start", "dashboard.generate", "dashboard.update", "job.start"]
ADMINS = ["member.write", "datasource.delete", "audit.read"]
ROLE_MATRIX = [
    (role, action, allowed)
    for role, rank in (("VIEWER", 1), ("EDITOR", 2), ("ADMIN", 3))
    for actions, need in ((READS, 1), (EDITS, 2), (ADMINS, 3))
    for action, allowed in ((a, rank >= need) for a in actions)
]


@pytest.mark.parametrize(("role", "action", "allowed"), ROLE_MATRIX)
async def test_role_hierarchy(engine: EmbeddedRegoEngine, role: str, action: str, allowed: bool) -> None:
    decision = await engine.decide(ask(action, role))
    assert decision.allow is allowed
    if not allowed:
        need = "ADMIN" if action in ADMINS else "EDITOR"
        assert decision.reasons == (f"role {need} or higher required",)


async def test_non_member_and_platform_admin(engine: EmbeddedRegoEngine) -> None:
    assert (await engine.decide(ask("tenant.read", None))).reasons == ("role VIEWER or higher required",)
    assert (await engine.decide(ask("member.write", None, principal=user(admin=True)))).allow


async def test_platform_actions(engine: EmbeddedRegoEngine) -> None:
    root = PolicyInput(principal=user("root", admin=True), action="tenants.migrate")
    assert await engine.decide(root) == Decision(True)
    nobody = PolicyInput(principal=user(), action="tenant.create")
    assert await engine.decide(nobody) == Decision(False, ("platform admin role required",))
    claims = Principal("svc", "uds", "service", frozenset({PLATFORM_ADMIN}))
    decision = await engine.decide(PolicyInput(principal=claims, action="tenant.list"))
    assert decision == Decision(False, ("service clients cannot perform platform actions",))


async def test_unknown_action_and_no_principal(engine: EmbeddedRegoEngine) -> None:
    decision = await engine.decide(PolicyInput(principal=user(), action="nuke.everything"))
    assert decision == Decision(False, ("unknown action nuke.everything",))
    decision = await engine.decide(PolicyInput(principal=None, action="principal.read"))
    assert decision == Decision(False, ("authentication required",))


async def test_tenant_action_without_tenant(engine: EmbeddedRegoEngine) -> None:
    decision = await engine.decide(PolicyInput(principal=user(), action="tenant.read", tenant_role="ADMIN"))
    assert decision == Decision(False, ("this action needs a tenant (X-Tenant-ID)",))


async def test_suspended_tenant_is_read_only(engine: EmbeddedRegoEngine) -> None:
    suspended = record("suspended")
    assert (await engine.decide(ask("dashboard.read", "VIEWER", tenant=suspended))).allow
    decision = await engine.decide(ask("member.write", "ADMIN", tenant=suspended))
    assert decision == Decision(False, ("tenant is suspended: read-only",))
    root = user("root", admin=True)
    decision = await engine.decide(ask("datasource.register", None, principal=root, tenant=suspended))
    assert decision == Decision(False, ("tenant is suspended: read-only",))


async def test_feature_off_in_plan(engine: EmbeddedRegoEngine) -> None:
    decision = await engine.decide(ask("dashboard.export", "ADMIN"))
    assert decision == Decision(False, ("plan free does not include feature grafana_export",))
    assert (await engine.decide(ask("dashboard.export", "VIEWER", tenant=record(plan="pro")))).allow
    # Per-tenant overrides replace the plan's feature list.
    no_discovery = record(features=["dashboards"])
    decision = await engine.decide(ask("discovery.start", "EDITOR", tenant=no_discovery))
    assert decision == Decision(False, ("plan free does not include feature discovery",))


async def test_limits_against_usage_from_the_caller(engine: EmbeddedRegoEngine) -> None:
    assert (await engine.decide(ask("datasource.register", "EDITOR", resource={"data_sources": 1}))).allow
    decision = await engine.decide(ask("datasource.register", "EDITOR", resource={"data_sources": 2}))
    assert decision == Decision(False, ("limit max_data_sources (2) reached",))
    # A tenant override raises the limit.
    bigger = record(max_data_sources=5)
    assert (
        await engine.decide(ask("datasource.register", "EDITOR", tenant=bigger, resource={"data_sources": 2}))
    ).allow
    decision = await engine.decide(
        ask("discovery.start", "EDITOR", resource={"running_jobs": 2, "row_budget": 10**7})
    )
    assert decision == Decision(
        False,
        (
            "limit discovery_row_budget (1000000) exceeded: 10000000 requested",
            "limit max_concurrent_jobs (2) reached",
        ),
    )


async def test_service_principal(engine: EmbeddedRegoEngine) -> None:
    assert (await engine.decide(ask("discovery.start", "EDITOR", principal=service()))).allow
    decision = await engine.decide(ask("member.write", "ADMIN", principal=service()))
    assert decision == Decision(False, ("service clients cannot perform member.write",))


async def test_job_owner_may_cancel(engine: EmbeddedRegoEngine) -> None:
    assert (await engine.decide(ask("job.cancel", "EDITOR", resource={"owner": "ana@acme"}))).allow
    decision = await engine.decide(ask("job.cancel", "EDITOR", resource={"owner": "bob@acme"}))
    assert decision == Decision(False, ("only its creator or role ADMIN or higher may do this",))
    assert (await engine.decide(ask("job.cancel", "ADMIN", resource={"owner": "bob@acme"}))).allow


# --- the input document ------------------------------------------------------------------------


def test_policy_input_document() -> None:
    job = uuid.uuid4()
    request = ask("job.cancel", "EDITOR", principal=service(), resource={"id": job, "owner": "svc-ci"})
    assert request.to_input() == {
        "principal": {"sub": "svc-ci", "kind": "service", "platform_roles": [], "tenant_role": "EDITOR"},
        "tenant": {
            "slug": "acme",
            "status": "active",
            "plan": "free",
            "features": ["dashboards", "discovery"],
            "limits": {
                "max_data_sources": 2,
                "max_concurrent_jobs": 2,
                "discovery_row_budget": 1_000_000,
                "max_dashboards": 10,
                "max_members": 5,
                "requests_per_second": 50,
                "request_burst": 100,
                "member_requests_per_second": 20,
                "member_request_burst": 60,
                "max_ws_connections_per_member": 5,
            },
        },
        "action": "job.cancel",
        "resource": {"id": str(job), "owner": "svc-ci"},
    }


# --- the catalogue -------------------------------------------------------------------------------


def test_catalogue_is_the_data_file() -> None:
    raw = json.loads((REGO_DIR / "data.json").read_text())["uds"]["actions"]
    assert set(ACTIONS) == set(raw)
    assert action_scope("discovery.start") == "tenant"
    assert action_scope("tenants.migrate") == "platform"
    assert action_scope("nuke.everything") is None
    assert ACTIONS["job.cancel"].others_need == "ADMIN"
    assert [lim.name for lim in ACTIONS["discovery.start"].limits] == [
        "max_concurrent_jobs",
        "discovery_row_budget",
    ]


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({"scope": "galaxy"}, "scope must be one of"),
        ({"scope": "tenant"}, "a tenant action needs a role"),
        ({"scope": "tenant", "role": "OWNER"}, "a tenant action needs a role"),
        ({"scope": "tenant", "role": "VIEWER", "others_need": "BOSS"}, "others_need"),
        ({"scope": "tenant", "role": "VIEWER", "limits": [{"name": "x"}]}, "exactly one of usage, request"),
    ],
)
def test_malformed_catalogue_is_refused(tmp_path: Path, entry: dict[str, Any], message: str) -> None:
    (tmp_path / "data.json").write_text(json.dumps({"uds": {"actions": {"bad.action": entry}}}))
    with pytest.raises(ConfigError, match=message):
        load_catalogue(tmp_path)


# --- cache ---------------------------------------------------------------------------------------


async def test_cache_hit_returns_the_same_decision() -> None:
    engine = EmbeddedRegoEngine(cache_size=100)
    first = await engine.decide(ask("tenant.read", "VIEWER", resource={"a": 1, "b": 2}))
    again = await engine.decide(
        ask("tenant.read", "VIEWER", resource={"b": 2, "a": 1})
    )  # same input, other order
    assert again is first
    assert (engine.cache.hits, engine.cache.misses, len(engine.cache)) == (1, 1, 1)


async def test_cache_is_bounded_lru() -> None:
    engine = EmbeddedRegoEngine(cache_size=3)
    for n in range(5):
        await engine.decide(ask("dashboard.read", "VIEWER", resource={"id": n}))
    assert len(engine.cache) == 3
    await engine.decide(ask("dashboard.read", "VIEWER", resource={"id": 4}))  # newest: still cached
    assert engine.cache.hits == 1
    await engine.decide(ask("dashboard.read", "VIEWER", resource={"id": 0}))  # oldest: evicted
    assert engine.cache.hits == 1 and len(engine.cache) == 3


async def test_a_repeated_request_is_answered_without_writing_its_input() -> None:
    """The same principal, role, tenant facts object, action and resource: answered by the
    quick key; anything that changes the input document is a different key."""
    engine = EmbeddedRegoEngine(cache_size=100)
    facts = TenantFacts.from_record(record())

    def same(role: str = "VIEWER", **resource: Any) -> PolicyInput:
        return PolicyInput(principal=user(), action="tenant.read", tenant_role=role, tenant=facts, resource=resource)

    first = await engine.decide(same(a=1))
    written = len(engine.cache)
    assert await engine.decide(same(a=1)) is first
    assert len(engine.cache) == written and engine.cache.hits == 1
    # True and 1 are one key in a dict but two different inputs: not confused.
    await engine.decide(same(a=True))
    assert len(engine.cache) == written + 1
    # Other facts, even equal ones, are another key; so are another role and a resource
    # with a value that has no quick key (it goes by its input document).
    other = PolicyInput(principal=user(), action="tenant.read", tenant_role="VIEWER",
                        tenant=TenantFacts.from_record(record()), resource={"a": 1})
    assert (await engine.decide(other)).allow == first.allow
    assert (await engine.decide(same("ADMIN", a=1))).allow
    assert (await engine.decide(same(a=[1, 2]))).allow == first.allow
    # A denial is remembered as a denial.
    denied = PolicyInput(principal=user(), action="tenant.delete", tenant_role="VIEWER", tenant=facts)
    assert not (await engine.decide(denied)).allow
    assert not (await engine.decide(denied)).allow


# --- dev reload and fail closed --------------------------------------------------------------------


@pytest.fixture
def rego_copy(tmp_path: Path) -> Path:
    target = tmp_path / "rego"
    shutil.copytree(REGO_DIR, target)
    return target


def edit_catalogue(rego_dir: Path, action: str, **changes: Any) -> None:
    path = rego_dir / "data.json"
    raw = json.loads(path.read_text())
    raw["uds"]["actions"][action].update(changes)
    path.write_text(json.dumps(raw, indent=1))


async def test_dev_reload_picks_up_changed_files(rego_copy: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(embedded_module, "RELOAD_CHECK_SECONDS", 0.0)
    engine = EmbeddedRegoEngine(rego_copy, reload=True)
    assert (await engine.decide(ask("tenant.read", "VIEWER"))).allow
    edit_catalogue(rego_copy, "tenant.read", role="ADMIN")
    decision = await engine.decide(ask("tenant.read", "VIEWER"))
    assert decision == Decision(False, ("role ADMIN or higher required",))  # not the cached allow

    policy = rego_copy / "authz.rego"
    policy.write_text(policy.read_text().replace('"role %s or higher required"', '"needs role %s"'))
    decision = await engine.decide(ask("tenant.read", "VIEWER"))
    assert decision == Decision(False, ("needs role ADMIN",))


async def test_without_dev_reload_files_are_read_once(
    rego_copy: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(embedded_module, "RELOAD_CHECK_SECONDS", 0.0)
    engine = EmbeddedRegoEngine(rego_copy, reload=False)
    edit_catalogue(rego_copy, "tenant.read", role="ADMIN")
    assert (await engine.decide(ask("tenant.read", "VIEWER"))).allow


async def test_broken_edit_fails_closed_until_fixed(rego_copy: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(embedded_module, "RELOAD_CHECK_SECONDS", 0.0)
    engine = EmbeddedRegoEngine(rego_copy, reload=True)
    assert await engine.ready()
    policy = rego_copy / "authz.rego"
    good = policy.read_text()
    policy.write_text(good + "\nbroken if {\n")
    with pytest.raises(PolicyUnavailable):
        await engine.decide(ask("tenant.read", "VIEWER"))
    assert not await engine.ready()
    assert engine.error
    policy.write_text(good)
    assert await engine.ready()
    assert (await engine.decide(ask("tenant.read", "VIEWER"))).allow


def test_bundle_that_does_not_compile_is_not_ready(rego_copy: Path) -> None:
    (rego_copy / "authz.rego").write_text("package uds.authz\nimport rego.v1\ndecision := {\n")
    engine = EmbeddedRegoEngine(rego_copy)
    with pytest.raises(PolicyUnavailable, match="failed to compile"):
        engine.evaluate({"action": "principal.read"})


async def test_undefined_or_malformed_decision_fails_closed(rego_copy: Path) -> None:
    policy = rego_copy / "authz.rego"
    policy.write_text(
        "package uds.authz\nimport rego.v1\n"
        'decision := {"allow": true, "reasons": []} if input.action == "tenant.read"\n'
        'decision := {"allow": "yes"} if input.action == "dashboard.read"\n'
    )
    engine = EmbeddedRegoEngine(rego_copy)
    assert (await engine.decide(ask("tenant.read", "VIEWER"))).allow
    with pytest.raises(PolicyUnavailable, match="undefined"):
        await engine.decide(ask("job.read", "VIEWER"))
    with pytest.raises(PolicyUnavailable, match="no decision"):
        await engine.decide(ask("dashboard.read", "VIEWER"))


@pytest.mark.parametrize(
    "value",
    [None, True, [], {}, {"allow": 1}, {"allow": False, "reasons": "no"}, {"allow": False, "reasons": [1]}],
)
def test_parse_decision_refuses_malformed(value: Any) -> None:
    with pytest.raises(PolicyUnavailable):
        parse_decision(value)


async def test_open_engine_picks_the_backend(tmp_path: Path) -> None:
    engine = await open_engine(Settings())
    assert isinstance(engine, EmbeddedRegoEngine) and engine.reload and engine.compile_seconds > 0
    await engine.aclose()
    with pytest.raises(ConfigError, match="UDS_POLICY_DIR"):
        await open_engine(Settings(policy_dir=tmp_path / "missing"))


def test_policy_settings_from_env() -> None:
    settings = Settings.from_env(
        {"UDS_POLICY_TIMEOUT": "0.25", "UDS_POLICY_RETRIES": "0", "UDS_POLICY_CACHE_SIZE": "50"}
    )
    assert (settings.policy_timeout_seconds, settings.policy_retries, settings.policy_cache_size) == (
        0.25,
        0,
        50,
    )
    for env in ({"UDS_POLICY_TIMEOUT": "soon"}, {"UDS_POLICY_TIMEOUT": "0"}, {"UDS_POLICY_RETRIES": "-1"}):
        with pytest.raises(ConfigError, match=next(iter(env))):
            Settings.from_env(env)


# Reasons built from literals inside the policy, checked through the production path (a JSON
# input document), where regopy's sprintf quoting quirk (docs/policies.md) must not show.
@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"action": 7}, "unknown action (none)"),
        ({"tenant": {"status": None}}, "tenant is in an unknown state: read-only"),
        ({"tenant": {"plan": None, "features": []}}, "plan (unknown) does not include feature discovery"),
        ({"tenant": {"limits": {}}}, "limit max_data_sources is not set for this tenant"),
        ({"resource": {"data_sources": "2"}}, "resource.data_sources must be a number"),
    ],
)
def test_literal_reasons_through_json_input(
    engine: EmbeddedRegoEngine, changes: dict[str, Any], reason: str
) -> None:
    document = ask("datasource.register", "EDITOR", resource={"data_sources": 0}).to_input()
    for key, value in changes.items():
        if isinstance(value, dict) and isinstance(document[key], dict):
            document[key] = {**document[key], **value}
        else:
            document[key] = value
    assert reason in engine.evaluate(document).reasons
