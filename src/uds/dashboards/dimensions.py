"""The parts of a widget: the measures and dimensions one table offers, and their SQL.

For a table (the rows a widget counts or sums), `TableParts` lists the measures (the row
count, sums of money and quantities, averages, a price x quantity line value), the time
axes (its own creation and event times, else those of the row it refers to), the
categories (its own and those of the rows it refers to, at most two many-to-one hops
away) and the entities it refers to (named by their label, or by their key when they have
no label that is not personal), each with the facts a reason quotes and the SQL
expression a query selects and groups by.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from uds.dashboards.catalogfacts import (
    Category,
    TableFacts,
    TimeAxis,
    choose_grain,
    column_ref,
    count_text,
    describe_span,
    null_fraction,
    number_range,
    top_values_text,
)
from uds.dashboards.goal import GoalReading
from uds.dashboards.names import entity_label, humanize, plural_label
from uds.dashboards.querybuild import FromClause, Path, as_text, ql, result_name
from uds.discovery.snapshot import ColumnSnapshot, TableSnapshot

# Joins reach rows at most this many many-to-one hops away.
MAX_DEPTH = 2


@dataclass(frozen=True, slots=True)
class MeasureDef:
    agg: str  # count | sum | avg | min | max
    columns: tuple[str, ...]  # () for count(*); two for a price x quantity product
    kind: str  # count | money | quantity | percentage | duration | measure
    name: str  # result column
    label: str  # axis title: "number of orders", "value (unit price x quantity)"
    fmt: str  # d3 format for axes and tooltips
    fact: str  # what the data says about it, for the reason
    phrase: str = ""  # in titles, when shorter than the label: "value"

    def sql(self, source: FromClause) -> str:
        if self.agg == "count":
            return "count(*)"
        inner = " * ".join(source.col((), c) for c in self.columns)
        return f"{self.agg}({inner})"


@dataclass(frozen=True, slots=True)
class Dim:
    role: str  # time | category | entity
    path: Path
    table: TableSnapshot
    column: ColumnSnapshot | None  # time/category column, or the entity's label (None: by key)
    key: tuple[str, ...]  # entity: key columns on the entity table (or the FK columns, by key)
    name: str  # result column
    label: str  # human
    values: int | None  # distinct values / entities
    grain: str | None = None
    span: tuple[Any, Any] | None = None
    label_unique: bool = True
    fact: str = ""
    noun: str = ""  # entity: what its rows are called ("customers")
    target: str = ""  # entity: "schema.table" of the entity, joined or not
    time_kind: str = ""  # time: created | event | updated

    @property
    def refs(self) -> tuple[str, ...]:
        if self.column is not None:
            return (column_ref(self.table, self.column),)
        return tuple(column_ref(self.table, k) for k in self.key)


class TableParts:
    """The measures, time axes, categories and entities of one table (see the module doc)."""

    def __init__(self, facts: TableFacts, all_facts: dict[str, TableFacts], reading: GoalReading) -> None:
        self.f = facts
        self.t = facts.table
        self.all = all_facts
        self.reading = reading
        self.plural = plural_label(self.t.name)
        self.reach = self._reach()

    # -- what can be combined -------------------------------------------------------------

    def _reach(self) -> list[tuple[Path, TableFacts]]:
        """Tables this one refers to, many-to-one, breadth first, shortest path each."""
        seen = {self.f.ref}
        out: list[tuple[Path, TableFacts]] = []
        frontier: list[tuple[Path, TableFacts]] = [((), self.f)]
        for _ in range(MAX_DEPTH):
            nxt: list[tuple[Path, TableFacts]] = []
            for path, facts in frontier:
                for rel in facts.outgoing:
                    ref = f"{rel.to_schema}.{rel.to_table}"
                    if ref in seen or ref not in self.all:
                        continue
                    seen.add(ref)
                    nxt.append(((*path, rel), self.all[ref]))
            out.extend(nxt)
            frontier = nxt
        return out

    def measures(self) -> list[MeasureDef]:
        rows = count_text(self.f.rows, self.plural)
        estimate = self.t.row_estimate
        how = {"exact": "counted exactly", "stats": "from planner statistics"}.get(
            estimate.method if estimate is not None else "", "estimated"
        )
        count_fact = f"{self.t.schema}.{self.t.name} holds {rows} (row count {how} at discovery)"
        out = [MeasureDef("count", (), "count", "count", f"number of {self.plural}", ",d", count_fact)]
        taken = {"count"}
        asked = set(self.reading.aggregates)
        line = self.f.line_amount
        if line is not None:
            out.append(
                MeasureDef(
                    "sum",
                    (line.price.name, line.quantity.name),
                    "money",
                    result_name(f"sum_{line.price.name}_x_{line.quantity.name}", taken),
                    f"value ({humanize(line.price.name)} x {humanize(line.quantity.name)})",
                    ",.2f",
                    f"{self.t.name}.{line.price.name} x {line.quantity.name} is what each of {rows} is worth",
                    phrase="value",
                )
            )
        for m in self.f.measures:
            col = m.column
            label = humanize(col.name)
            span = number_range(col)
            fact = f"{self.t.name}.{col.name} is {m.kind} ({m.evidence})"
            if span is not None:
                fact += f", from {span[0]:,.2f} to {span[1]:,.2f}"
            nulls = null_fraction(col)
            if nulls >= 0.01:
                fact += f", {nulls:.0%} empty"
            integer = col.family == "integer"
            aggs: list[str] = []
            if m.additive:
                aggs.append("sum")
            if not m.additive or "avg" in asked or m.kind == "money":
                aggs.append("avg")
            aggs += [a for a in ("min", "max") if a in asked]
            for agg in aggs:
                words = {
                    "sum": label if label.startswith("total") else f"total {label}",
                    "avg": f"average {label}",
                    "min": f"lowest {label}",
                    "max": f"highest {label}",
                }[agg]
                fmt = ",d" if integer and agg in ("sum", "min", "max") else ",.2f"
                out.append(
                    MeasureDef(
                        agg, (col.name,), m.kind, result_name(f"{agg}_{col.name}", taken), words, fmt, fact
                    )
                )
        return out

    def times(self) -> list[Dim]:
        out: list[Dim] = []
        own = [((), self.f, t) for t in self.f.times]
        referred = [
            (p, f, f.times[0])
            for p, f in self.reach
            if len(p) == 1 and f.times and f.times[0].kind != "updated"
        ]
        for path, facts, axis in (own or referred)[:3]:
            out.append(self._time_dim(path, facts, axis))
        return out

    def _time_dim(self, path: Path, facts: TableFacts, axis: TimeAxis) -> Dim:
        grain = self.reading.grain or choose_grain(axis.span)
        what = {"created": "the creation time", "event": "the time", "updated": "the last update time"}[
            axis.kind
        ]
        noun = plural_label(facts.table.name)
        fact = f"{facts.table.name}.{axis.column.name} is {what} of {count_text(facts.rows, noun)}"
        if axis.span is not None:
            fact += f" {describe_span(axis.span)}"
        fact += f", shown per {grain}"
        if self.reading.grain:
            fact += " as the goal asks"
        nulls = null_fraction(axis.column)
        if nulls >= 0.01:
            fact += f" ({nulls:.0%} have none)"
        return Dim(
            "time",
            path,
            facts.table,
            axis.column,
            (),
            "time",
            grain,
            None,
            grain,
            axis.span,
            True,
            fact,
            time_kind=axis.kind,
        )

    def categories(self) -> list[Dim]:
        out: list[Dim] = []
        sources = [((), self.f)] + [(p, f) for p, f in self.reach]
        for path, facts in sources:
            for cat in facts.categories:
                out.append(self._category_dim(path, facts, cat))
        return out[:8]

    def _category_dim(self, path: Path, facts: TableFacts, cat: Category) -> Dim:
        col = cat.column
        prefix = "" if not path else entity_label(facts.table.name) + " "
        name = col.name if not path else f"{entity_label(facts.table.name).replace(' ', '_')}_{col.name}"
        fact = f"{facts.table.name}.{col.name} has {cat.values} values{top_values_text(col)}"
        nulls = null_fraction(col)
        if nulls >= 0.01:
            fact += f", {nulls:.0%} empty"
        return Dim(
            "category", path, facts.table, col, (), name, prefix + humanize(col.name), cat.values, fact=fact
        )

    def entities(self) -> list[Dim]:
        out: list[Dim] = []
        for path, facts in self.reach:
            rel = path[-1]
            noun = plural_label(facts.table.name)
            label = entity_label(facts.table.name)
            name = label.replace(" ", "_")
            if facts.label is not None:
                key = tuple(facts.table.primary_key) or tuple(rel.to_columns)
                fact = f"{facts.table.name}.{facts.label.name} names {count_text(facts.rows, noun)}"
                out.append(
                    Dim(
                        "entity",
                        path,
                        facts.table,
                        facts.label,
                        key,
                        name,
                        label,
                        int(facts.rows) if facts.rows is not None else None,
                        label_unique=facts.label_unique,
                        fact=fact,
                        noun=noun,
                        target=facts.ref,
                    )
                )
            elif len(rel.from_columns) == 1:
                # No join needed: the referring column holds the entity's key.
                holder = self.all[f"{rel.from_schema}.{rel.from_table}"].table
                fact = f"{facts.table.name} has no non-personal name column, so {noun} are shown by id"
                out.append(
                    Dim(
                        "entity",
                        path[:-1],
                        holder,
                        None,
                        tuple(rel.from_columns),
                        name,
                        label,
                        int(facts.rows) if facts.rows is not None else None,
                        fact=fact,
                        noun=noun,
                        target=facts.ref,
                    )
                )
        return out

    # -- SQL expressions --------------------------------------------------------------------

    def _dim_expr(self, dim: Dim, source: FromClause) -> str:
        if dim.role == "time":
            assert dim.column is not None
            return f"date_trunc({ql(dim.grain or 'month')}, {source.col(dim.path, dim.column.name)})"
        if dim.role == "category":
            assert dim.column is not None
            return as_text(source.col(dim.path, dim.column.name))
        if dim.column is None:
            keys = [f"CAST({source.col(dim.path, k)} AS text)" for k in dim.key]
            return keys[0] if len(keys) == 1 else f"concat_ws({ql(', ')}, {', '.join(keys)})"
        label = as_text(source.col(dim.path, dim.column.name))
        if dim.label_unique or not dim.key:
            return label
        keys = " || ',' || ".join(f"CAST({source.col(dim.path, k)} AS text)" for k in dim.key)
        return f"{label} || {ql(' #')} || {keys}"

    def _dim_group(self, dim: Dim, source: FromClause) -> list[str]:
        """GROUP BY expressions beyond the select list: an entity is grouped by its key."""
        if dim.role == "entity" and dim.column is not None and dim.key:
            return [source.col(dim.path, k) for k in dim.key]
        return []

    def _dim_not_null(self, dim: Dim, source: FromClause) -> list[str]:
        if dim.role == "time":
            assert dim.column is not None
            return [f"{source.col(dim.path, dim.column.name)} IS NOT NULL"]
        if dim.role == "entity":
            return [f"{source.col(dim.path, k)} IS NOT NULL" for k in dim.key]
        return []
