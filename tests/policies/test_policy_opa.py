"""The `opa` backend: its HTTP behaviour against a fake, its decisions against a real OPA.

tests/policies/opa_fake.py speaks OPA's Data API. It checks what the backend does on the
wire: the input it sends, how it reads an answer, timeouts, bounded retries, failing
closed on a malformed answer. It cannot show that OPA decides like the embedded engine (its
own answers come from that engine), so the parity test runs only against a real OPA named by
UDS_TEST_OPA_URL and is skipped, with that reason, where none is configured.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest
from opa_fake import FakeOpa, dead_url, real_opa_url, running_fake_opa

from uds.auth.principal import PLATFORM_ADMIN, Principal
from uds.errors import ConfigError, PolicyUnavailable
from uds.policies import EmbeddedRegoEngine, OpaServerEngine, PolicyInput, TenantFacts, open_engine
from uds.settings import Settings
from uds.tenants.registry import TenantRecord


@pytest.fixture(scope="module")
async def fake() -> AsyncIterator[FakeOpa]:
    async with running_fake_opa() as server:
        yield server


@pytest.fixture
async def misbehaving(fake: FakeOpa) -> AsyncIterator[FakeOpa]:
    """The fake, reset to good behaviour after the test."""
    fake.requests = 0
    yield fake
    fake.mode = "ok"


async def opa_engine(url: str, *, per_attempt: float = 0.5, retries: int = 1) -> OpaServerEngine:
    return await OpaServerEngine(url, timeout=per_attempt, retries=retries).start()


def tenant(status: str = "active", plan: str = "free", **overrides: object) -> TenantFacts:
    return TenantFacts.from_record(TenantRecord(uuid.uuid4(), "acme", "Acme", status, plan, dict(overrides)))


ana = Principal("ana@acme", "uds", "user")
root = Principal("root", "uds", "user", frozenset({PLATFORM_ADMIN}))
svc = Principal("svc-ci", "uds", "service", tenant="acme")

CASES = [
    PolicyInput(principal=ana, action="principal.read"),
    PolicyInput(principal=None, action="tenant.read"),
    PolicyInput(principal=ana, action="nuke.everything"),
    PolicyInput(principal=ana, action="tenant.create"),
    PolicyInput(principal=root, action="tenant.create"),
    PolicyInput(principal=ana, action="tenant.read", tenant_role="VIEWER", tenant=tenant()),
    PolicyInput(principal=ana, action="member.write", tenant_role="EDITOR", tenant=tenant()),
    PolicyInput(principal=ana, action="member.write", tenant_role="ADMIN", tenant=tenant("suspended")),
    PolicyInput(principal=ana, action="dashboard.export", tenant_role="VIEWER", tenant=tenant()),
    PolicyInput(
        principal=ana,
        action="discovery.start",
        tenant_role="EDITOR",
        tenant=tenant(max_concurrent_jobs=3),
        resource={"running_jobs": 3, "row_budget": 5_000_000},
    ),
    PolicyInput(principal=svc, action="member.write", tenant_role="ADMIN", tenant=tenant()),
    PolicyInput(
        principal=ana, action="job.cancel", tenant_role="EDITOR", tenant=tenant(), resource={"owner": "x"}
    ),
]


NO_REAL_OPA = (
    "decision parity needs a real OPA server: set UDS_TEST_OPA_URL (see docs/policies.md); "
    "this machine has none, and the fake's answers come from the embedded engine itself"
)


@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c.action}-{c.tenant_role}")
async def test_real_opa_decides_like_the_embedded_engine(case: PolicyInput) -> None:
    url = real_opa_url()
    if url is None:
        pytest.skip(NO_REAL_OPA)
    engine = await opa_engine(url)
    try:
        assert await engine.decide(case) == await EmbeddedRegoEngine().decide(case)
    finally:
        await engine.aclose()


@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c.action}-{c.tenant_role}")
async def test_backend_sends_the_input_and_returns_the_answer_unchanged(
    misbehaving: FakeOpa, case: PolicyInput
) -> None:
    """Wire level only: the input document goes out as built, the server's answer comes back."""
    misbehaving.mode = "scripted"
    misbehaving.scripted = {"allow": case.action.endswith("read"), "reasons": [f"scripted for {case.action}"]}
    engine = await opa_engine(misbehaving.url)
    try:
        decision = await engine.decide(case)
        assert misbehaving.last_input == case.to_input()
        assert (decision.allow, list(decision.reasons)) == (
            misbehaving.scripted["allow"],
            misbehaving.scripted["reasons"],
        )
    finally:
        await engine.aclose()


async def test_ready_when_the_server_answers(fake: FakeOpa) -> None:
    engine = await opa_engine(real_opa_url() or fake.url)
    try:
        assert await engine.ready()
    finally:
        await engine.aclose()


async def test_server_down_fails_closed() -> None:
    engine = await opa_engine(dead_url(), retries=1)
    try:
        with pytest.raises(PolicyUnavailable, match="unreachable"):
            await engine.decide(CASES[0])
        assert not await engine.ready()
    finally:
        await engine.aclose()


async def test_slow_server_times_out(misbehaving: FakeOpa) -> None:
    misbehaving.mode = "slow"
    misbehaving.slow_seconds = 1.0
    engine = await opa_engine(misbehaving.url, per_attempt=0.1, retries=0)
    try:
        with pytest.raises(PolicyUnavailable, match="timed out") as caught:
            await engine.decide(CASES[0])
        assert caught.value.code == "POLICY_UNAVAILABLE"
        assert not await engine.ready()
    finally:
        await engine.aclose()


async def test_server_errors_are_retried_a_bounded_number_of_times(misbehaving: FakeOpa) -> None:
    misbehaving.mode = "error500"
    engine = await opa_engine(misbehaving.url, retries=2)
    try:
        with pytest.raises(PolicyUnavailable):
            await engine.decide(CASES[0])
        assert misbehaving.requests == 3  # the first attempt and two retries
    finally:
        await engine.aclose()


@pytest.mark.parametrize(
    ("mode", "message"),
    [
        ("not_json", "unreachable or failed"),
        ("json_garbage", "unreachable or failed"),
        ("no_result", "undefined"),
        ("no_allow", "no decision"),
        ("not_object", "no decision"),
    ],
)
async def test_malformed_answers_fail_closed(misbehaving: FakeOpa, mode: str, message: str) -> None:
    misbehaving.mode = mode
    engine = await opa_engine(misbehaving.url, retries=0)
    try:
        with pytest.raises(PolicyUnavailable, match=message):
            await engine.decide(CASES[0])
        assert not await engine.ready()
    finally:
        await engine.aclose()


async def test_open_engine_uses_opa_when_a_url_is_set(fake: FakeOpa) -> None:
    engine = await open_engine(Settings(policy_url=fake.url, policy_timeout_seconds=0.3, policy_retries=0))
    try:
        assert isinstance(engine, OpaServerEngine)
        assert (engine.timeout, engine.retries) == (0.3, 0)
        assert (await engine.decide(CASES[4])).allow
    finally:
        await engine.aclose()


@pytest.mark.parametrize(
    ("url", "retries"),
    [("http://opa:8181/v1/data", 1), ("ftp://opa", 1), ("http://opa:8181", 6), ("http://opa:8181", -1)],
)
def test_bad_configuration_is_refused(url: str, retries: int) -> None:
    with pytest.raises(ConfigError):
        OpaServerEngine(url, retries=retries)
