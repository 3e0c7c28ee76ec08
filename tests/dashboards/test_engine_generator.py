"""Candidates, scores, choice and layout on a hand-written catalog (no database needed)."""

from __future__ import annotations

import copy
import json
import random

import pytest

from dashboards.engine_catalog import column, library_catalog, table
from uds.dashboards.candidates import find_candidates
from uds.dashboards.draft import GRID_COLUMNS, KINDS, DashboardDraft
from uds.dashboards.generator import choose, generate_dashboard, goal_score, widget_key
from uds.dashboards.goal import read_goal
from uds.dashboards.sqlcheck import check_widget_sql
from uds.dashboards.vegalite import validate_spec
from uds.discovery.snapshot import CatalogSnapshot, Figure, Relationship
from uds.errors import BadUserInput

CATALOG = library_catalog()


def overlaps(d: DashboardDraft) -> bool:
    cells: set[tuple[int, int]] = set()
    for w in d.widgets:
        p = w.position
        mine = {(x, y) for x in range(p.x, p.x + p.w) for y in range(p.y, p.y + p.h)}
        if cells & mine:
            return True
        cells |= mine
    return False


@pytest.mark.parametrize(
    "goal", [None, "late fees by genre", "top members by loans", "how many loans per month", "kpis", "trends"]
)
@pytest.mark.parametrize("max_widgets", [1, 4, 8, 12])
def test_layout(goal: str | None, max_widgets: int) -> None:
    d = generate_dashboard(CATALOG, goal=goal, max_widgets=max_widgets)
    assert 1 <= len(d.widgets) <= max_widgets
    assert len(d.widgets) >= min(4, max_widgets)
    assert not overlaps(d)
    for w in d.widgets:
        assert w.kind in KINDS
        assert 0 <= w.position.x and w.position.x + w.position.w <= GRID_COLUMNS
        assert w.key == widget_key(w.kind, w.sql)
        validate_spec(w.spec)
        check_widget_sql(w.sql, allowed_schemas={"library"})
    # KPIs come first, in the top row(s), small.
    kinds = [w.kind for w in d.widgets]
    assert kinds == sorted(kinds, key=lambda k: k != "kpi")
    assert sum(1 for k in kinds if k == "kpi") <= 4
    for w in d.widgets:
        if w.kind == "kpi":
            assert (w.position.w, w.position.h) == (3, 2)
    # One dashboard never repeats a widget, nor shows one breakdown both as bars and as a pie.
    assert len({w.title for w in d.widgets}) == len(d.widgets)
    breakdowns = [
        (w.spec["encoding"].get("theta", w.spec["encoding"].get("x", {})).get("field"), tuple(w.columns))
        for w in d.widgets
        if w.kind in ("bar", "pie")
    ]
    assert len(breakdowns) == len(set(breakdowns))


def test_max_widgets_bounds() -> None:
    for bad in (0, 13, -1, "8", 2.5):
        with pytest.raises(BadUserInput, match="maxWidgets"):
            generate_dashboard(CATALOG, goal=None, max_widgets=bad)  # type: ignore[arg-type]
    reading = read_goal(None, CATALOG)
    with pytest.raises(BadUserInput, match="nothing in the catalog"):
        choose([], reading, max_widgets=8)


def test_reasons_carry_data_facts() -> None:
    d = generate_dashboard(CATALOG, goal="late fees by genre")
    first = d.widgets[0]
    assert first.title == "Total late fee of loans by book genre"
    assert first.reason.startswith("Answers the goal: 'late' = loans.lateFee, 'fee' = loans.lateFee")
    assert "books.genre has 12 values (most common: fiction 30%, history 15%, science 10%)" in first.reason
    assert "loans.lateFee is money (semantic type money), from 0.50 to 25.00, 70% empty" in first.reason
    assert "joined loans.book_id -> books.id (inferred, confidence 0.93)" in first.reason
    d = generate_dashboard(CATALOG, goal="how many loans per month")
    series = next(w for w in d.widgets if w.kind == "timeseries")
    assert (
        "loans.borrowed_at is the creation time of 20,000 loans from 2023-01-01 to 2024-12-31 (2.0 years), "
        "shown per month as the goal asks" in series.reason
    )


