"""The engine on a second domain: a SaaS billing database of our own, discovered for real."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from dashboards.engine_kit import Source, assert_no_pii, check_widget, fetch, pii_shown, saas_source
from uds.dashboards.candidates import find_candidates
from uds.dashboards.generator import generate_dashboard
from uds.dashboards.goal import read_goal
from uds.dashboards.grafana import grafana_dashboard
from uds.dashboards.grafana_model import Dashboard
from uds.datasources.params import params_from_url
from uds.settings import Settings

GOALS = [
    "MRR by plan",
    "monthly invoice revenue",
    "top accounts by usage",
    "subscriptions by status",
    "average seats per plan tier",
    None,
]
PII_GOALS = [
    "accounts by contact name",
    "usage by ip address",
    "invoices by card number",
    "top contacts by email",
]


@pytest.fixture(scope="module")
async def saas(base_settings: Settings) -> AsyncIterator[Source]:
    assert base_settings.database_url
    async for source in saas_source(params_from_url(base_settings.database_url, database="postgres")):
        yield source


async def test_mrr_by_plan(saas: Source) -> None:
    d = generate_dashboard(saas.catalog, goal="MRR by plan")
    first = d.widgets[0]
    assert first.kind == "bar" and first.title == "Plans by total mrr of subscriptions"
    assert {"billing.subscriptions.mrr", "billing.plans.name"} <= set(first.columns)
    assert "subscriptions.plan_id -> plans.id (declared)" in first.reason
    columns, rows = await check_widget(saas, first)
    _, expected = await fetch(
        saas,
        """select p.name, sum(s.mrr) from billing.subscriptions s join billing.plans p on p.id = s.plan_id
           group by p.id, p.name order by 2 desc, 1""",
    )
    assert rows == expected


async def test_monthly_invoice_revenue(saas: Source) -> None:
    d = generate_dashboard(saas.catalog, goal="monthly invoice revenue")
    series = [w for w in d.widgets if w.kind == "timeseries" and len(w.spec["encoding"]) == 3]
    assert series, [w.title for w in d.widgets]
    for w in series:
        assert w.spec["usermeta"]["uds"]["grain"] == "month"  # the goal says monthly
        assert "billing.invoices.issued_at" in w.columns
        measure = next(c.rsplit(".", 1)[1] for c in w.columns if c.endswith(("amount_due", "amount_paid")))
        columns, rows = await check_widget(saas, w)
        _, expected = await fetch(
            saas,
            f"select date_trunc('month', issued_at), sum({measure}) from billing.invoices group by 1 order by 1",
        )
        assert rows == expected


async def test_top_accounts_by_usage(saas: Source) -> None:
    d = generate_dashboard(saas.catalog, goal="top accounts by usage")
    top = max(d.widgets, key=lambda w: w.score)
    assert top.title == "Top 10 accounts by number of usage events"
    # The account is named by its company, never by its contact person.
    assert "accounts.company_name names 300 accounts" in top.reason
    assert "usage_events.account_id -> accounts.id (inferred, confidence 0." in top.reason
    columns, rows = await check_widget(saas, top)
    _, expected = await fetch(
        saas,
        """select a.company_name, count(*) from billing.usage_events u join billing.accounts a on a.id = u.account_id
           group by a.id, 1 order by 2 desc, 1 limit 10""",
    )
    assert rows == expected


async def test_subscriptions_by_status(saas: Source) -> None:
    d = generate_dashboard(saas.catalog, goal="subscriptions by status")
    first = d.widgets[0]
    assert first.title == "Number of subscriptions by status"
    columns, rows = await check_widget(saas, first)
    _, expected = await fetch(
        saas, "select status, count(*) from billing.subscriptions group by 1 order by 2 desc, 1"
    )
    assert rows == expected


@pytest.mark.parametrize("goal", GOALS)
async def test_every_widget_keeps_the_rules(saas: Source, goal: str | None) -> None:
    d = generate_dashboard(saas.catalog, goal=goal)
    assert d.matched and 4 <= len(d.widgets) <= 8
    results = {w.key: (await check_widget(saas, w))[1] for w in d.widgets}
    assert_no_pii(saas, d, results)
    exported = grafana_dashboard(uid="saas-test", title=d.title, widgets=d.widgets)
    Dashboard.model_validate(exported)
    assert len(exported["panels"]) == len(d.widgets)


async def test_pii_is_never_grouped_labelled_or_listed(saas: Source) -> None:
    for goal in PII_GOALS:
        d = generate_dashboard(saas.catalog, goal=goal, max_widgets=12)
        results = {w.key: (await check_widget(saas, w))[1] for w in d.widgets}
        assert_no_pii(saas, d, results)
    reading = read_goal("contact name email phone ip card", saas.catalog)
    for c in find_candidates(saas.catalog, reading):
        assert not pii_shown(saas, c.sql), (c.title, pii_shown(saas, c.sql))
    # Counting a PII column is fine; the check tells the difference.
    assert pii_shown(saas, "select count(distinct a.contact_email) from billing.accounts a limit 1") == []
    assert pii_shown(saas, "select a.contact_name, count(*) from billing.accounts a group by 1 limit 3") == [
        "accounts.contact_name"
    ]
