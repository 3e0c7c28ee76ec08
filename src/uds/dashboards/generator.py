"""Choosing widgets: score every candidate, keep the best few, lay them out.

score = goal match + data shape + quality, each in 0..1, weighted by how much the goal says:

- goal match (`goal_score`): how many of the goal's field words the widget covers (a word
  counts with the strength of its best match among the widget's columns and tables),
  whether its intents are the goal's (trend, breakdown, top, ...), and whether it uses
  the aggregate and chart type the goal names;
- overview prior: how useful the widget is in an overview (time series on creation time
  and row counts first), times the importance of its table (big tables with measures,
  times and references first);
- data shape: categories with a readable number of values, time spans with enough points;
- quality: completeness of the columns used, the tables' quality scores, the confidence
  of inferred joins.

With field words that match: 0.6 goal + 0.15 prior + 0.15 shape + 0.1 quality. With only
intents or a chart type: 0.45 / 0.25 / 0.15 / 0.15. No goal, or one that matches
nothing: 0.5 prior + 0.25 shape + 0.25 quality (the overview).

The choice is greedy and deterministic: the best widget first, then each next one by its
score discounted for repeating a table (x0.9) or a kind (x0.85) already chosen (x0.97
and x0.93 when a goal steers: it asks for related views of one thing), skipping
near-duplicates (the same measure over the same dimensions: a bar and a pie of one
breakdown) and keeping at most 4 KPIs. When the goal matched, only widgets that answer it
are taken, topped up with the best others to at least 4. Ties go to the smaller key.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

from uds.dashboards.candidates import Candidate, find_candidates
from uds.dashboards.catalogfacts import MEASURE_TYPES
from uds.dashboards.draft import GRID_COLUMNS, DashboardDraft, GridPos, WidgetDraft
from uds.dashboards.goal import SEMANTIC_WORDS, FieldMatch, GoalReading, read_goal
from uds.dashboards.names import title_case
from uds.discovery.snapshot import CatalogSnapshot
from uds.errors import BadUserInput

MIN_WIDGETS = 4
MAX_WIDGETS = 12
DEFAULT_WIDGETS = 8
MAX_KPIS = 4
KPI_SIZE = (3, 2)
CHART_SIZE = (6, 4)
TABLE_SIZE = (12, 5)

_CHART_KINDS = {
    "bar": {"bar", "stacked_bar"},
    "line": {"timeseries"},
    "area": {"timeseries"},
    "pie": {"pie"},
    "scatter": {"scatter"},
    "histogram": {"histogram"},
    "table": {"table"},
    "stacked": {"stacked_bar"},
}


def generate_dashboard(
    catalog: CatalogSnapshot,
    *,
    goal: str | None,
    tables: Sequence[str] | None = None,
    max_widgets: int = DEFAULT_WIDGETS,
) -> DashboardDraft:
    """Read the goal, find the candidates, choose and lay out the widgets."""
    _check_max(max_widgets)
    reading = read_goal(goal, catalog)
    candidates = find_candidates(catalog, reading, tables=tables)
    return choose(candidates, reading, max_widgets=max_widgets)


def _check_max(max_widgets: int) -> None:
    if not isinstance(max_widgets, int) or not 1 <= max_widgets <= MAX_WIDGETS:
        raise BadUserInput(f"maxWidgets must be between 1 and {MAX_WIDGETS}")


def widget_key(kind: str, sql: str) -> str:
    """Stable from the content: the same widget gets the same key in every run."""
    return "w" + hashlib.sha256(f"{kind}\n{sql}".encode()).hexdigest()[:12]


def choose(candidates: Sequence[Candidate], reading: GoalReading, *, max_widgets: int) -> DashboardDraft:
    """The best widgets for the reading, laid out KPIs first (see the module doc)."""
    _check_max(max_widgets)
    if not candidates:
        raise BadUserInput("nothing in the catalog can be charted")
    scored = []
    for c in candidates:
        goal, covered = goal_score(c, reading)
        scored.append((total_score(c, goal, reading), goal, covered, widget_key(c.kind, c.sql), c))
    scored.sort(key=lambda s: (-s[0], s[3]))
    steering = reading.matched and not reading.vague
    relevant = [s for s in scored if s[1] > 0] if steering else scored
    # A goal asks for related views of one thing: repeating a table or a kind costs less.
    spread = (0.97, 0.93) if steering else (0.9, 0.85)
    picked = _greedy(relevant, max_widgets, spread=spread)
    floor = min(MIN_WIDGETS, max_widgets)
    if len(picked) < floor:
        rest = [s for s in scored if s not in picked]
        picked += _greedy(rest, floor - len(picked), already=picked, spread=spread)
    widgets = _layout(picked, reading)
    return DashboardDraft(
        title=_title(reading, picked),
        goal=reading.text or None,
        message=_message(reading, picked),
        matched=reading.matched,
        widgets=widgets,
    )


def _refs(c: Candidate) -> dict[str, float]:
    """What a candidate covers, with a weight: the columns it aggregates or groups by, the
    table whose rows it aggregates and the entities it ranks fully; the columns it only
    joins on and the other tables it reads from less."""
    refs = dict.fromkeys(c.columns, 0.6)
    refs.update(dict.fromkeys(c.measure_refs, 1.0))
    for d in c.dims:
        refs.update(dict.fromkeys(d.refs, 1.0))
        if d.target:
            refs[d.target] = 1.0
    refs[c.base] = 1.0
    for t in c.tables:
        refs.setdefault(t, 0.75)
    return refs


def goal_score(c: Candidate, reading: GoalReading) -> tuple[float, list[FieldMatch]]:
    """How well `c` answers the goal (0..1), and the goal matches it covers.

    Measure words ("revenue", "spend", "quantity") are the goal's subject: a widget that
    does not aggregate a column they match answers at most half of the goal. Other words
    after "by"/"per" ask for a grouping: only a widget grouped on them answers them fully,
    and only such a widget counts as the breakdown the goal asks for.
    """
    if reading.vague or not reading.matched:
        return 0.0, []
    refs = _refs(c)
    dim_refs = {r for d in c.dims for r in d.refs} | {
        d.target or f"{d.table.schema}.{d.table.name}" for d in c.dims
    }
    measure_refs = c.measure_refs
    words = [w for w in reading.words if w not in reading.unmatched]
    measure_words = {w for w in words if set(SEMANTIC_WORDS.get(w, ())) & MEASURE_TYPES}
    by_dims = {w for w in reading.by_words if w in words and w not in measure_words}
    covered: list[FieldMatch] = []
    coverage = 0.0
    measured = grouped = False
    for word in words:
        best: tuple[float, FieldMatch] | None = None
        for m in reading.matches_for(word):
            if m.ref not in refs:
                continue
            strength = m.strength * refs[m.ref]
            if word in by_dims and m.ref not in dim_refs:
                strength *= 0.0 if c.kind == "kpi" else 0.8
            if best is None or strength > best[0]:
                best = (strength, m)
        if best is None or best[0] <= 0:
            continue
        coverage += best[0]
        covered.append(best[1])
        measured = measured or (word in measure_words and best[1].ref in measure_refs)
        grouped = grouped or (word in by_dims and best[1].ref in dim_refs)
    answers = set(c.intents)
    if by_dims and not grouped:
        answers.discard("breakdown")
    intents = set(reading.intents)
    intent = len(intents & answers) / len(intents) if intents else 0.5
    if intents and (answers - intents - {"top", "breakdown", "share"}):
        intent *= 0.7  # an axis nobody asked for (a time axis, a distribution) answers less
    if not intents and c.kind == "kpi" and words:
        intent = 0.4  # "payment methods" is a breakdown more than a single figure
    aggregate = 0.5
    if reading.aggregates:
        aggregate = 1.0 if c.measure.agg in reading.aggregates else 0.0
    chart = 0.5
    if reading.chart:
        chart = 1.0 if c.kind in _CHART_KINDS[reading.chart] else 0.0
        if reading.chart == "stacked" and c.kind == "timeseries" and len(c.dims) > 1:
            chart = 1.0
    if words:
        if not covered:
            return 0.0, []
        score = 0.65 * coverage / len(words) + 0.2 * intent + 0.1 * aggregate + 0.05 * chart
        if measure_words and not measured:
            score *= 0.5
    else:
        score = 0.6 * intent + 0.25 * aggregate + 0.15 * chart
        if intent == 0 and chart < 1:
            return 0.0, []
    return round(score, 4), covered


def total_score(c: Candidate, goal: float, reading: GoalReading) -> float:
    if reading.vague or not reading.matched:
        score = 0.5 * c.prior + 0.25 * c.shape + 0.25 * c.quality
    elif reading.words:
        score = 0.6 * goal + 0.15 * c.prior + 0.15 * c.shape + 0.1 * c.quality
    else:
        score = 0.45 * goal + 0.25 * c.prior + 0.15 * c.shape + 0.15 * c.quality
    return round(score, 4)


_Scored = tuple[float, float, list[FieldMatch], str, Candidate]


def _greedy(
    pool: list[_Scored], n: int, *, spread: tuple[float, float], already: Sequence[_Scored] = ()
) -> list[_Scored]:
    chosen: list[_Scored] = []
    signatures = {s[4].signature for s in already}
    remaining = [s for s in pool if s[4].signature not in signatures]
    while remaining and len(chosen) < n:
        taken = [*already, *chosen]
        kpis = sum(1 for s in taken if s[4].kind == "kpi")

        def adjusted(s: _Scored, taken: list[_Scored] = taken) -> float:
            c = s[4]
            same_table = sum(1 for t in taken if t[4].base == c.base)
            same_kind = sum(1 for t in taken if t[4].kind == c.kind)
            return s[0] * (spread[0] ** same_table) * (spread[1] ** same_kind)

        options = [s for s in remaining if not (s[4].kind == "kpi" and kpis >= MAX_KPIS)]
        if not options:
            break
        best = min(options, key=lambda s: (-adjusted(s), s[3]))
        chosen.append(best)
        signatures.add(best[4].signature)
        remaining = [s for s in remaining if s[4].signature not in signatures]
    return chosen


def _layout(picked: list[_Scored], reading: GoalReading) -> list[WidgetDraft]:
    """KPIs in the first row(s), 3 wide; charts 6 wide, two a row, in score order; tables
    last, and a lone chart in the last row, full width."""
    kpis = [s for s in picked if s[4].kind == "kpi"]
    charts = [s for s in picked if s[4].kind not in ("kpi", "table")]
    charts += [s for s in picked if s[4].kind == "table"]
    out: list[WidgetDraft] = []
    x = y = 0
    for s in kpis:
        w, h = KPI_SIZE
        if x + w > GRID_COLUMNS:
            x, y = 0, y + h
        out.append(_widget(s, GridPos(x, y, w, h), reading))
        x += w
    if kpis:
        x, y = 0, y + KPI_SIZE[1]
    row_height = 0
    for i, s in enumerate(charts):
        w, h = TABLE_SIZE if s[4].kind == "table" else CHART_SIZE
        last = i == len(charts) - 1
        if w < GRID_COLUMNS and x == 0 and last:
            w = GRID_COLUMNS  # a lone chart in the last row takes the row
        if x + w > GRID_COLUMNS:
            x, y = 0, y + row_height
            row_height = 0
        out.append(_widget(s, GridPos(x, y, w, h), reading))
        row_height = max(row_height, h)
        x += w
        if x >= GRID_COLUMNS:
            x, y = 0, y + row_height
            row_height = 0
    return out


def _widget(s: _Scored, position: GridPos, reading: GoalReading) -> WidgetDraft:
    score, _goal, covered, key, c = s
    parts: list[str] = []
    if covered:
        parts.append("Answers the goal: " + ", ".join(m.describe() for m in covered))
    parts.extend(c.facts)
    return WidgetDraft(
        key=key,
        title=c.title,
        kind=c.kind,
        sql=c.sql,
        spec=c.spec,
        position=position,
        score=score,
        reason="; ".join(parts) + ".",
        columns=list(c.columns),
    )


def _tables_text(picked: Sequence[_Scored]) -> str:
    tables = list(dict.fromkeys(s[4].base.split(".", 1)[1] for s in picked))
    return ", ".join(tables[:4])


def _title(reading: GoalReading, picked: Sequence[_Scored]) -> str:
    if reading.text and reading.matched and not reading.vague:
        return title_case(reading.text)[:120]
    return f"Overview of {_tables_text(picked)}"


def _message(reading: GoalReading, picked: Sequence[_Scored]) -> str:
    overview = f"an overview of the largest tables ({_tables_text(picked)})"
    if not reading.text:
        return f"No goal given: {overview}."
    if not reading.matched:
        words = ", ".join(f"'{w}'" for w in reading.unmatched)
        return f"Nothing in the catalog matches the goal ({words}): showing {overview} instead."
    if reading.vague:
        return f"The goal names no table, column or kind of chart: {overview}."
    parts = []
    if reading.intents:
        parts.append("intents " + ", ".join(reading.intents))
    best: dict[str, FieldMatch] = {}
    for m in reading.matches:
        if m.word not in best:
            best[m.word] = m
    if best:
        parts.append("fields " + ", ".join(m.describe() for m in best.values()))
    if reading.aggregates:
        parts.append("aggregates " + ", ".join(reading.aggregates))
    if reading.chart:
        parts.append(f"chart {reading.chart}")
    text = "Read the goal as " + "; ".join(parts) + "."
    if reading.unmatched:
        text += " No match for " + ", ".join(f"'{w}'" for w in reading.unmatched) + "."
    return text