def test_inferred_joins_below_the_threshold_are_not_used() -> None:
    weak = library_catalog(book_confidence=0.5)
    for c in find_candidates(weak, read_goal("late fees by genre", weak)):
        if c.base == "library.loans":
            assert "library.books" not in c.tables, c.title
    strong = find_candidates(CATALOG, read_goal("late fees by genre", CATALOG))
    assert any(c.base == "library.loans" and "library.books" in c.tables for c in strong)


def test_members_have_no_label_so_they_are_shown_by_id() -> None:
    d = generate_dashboard(CATALOG, goal="top members by loans")
    top = next(w for w in d.widgets if w.title == "Top 10 members by number of loans")
    assert 'CAST("t0"."member_id" AS text) AS "member"' in top.sql
    assert "members has no non-personal name column, so members are shown by id" in top.reason
    assert "full_name" not in top.sql and "email" not in top.sql


def test_books_are_named_by_their_title() -> None:
    d = generate_dashboard(CATALOG, goal="top books by loans")
    top = d.widgets[0] if d.widgets[0].kind != "kpi" else d.widgets[1]
    assert top.title == "Top 10 books by number of loans"
    # Titles repeat, so the key goes with them; the group is the book, not the title.
    assert '|| \' #\' || CAST("t1"."id" AS text)' in top.sql
    assert 'GROUP BY 1, "t1"."id"' in top.sql


def test_chart_type_and_aggregate_are_honoured() -> None:
    d = generate_dashboard(CATALOG, goal="average days out by genre as a pie")
    first = max(d.widgets, key=lambda w: w.score)
    assert first.kind == "bar" or first.kind == "pie"
    assert any(w.kind == "pie" for w in d.widgets) or all(w.kind != "pie" for w in d.widgets)
    d = generate_dashboard(CATALOG, goal="average days out by genre")
    assert d.widgets[0].title == "Average days out of loans by book genre"
    d = generate_dashboard(CATALOG, goal="monthly loans as an area chart")
    series = [w for w in d.widgets if w.kind == "timeseries"]
    assert series and all(w.spec["mark"]["type"] == "area" for w in series)
    d = generate_dashboard(CATALOG, goal="distribution of days out")
    best = max(d.widgets, key=lambda w: w.score)
    assert best.kind == "histogram" and best.title == "Distribution of days out (loans)"
    d = generate_dashboard(CATALOG, goal="pages vs replacement cost")
    assert max(d.widgets, key=lambda w: w.score).kind == "scatter"


def test_goal_scores_explain_the_order() -> None:
    reading = read_goal("late fees by genre", CATALOG)
    scored = {c.title: goal_score(c, reading)[0] for c in find_candidates(CATALOG, reading)}
    assert scored["Total late fee of loans by book genre"] > scored["Total late fee of loans by channel"]
    assert scored["Total late fee of loans by channel"] > scored["Number of loans by channel"]
    # A single figure cannot answer "by genre".
    assert scored["Total late fee of loans"] < scored["Total late fee of loans by book genre"] - 0.3


def test_deterministic_and_independent_of_catalog_order() -> None:
    first = json.dumps(generate_dashboard(CATALOG, goal="late fees by genre").to_dict())
    shuffled = copy.deepcopy(CATALOG)
    shuffled.tables.reverse()
    for t in shuffled.tables:
        t.columns.reverse()
    shuffled.relationships.reverse()
    assert json.dumps(generate_dashboard(shuffled, goal="late fees by genre").to_dict()) == first


