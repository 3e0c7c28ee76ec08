"""Candidate widgets: every chart the catalog's facts support, each with its SQL, spec and
the data facts that justify it.

For each table (the rows being counted or summed) the candidates are:

- KPIs: the row count, sums of money and quantity columns, the average of money columns;
- time series of the count and the sums on its creation or event time (or, for a table
  without one, on the time of the row it refers to), at a grain chosen from the
  column's min/max span, optionally split by a category (the 8 largest series, the rest
  folded into "(other)");
- breakdowns by low-cardinality categories (its own, or of rows it refers to), as bars,
  as a pie for at most 6 values, stacked by a second category, or as a summary table;
- top-N of the entities it refers to (customers, products, ...), through declared
  relationships and inferred ones above a confidence threshold, named by a non-personal
  label column when the entity has one and by its key otherwise;
- histograms of its measures, and a binned scatter of two measures.

Joins only go from the counted row to the row it refers to (many-to-one), at most two
hops, so a sum is never repeated by a join. PII columns are never a category, a label or
a series; they are only counted (see catalogfacts.is_pii). A candidate knows its data
shape and the quality of its columns (scores in 0..1); how well it answers the goal is
the generator's part.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from decimal import Decimal
from typing import Any

from uds.dashboards import vegalite
from uds.dashboards.catalogfacts import (
    MAX_PIE_VALUES,
    Measure,
    TableFacts,
    column_ref,
    count_text,
    distinct_count,
    null_fraction,
    number_range,
    table_facts,
)
from uds.dashboards.dimensions import Dim, MeasureDef, TableParts
from uds.dashboards.goal import GoalReading
from uds.dashboards.names import humanize, title_case
from uds.dashboards.querybuild import (
    FromClause,
    Path,
    folded_split_sql,
    result_name,
    select_sql,
)
from uds.discovery.snapshot import CatalogSnapshot, ColumnSnapshot, Relationship
from uds.errors import BadUserInput

MAX_SERIES = 8
MAX_BARS = 20
DEFAULT_TOP_N = 10
MAX_SPLIT_ENTITIES = 50
HISTOGRAM_BINS = 20
SCATTER_BINS = 40


@dataclass(slots=True)
class Candidate:
    kind: str  # kpi | timeseries | bar | stacked_bar | pie | histogram | scatter | table
    intents: frozenset[str]
    title: str
    sql: str
    spec: dict[str, Any]
    base: str  # "schema.table" of the rows being aggregated
    tables: tuple[str, ...]
    columns: tuple[str, ...]  # "schema.table.column" of every column used
    measure: MeasureDef
    dims: tuple[Dim, ...]
    facts: tuple[str, ...]
    shape: float  # 0..1: how well the data suits the chart
    quality: float  # 0..1: completeness of the columns, table quality, join confidence
    prior: float  # 0..1: how useful this widget is in an overview of the catalog
    signature: tuple[str, ...]  # near-identical widgets share it
    extra_refs: tuple[str, ...] = field(default=())  # measured columns of histograms and scatters

    @property
    def measure_refs(self) -> frozenset[str]:
        """The columns whose values are aggregated (summed, averaged, binned)."""
        own = (f"{self.base}.{c}" for c in self.measure.columns)
        return frozenset((*own, *self.extra_refs))


def find_candidates(
    catalog: CatalogSnapshot, reading: GoalReading, *, tables: Sequence[str] | None = None
) -> list[Candidate]:
    """Every widget the catalog supports, in a deterministic order (see module doc).

    `tables` restricts the tables whose rows are aggregated ("schema.table" or a table
    name); joined tables may lie outside it. Raises BadUserInput for an empty catalog, an
    unknown table, or a catalog with nothing to chart.
    """
    if not catalog.tables:
        raise BadUserInput("the catalog has no tables: run discovery on the data source first")
    facts = table_facts(catalog)
    bases = _select_tables(facts, tables)
    out: list[Candidate] = []
    for ref in bases:
        out.extend(_TableCandidates(facts[ref], facts, reading).build())
    if not out:
        raise BadUserInput("no table of the catalog has columns or rows to chart")
    out.sort(key=lambda c: (c.base, c.kind, c.sql))
    return out


def _select_tables(facts: dict[str, TableFacts], tables: Sequence[str] | None) -> list[str]:
    if not tables:
        return sorted(ref for ref, f in facts.items() if f.table.columns and (f.rows is None or f.rows > 0))
    chosen: list[str] = []
    for name in tables:
        hits = [ref for ref in facts if ref == name or ref.split(".", 1)[1] == name]
        if not hits:
            raise BadUserInput(f"table {name!r} is not in the catalog")
        if len(hits) > 1:
            raise BadUserInput(f"table {name!r} is in several schemas: name it as schema.table")
        chosen.extend(h for h in hits if h not in chosen)
    return sorted(chosen)


def _join_text(rel: Relationship) -> str:
    how = "declared" if rel.declared else f"inferred, confidence {rel.confidence:.2f}"
    return (
        f"{rel.from_table}.{','.join(rel.from_columns)} -> {rel.to_table}.{','.join(rel.to_columns)} ({how})"
    )


def _nice_step(span: float, bins: int) -> Decimal:
    """A bin width of 1, 2 or 5 times a power of ten giving about `bins` bins."""
    raw = span / bins if span > 0 else 1.0
    exponent = math.floor(math.log10(raw))
    for m in (1, 2, 5, 10):
        step = Decimal(m).scaleb(exponent)
        if step >= Decimal(repr(raw)):
            return step.normalize()
    return Decimal(10).scaleb(exponent).normalize()


def _literal(step: Decimal) -> str:
    text = format(step, "f")
    return text.rstrip("0").rstrip(".") if "." in text else text


class _TableCandidates(TableParts):
    """The candidates of one table, built from its parts."""

    def __init__(self, facts: TableFacts, all_facts: dict[str, TableFacts], reading: GoalReading) -> None:
        super().__init__(facts, all_facts, reading)
        self.out: list[Candidate] = []

    # -- building -----------------------------------------------------------------------------

    def build(self) -> list[Candidate]:
        measures = self.measures()
        chart_measures = [
            m
            for m in measures
            if m.agg in ("count", "sum")
            or m.agg in self.reading.aggregates
            or (m.agg == "avg" and m.kind in ("percentage", "duration", "measure"))
        ]
        times = self.times()
        categories = self.categories()
        entities = self.entities()
        for m in measures:
            self.kpi(m)
        for i, td in enumerate(times):
            for m in chart_measures if i == 0 else chart_measures[:1]:
                self.timeseries(td, m, None)
        if times:
            splits = [c for c in categories if (c.values or 0) >= 2] + [
                e
                for e in entities
                if e.column is not None and e.values is not None and 2 <= e.values <= MAX_SPLIT_ENTITIES
            ]
            for split in splits:
                for m in chart_measures:
                    if m.agg in ("count", "sum"):
                        self.timeseries(times[0], m, split)
        for cat in categories:
            for m in chart_measures:
                self.bar(cat, m)
                if (cat.values or 0) <= MAX_PIE_VALUES and m.agg in ("count", "sum"):
                    self.pie(cat, m)
            self.table(cat, chart_measures)
        for ent in entities:
            for m in chart_measures:
                self.top(ent, m)
        pairs = [
            (a, b)
            for a in categories
            for b in categories
            if a is not b and (a.values or 0) <= MAX_BARS and 2 <= (b.values or 0) <= MAX_SERIES
        ][:3]
        for a, b in pairs:
            self.stacked(a, b, chart_measures[0])
        numeric = [m for m in self.f.measures if number_range(m.column) is not None]
        for m in numeric:
            self.histogram(m)
        for i, a in enumerate(numeric[:3]):
            for b in numeric[i + 1 : 3]:
                self.scatter(a, b)
        return self.out

    def _quality(self, columns: Sequence[ColumnSnapshot], tables: Sequence[TableFacts], path: Path) -> float:
        completeness = [1 - null_fraction(c) for c in columns] or [1.0]
        q = sum(completeness) / len(completeness)
        q *= sum(t.quality for t in tables) / len(tables)
        for rel in path:
            if not rel.declared:
                q *= rel.confidence
        return round(max(0.0, min(1.0, q)), 4)

    def _add(
        self,
        *,
        kind: str,
        intents: set[str],
        title: str,
        sql: str,
        spec: dict[str, Any],
        measure: MeasureDef,
        dims: Sequence[Dim],
        shape: float,
        prior: float,
        extra_columns: Sequence[ColumnSnapshot] = (),
        signature_kind: str | None = None,
    ) -> None:
        paths: list[Path] = [d.path for d in dims]
        tables = [self.f] + [self.all[f"{d.table.schema}.{d.table.name}"] for d in dims]
        joins: list[str] = []
        for path in paths:
            for rel in path:
                text = _join_text(rel)
                if text not in joins:
                    joins.append(text)
        measure_cols = [self.t.column(c) for c in measure.columns]
        dim_cols = [d.column for d in dims if d.column is not None]
        columns = [c for c in (*measure_cols, *dim_cols, *extra_columns) if c is not None]
        refs = [column_ref(self.t, c) for c in measure.columns]
        for d in dims:
            refs.extend(d.refs)
        refs.extend(column_ref(self.t, c) for c in extra_columns)
        for path in paths:
            for rel in path:
                refs += [f"{rel.from_schema}.{rel.from_table}.{c}" for c in rel.from_columns]
                refs += [f"{rel.to_schema}.{rel.to_table}.{c}" for c in rel.to_columns]
        facts = [measure.fact] + [d.fact for d in dims]
        if joins:
            facts.append("joined " + ", ".join(joins))
        table_refs = [self.f.ref]
        for d in dims:
            table_refs += [f"{d.table.schema}.{d.table.name}"] + ([d.target] if d.target else [])
        longest: Path = max(paths, key=len, default=())
        self.out.append(
            Candidate(
                kind=kind,
                intents=frozenset(intents),
                title=title,
                sql=sql,
                spec=spec,
                base=self.f.ref,
                tables=tuple(dict.fromkeys(table_refs)),
                columns=tuple(dict.fromkeys(refs)),
                measure=measure,
                dims=tuple(dims),
                facts=tuple(f for f in facts if f),
                shape=round(max(0.0, min(1.0, shape)), 4),
                quality=self._quality(columns, tables, longest),
                # An overview prefers a table's own columns to those it reaches through joins.
                prior=round(prior * (0.5 + 0.5 * self.f.importance) * 0.9 ** len(longest), 4),
                extra_refs=tuple(column_ref(self.t, c) for c in extra_columns),
                signature=(
                    signature_kind or kind,
                    measure.agg,
                    ",".join(refs[: len(measure.columns)]) or self.f.ref,
                    *(",".join(d.refs) for d in dims),
                ),
            )
        )

    def _measure_title(self, m: MeasureDef) -> str:
        if m.agg == "count":
            return title_case(f"number of {self.plural}")
        return title_case(f"{m.phrase or m.label} of {self.plural}")

    def kpi(self, m: MeasureDef) -> None:
        source = FromClause(self.t)
        sql = select_sql(targets=[(m.sql(source), m.name)], source=source, limit=1)
        title = self._measure_title(m)
        spec = vegalite.kpi_spec(title, value=m.name, value_title=title_case(m.label), fmt=m.fmt)
        prior = {"count": 0.85, "sum": 0.8, "avg": 0.6}.get(m.agg, 0.4)
        self._add(
            kind="kpi",
            intents={"kpi"},
            title=title,
            sql=sql,
            spec=spec,
            measure=m,
            dims=(),
            shape=1.0 if (self.f.rows or 0) > 0 else 0.3,
            prior=prior,
        )

    def timeseries(self, td: Dim, m: MeasureDef, split: Dim | None) -> None:
        source = FromClause(self.t)
        taken = {td.name, m.name}
        t_expr = self._dim_expr(td, source)
        where = self._dim_not_null(td, source)
        targets = [(t_expr, "time")]
        if split is not None:
            s_name = result_name(split.name, taken)
            targets.append((self._dim_expr(split, source), s_name))
            where += self._dim_not_null(split, source) if split.role == "entity" else []
        targets.append((m.sql(source), m.name))
        fold = split is not None and (split.values or 0) > MAX_SERIES
        if fold:
            sql = folded_split_sql(targets=targets, source=source, where=where, keep=MAX_SERIES, limit=5000)
        elif split is not None:
            sql = select_sql(
                targets=targets, source=source, where=where, group_by=2, order_by=["1", "2"], limit=5000
            )
        else:
            sql = select_sql(
                targets=targets, source=source, where=where, group_by=1, order_by=["1"], limit=1000
            )
        grain = td.grain or "month"
        title = f"{self._measure_title(m)} per {grain}"
        if td.time_kind != "created" and td.column is not None:
            title += f" ({humanize(td.column.name)})"  # which of the table's times
        if split is not None:
            title += f" by {split.label}"
        chart = self.reading.chart
        mark = "area" if chart in ("area", "stacked") else "bar" if chart == "bar" else "line"
        span = td.span
        time_range = (span[0].isoformat(), span[1].isoformat()) if span else None
        spec = vegalite.timeseries_spec(
            title,
            time="time",
            grain=grain,
            value=m.name,
            value_title=title_case(m.label),
            fmt=m.fmt,
            series=targets[1][1] if split is not None else None,
            series_title=title_case(split.label) if split is not None else None,
            mark=mark,
            time_range=time_range,
        )
        dims = [td] + ([split] if split is not None else [])
        facts = list(dims)
        shape = self._time_shape(td)
        if split is not None:
            shape = (shape + self._values_shape(split.values, MAX_SERIES)) / 2
        prior = {"created": 0.95, "event": 0.8, "updated": 0.3}.get(td.time_kind, 0.8)
        prior *= 1.0 if m.agg == "count" else 0.95
        if split is not None:
            prior *= 0.8
        if fold:
            facts[-1] = replace(
                split, fact=split.fact + f"; the {MAX_SERIES} largest shown, the rest as (other)"
            )
        self._add(
            kind="timeseries",
            intents={"trend", "breakdown"} if split is not None else {"trend"},
            title=title,
            sql=sql,
            spec=spec,
            measure=m,
            dims=facts,
            shape=shape,
            prior=prior,
        )

    def _time_shape(self, td: Dim) -> float:
        if td.span is None:
            return 0.6
        seconds = (td.span[1] - td.span[0]).total_seconds()
        per = {
            "hour": 3600,
            "day": 86400,
            "week": 7 * 86400,
            "month": 30.44 * 86400,
            "quarter": 91.3 * 86400,
            "year": 365.25 * 86400,
        }[td.grain or "month"]
        points = seconds / per
        if points >= 6:
            return 1.0 if points <= 400 else 0.6
        return 0.6 if points >= 3 else 0.2

    @staticmethod
    def _values_shape(values: int | None, best_max: int) -> float:
        if values is None:
            return 0.5
        if values < 2:
            return 0.0
        if values == 2:
            return 0.8  # a yes/no split says less than a few categories
        if values <= best_max:
            return 1.0
        return max(0.4, 1.0 - (values - best_max) / 60)

    def bar(self, cat: Dim, m: MeasureDef) -> None:
        source = FromClause(self.t)
        expr = self._dim_expr(cat, source)
        name = result_name(cat.name, {m.name})
        limited = (cat.values or 0) > MAX_BARS
        sql = select_sql(
            targets=[(expr, name), (m.sql(source), m.name)],
            source=source,
            group_by=1,
            order_by=["2 DESC NULLS LAST", "1"],
            limit=MAX_BARS,
        )
        title = f"{self._measure_title(m)} by {cat.label}" + (f" (top {MAX_BARS})" if limited else "")
        spec = vegalite.bar_spec(
            title,
            category=name,
            category_title=title_case(cat.label),
            value=m.name,
            value_title=title_case(m.label),
            fmt=m.fmt,
        )
        prior = 0.8 if m.agg == "count" else 0.75
        self._add(
            kind="bar",
            intents={"breakdown", "top"} if limited else {"breakdown"},
            title=title,
            sql=sql,
            spec=spec,
            measure=m,
            dims=[cat],
            shape=self._values_shape(cat.values, 12),
            prior=prior,
            signature_kind="breakdown",
        )

    def pie(self, cat: Dim, m: MeasureDef) -> None:
        source = FromClause(self.t)
        name = result_name(cat.name, {m.name})
        sql = select_sql(
            targets=[(self._dim_expr(cat, source), name), (m.sql(source), m.name)],
            source=source,
            group_by=1,
            order_by=["2 DESC NULLS LAST", "1"],
            limit=MAX_PIE_VALUES + 1,
        )
        title = f"Share of {self._measure_title(m).lower()} by {cat.label}"
        spec = vegalite.pie_spec(
            title,
            category=name,
            category_title=title_case(cat.label),
            value=m.name,
            value_title=title_case(m.label),
            fmt=m.fmt,
        )
        self._add(
            kind="pie",
            intents={"share", "breakdown"},
            title=title,
            sql=sql,
            spec=spec,
            measure=m,
            dims=[cat],
            shape=self._values_shape(cat.values, MAX_PIE_VALUES),
            prior=0.55,
            signature_kind="breakdown",
        )

    def table(self, cat: Dim, measures: Sequence[MeasureDef]) -> None:
        source = FromClause(self.t)
        main = next((m for m in measures if m.agg == "sum"), None)
        count = measures[0]
        taken = {count.name}
        name = result_name(cat.name, taken)
        targets = [(self._dim_expr(cat, source), name), (count.sql(source), count.name)]
        columns = [(name, title_case(cat.label)), (count.name, "Rows")]
        if main is not None:
            inner = " * ".join(source.col((), c) for c in main.columns)
            avg_name = result_name("avg_" + main.name.removeprefix("sum_"), taken | {main.name})
            targets += [(main.sql(source), main.name), (f"round(CAST(avg({inner}) AS numeric), 2)", avg_name)]
            columns += [(main.name, title_case(main.label)), (avg_name, "Average")]
        sql = select_sql(targets=targets, source=source, group_by=1, order_by=["2 DESC", "1"], limit=50)
        what = f", {main.label} and its average" if main is not None else ""
        title = f"{title_case(self.plural)} by {cat.label}: rows{what}"
        spec = vegalite.table_spec(title, columns=columns)
        self._add(
            kind="table",
            intents={"breakdown"},
            title=title,
            sql=sql,
            spec=spec,
            measure=main or count,
            dims=[cat],
            shape=self._values_shape(cat.values, 20),
            prior=0.35,
        )

    def top(self, ent: Dim, m: MeasureDef) -> None:
        source = FromClause(self.t)
        n = self.reading.top_n or DEFAULT_TOP_N
        name = result_name(ent.name, {m.name})
        expr = self._dim_expr(ent, source)
        group = self._dim_group(ent, source)
        direction = "ASC NULLS LAST" if self.reading.ascending else "DESC NULLS LAST"
        targets = [(expr, name), (m.sql(source), m.name)]
        sql = select_sql(
            targets=targets,
            source=source,
            where=self._dim_not_null(ent, source),
            group_by=1,
            order_by=[f"2 {direction}", "1"],
            limit=n,
        )
        if group:
            sql = sql.replace("GROUP BY 1", "GROUP BY 1, " + ", ".join(group), 1)
        word = "Bottom" if self.reading.ascending else "Top"
        if ent.values is not None and ent.values <= n:
            title = f"{title_case(ent.noun)} by {self._measure_title(m).lower()}"  # all of them
        else:
            title = f"{word} {n} {ent.noun} by {self._measure_title(m).lower()}"
        spec = vegalite.bar_spec(
            title,
            category=name,
            category_title=title_case(ent.label),
            value=m.name,
            value_title=title_case(m.label),
            fmt=m.fmt,
            sort_by_value=not self.reading.ascending,
        )
        if self.reading.ascending:
            spec["encoding"]["y"]["sort"] = "x"
        shape = self._values_shape(ent.values, 12) if ent.values is not None and ent.values <= n else 1.0
        self._add(
            kind="bar",
            intents={"top", "breakdown"},
            title=title,
            sql=sql,
            spec=spec,
            measure=m,
            dims=[ent],
            shape=shape,
            prior=(0.7 if ent.column is not None else 0.6) * (1.0 if m.agg == "count" else 0.95),
            signature_kind="top",
        )

    def stacked(self, a: Dim, b: Dim, m: MeasureDef) -> None:
        source = FromClause(self.t)
        taken = {m.name}
        a_name = result_name(a.name, taken)
        b_name = result_name(b.name, taken)
        sql = select_sql(
            targets=[
                (self._dim_expr(a, source), a_name),
                (self._dim_expr(b, source), b_name),
                (m.sql(source), m.name),
            ],
            source=source,
            group_by=2,
            order_by=["1", "2"],
            limit=MAX_BARS * MAX_SERIES * 4,
        )
        title = f"{self._measure_title(m)} by {a.label} and {b.label}"
        spec = vegalite.bar_spec(
            title,
            category=a_name,
            category_title=title_case(a.label),
            value=m.name,
            value_title=title_case(m.label),
            fmt=m.fmt,
            split=b_name,
            split_title=title_case(b.label),
        )
        shape = (self._values_shape(a.values, 12) + self._values_shape(b.values, MAX_SERIES)) / 2
        self._add(
            kind="stacked_bar",
            intents={"breakdown", "share"},
            title=title,
            sql=sql,
            spec=spec,
            measure=m,
            dims=[a, b],
            shape=shape,
            prior=0.45,
        )

    def histogram(self, measure: Measure) -> None:
        col = measure.column
        span = number_range(col)
        assert span is not None
        step = _nice_step(span[1] - span[0], HISTOGRAM_BINS)
        source = FromClause(self.t)
        ref = source.col((), col.name)
        s = _literal(step)
        bin_expr = f"floor(CAST({ref} AS numeric) / {s}) * {s}"
        sql = select_sql(
            targets=[(bin_expr, "bin_start"), (f"{bin_expr} + {s}", "bin_end"), ("count(*)", "count")],
            source=source,
            where=[f"{ref} IS NOT NULL"],
            group_by=2,
            order_by=["1"],
            limit=200,
        )
        label = humanize(col.name)
        title = f"Distribution of {label} ({self.plural})"
        fmt = ",d" if col.family == "integer" and step >= 1 else ",.2f"
        spec = vegalite.histogram_spec(
            title, start="bin_start", end="bin_end", count="count", measure_title=title_case(label), fmt=fmt
        )
        count = MeasureDef(
            "count",
            (),
            "count",
            "count",
            f"number of {self.plural}",
            ",d",
            f"{self.t.name}.{col.name} is {measure.kind} ({measure.evidence}), from {span[0]:,.2f} to "
            f"{span[1]:,.2f}, in bins of {s}",
        )
        distinct = distinct_count(col)
        shape = 1.0 if distinct is None or distinct >= 10 else 0.5
        self._add(
            kind="histogram",
            intents={"distribution"},
            title=title,
            sql=sql,
            spec=spec,
            measure=count,
            dims=[],
            shape=shape,
            prior=0.5,
            extra_columns=[col],
        )

    def scatter(self, a: Measure, b: Measure) -> None:
        source = FromClause(self.t)
        exprs: list[tuple[str, str]] = []
        where: list[str] = []
        steps: list[str] = []
        for m in (a, b):
            span = number_range(m.column)
            assert span is not None
            s = _literal(_nice_step(span[1] - span[0], SCATTER_BINS))
            ref = source.col((), m.column.name)
            exprs.append((f"floor(CAST({ref} AS numeric) / {s}) * {s}", m.column.name))
            where.append(f"{ref} IS NOT NULL")
            steps.append(s)
        x_name, y_name = exprs[0][1], exprs[1][1]
        if y_name == x_name or "count" in (x_name, y_name):
            return
        sql = select_sql(
            targets=[*exprs, ("count(*)", "count")],
            source=source,
            where=where,
            group_by=2,
            order_by=["1", "2"],
            limit=SCATTER_BINS * SCATTER_BINS,
        )
        x_label, y_label = humanize(a.column.name), humanize(b.column.name)
        title = f"{title_case(y_label)} against {x_label} ({self.plural})"
        spec = vegalite.scatter_spec(
            title,
            x=x_name,
            x_title=title_case(x_label),
            y=y_name,
            y_title=title_case(y_label),
            size="count",
            x_fmt=",.2f",
            y_fmt=",.2f",
        )
        count = MeasureDef(
            "count",
            (),
            "count",
            "count",
            f"number of {self.plural}",
            ",d",
            f"{self.t.name}.{a.column.name} and {b.column.name} are measures of the same "
            f"{count_text(self.f.rows, self.plural)}, binned by {steps[0]} and {steps[1]}",
        )
        self._add(
            kind="scatter",
            intents={"relationship"},
            title=title,
            sql=sql,
            spec=spec,
            measure=count,
            dims=[],
            shape=0.8,
            prior=0.35,
            extra_columns=[a.column, b.column],
        )
