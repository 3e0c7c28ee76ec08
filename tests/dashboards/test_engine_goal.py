"""read_goal: intents, aggregates, chart types, top-N, grain and field matches, with reasons."""

from __future__ import annotations

import pytest

from dashboards.engine_catalog import library_catalog
from uds.dashboards.goal import read_goal
from uds.dashboards.names import entity_label, singular, split_words, synonyms

CATALOG = library_catalog()


@pytest.mark.parametrize(
    ("goal", "intents"),
    [
        ("loans over time", ("trend",)),
        ("monthly late fees", ("trend",)),
        ("loans per week", ("trend",)),
        ("late fees by genre", ("breakdown",)),
        ("loans per genre", ("breakdown",)),
        ("compare channels", ("breakdown",)),
        ("top 5 members", ("top",)),
        ("least borrowed books", ("top",)),
        ("share of loans by channel", ("breakdown", "share")),
        ("distribution of days out", ("distribution",)),
        ("late fee vs days out", ("relationship",)),
        ("correlation between pages and replacement cost", ("relationship",)),
        ("how many loans", ("kpi",)),
        ("total late fees", ("kpi",)),
        ("key figures", ("kpi",)),
        ("loans by genre over time", ("trend", "breakdown")),
        ("loans by month", ("trend",)),  # a grain, not a breakdown
    ],
)
def test_intents(goal: str, intents: tuple[str, ...]) -> None:
    assert read_goal(goal, CATALOG).intents == intents


@pytest.mark.parametrize(
    ("goal", "aggregates"),
    [
        ("number of loans", ("count",)),
        ("how many members joined", ("count",)),
        ("count loans by channel", ("count",)),
        ("total late fee", ("sum",)),
        ("sum of replacement cost", ("sum",)),
        ("average days out", ("avg",)),
        ("mean late fee by genre", ("avg",)),
        ("minimum and maximum pages", ("min", "max")),
        ("loans by genre", ()),
    ],
)
def test_aggregates(goal: str, aggregates: tuple[str, ...]) -> None:
    assert read_goal(goal, CATALOG).aggregates == aggregates


@pytest.mark.parametrize(
    ("goal", "chart"),
    [
        ("loans by genre as a bar chart", "bar"),
        ("loans by channel bars", "bar"),
        ("loans per month line chart", "line"),
        ("loans by channel pie", "pie"),
        ("donut of loans by channel", "pie"),
        ("scatter of pages and cost", "scatter"),
        ("stacked loans by genre and channel", "stacked"),
        ("monthly loans as an area chart", "area"),
        ("histogram of days out", "histogram"),
        ("loans by genre as a table", "table"),
        ("loans per line item", None),  # "line" alone is not a chart type
        ("books table", None),  # nor is "table" alone (it may be a table's name)
    ],
)
def test_chart_type(goal: str, chart: str | None) -> None:
    assert read_goal(goal, CATALOG).chart == chart


def test_top_n_grain_and_direction() -> None:
    r = read_goal("top 5 members by loans", CATALOG)
    assert r.top_n == 5 and not r.ascending and "top" in r.intents
    r = read_goal("bottom three genres", CATALOG)
    assert r.top_n == 3 and r.ascending
    assert read_goal("top 500 books", CATALOG).top_n == 50  # capped
    assert read_goal("weekly loans", CATALOG).grain == "week"
    assert read_goal("loans per day", CATALOG).grain == "day"
    assert read_goal("loans over the last quarters", CATALOG).grain == "quarter"
    assert read_goal("loans by genre", CATALOG).grain is None


def test_field_matches_record_what_matched_what() -> None:
    r = read_goal("late fees by book genre", CATALOG)
    assert r.words == ("late", "fee", "book", "genre")
    assert r.by_words == ("book", "genre")
    described = {m.describe() for m in r.matches}
    assert "'fee' = loans.lateFee" in described  # camelCase is split
    assert "'genre' = books.genre" in described
    assert "'book' = books" in described
    assert "'book' = loans.book_id" in described
    # Synonyms and semantic types, each saying how.
    r = read_goal("customers by membership", CATALOG)
    assert "'customer' ~ members (synonym of member)" in {m.describe() for m in r.matches}
    r = read_goal("revenue", CATALOG)
    assert {m.describe() for m in r.matches} == {
        "'revenue' ~ books.replacement_cost (semantic type money)",
        "'revenue' ~ loans.lateFee (semantic type money)",
    }
    assert r.to_dict()["matches"]


def test_pii_columns_are_not_matched() -> None:
    r = read_goal("members by email", CATALOG)
    assert not any(m.ref.endswith(".email") for m in r.matches)
    assert "email" in r.unmatched


def test_vague_and_unmatched() -> None:
    for goal in (None, "", "   ", "show me a dashboard", "an overview please"):
        r = read_goal(goal, CATALOG)
        assert r.vague and r.matched
    r = read_goal("zebra migration", CATALOG)
    assert not r.matched and r.unmatched == ("zebra", "migration")
    r = read_goal("zebra loans", CATALOG)
    assert r.matched and r.unmatched == ("zebra",)
    r = read_goal("trends", CATALOG)
    assert not r.vague and r.matched and r.intents == ("trend",)


def test_long_goal_is_cut_and_reading_is_deterministic() -> None:
    goal = "loans by genre " * 100
    assert len(read_goal(goal, CATALOG).text) == 500
    assert read_goal("late fees by genre", CATALOG) == read_goal("late fees by genre", CATALOG)


def test_name_rules() -> None:
    assert split_words("totalAmount") == ["total", "amount"]
    assert split_words("HTTPStatus_code") == ["http", "status", "code"]
    assert split_words("Order Items") == ["order", "items"]
    assert [
        singular(w) for w in ("categories", "addresses", "statuses", "status", "boxes", "sales", "bus")
    ] == [
        "category",
        "address",
        "status",
        "status",
        "box",
        "sale",
        "bus",
    ]
    assert "amount" in synonyms("revenue") and "client" in synonyms("customer")
    assert entity_label("order_items") == "order item"