def test_identifiers_are_quoted() -> None:
    odd = CatalogSnapshot(
        database="odd",
        server_version="16",
        tables=[
            table(
                'Order "Lines"',
                500,
                [
                    column("id", "integer", position=1, semantic="identifier", distinct=500, low=1, high=500),
                    column(
                        'Unit "Price"',
                        "number",
                        position=2,
                        semantic="money",
                        distinct=300,
                        low="1",
                        high="99",
                    ),
                    column("Kind; drop table x", "text", position=3, semantic="category", distinct=3),
                    column(
                        "Created At",
                        "time",
                        position=4,
                        semantic="created_at",
                        distinct=500,
                        low="2024-01-01 00:00:00+00",
                        high="2024-06-01 00:00:00+00",
                    ),
                ],
                schema='Odd "Schema"',
            )
        ],
    )
    d = generate_dashboard(odd, goal=None, max_widgets=12)
    assert d.widgets
    for w in d.widgets:
        assert '"Odd ""Schema"""."Order ""Lines"""' in w.sql
        check_widget_sql(w.sql, allowed_schemas={'Odd "Schema"'})
    assert any('"Unit ""Price"""' in w.sql for w in d.widgets)
    assert any('"Kind; drop table x"' in w.sql for w in d.widgets)


def test_tables_are_chosen_by_name() -> None:
    d = generate_dashboard(CATALOG, goal=None, tables=["library.books"])
    assert all('FROM "library"."books"' in w.sql for w in d.widgets)
    twice = copy.deepcopy(CATALOG)
    other = copy.deepcopy(twice.tables[1])
    other.schema = "archive"
    twice.tables.append(other)
    with pytest.raises(BadUserInput, match="several schemas"):
        generate_dashboard(twice, goal=None, tables=["books"])
    assert generate_dashboard(twice, goal=None, tables=["archive.books"]).widgets


def test_empty_tables_are_left_out() -> None:
    empty = copy.deepcopy(CATALOG)
    empty.tables[0].row_estimate = Figure(0, "exact")  # members
    d = generate_dashboard(empty, goal=None)
    assert not any('FROM "library"."members"' in w.sql for w in d.widgets)
    nothing = CatalogSnapshot("x", "16", tables=[table("t", 0, [column("id", "integer", position=1)])])
    with pytest.raises(BadUserInput, match=r"nothing|no table"):
        generate_dashboard(nothing, goal=None)


def test_relationship_to_a_non_key_is_not_joined() -> None:
    bad = copy.deepcopy(CATALOG)
    bad.relationships.append(
        Relationship(
            "library",
            "loans",
            ["channel"],
            "library",
            "members",
            ["membership_type"],
            declared=True,
            confidence=1.0,
        )
    )
    for c in find_candidates(bad, read_goal(None, bad)):
        assert 'membership_type" = ' not in c.sql and '= "t0"."channel"' not in c.sql


@pytest.mark.parametrize("seed", range(6))
def test_partial_catalogs_still_give_dashboards(seed: int) -> None:
    """Tables discovery could not profile, columns without semantic types, no relationships,
    unknown row counts: still a dashboard whose SQL and specs pass their checks."""
    rnd = random.Random(seed)
    partial = copy.deepcopy(CATALOG)
    for t in partial.tables:
        if rnd.random() < 0.4:
            t.row_estimate = None
        if rnd.random() < 0.3:
            t.quality = None
        for c in t.columns:
            if rnd.random() < 0.4:
                c.profile = None
            if rnd.random() < 0.4 and not c.pii:
                c.semantic_type = None
    if seed % 2:
        partial.relationships = []
    for goal in (None, "late fees by genre", "top members by loans", "zebra"):
        d = generate_dashboard(partial, goal=goal)
        assert d.widgets
        for w in d.widgets:
            check_widget_sql(w.sql, allowed_schemas={"library"})
            validate_spec(w.spec)
            assert "full_name" not in w.sql and "email" not in w.sql
