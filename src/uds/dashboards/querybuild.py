"""Widget SQL text: every identifier quoted and schema-qualified, every query aggregated,
ordered and limited.

Rules the builders keep (and tests check on real databases):

- one SELECT; tables as "schema"."table" AS "tN"; identifiers always double-quoted with
  embedded quotes doubled, literals single-quoted with embedded quotes doubled;
- joins only along many-to-one relationships (LEFT JOIN from the row being counted to the
  row it refers to), so a join never multiplies the rows being summed;
- always GROUP BY or a single aggregate row: never raw rows of a table;
- ORDER BY on every column that is not an aggregate, so results come in one order;
- a LIMIT on every query;
- result column names are the spec's encoding fields: "time" for a time axis (what
  Grafana's time series format wants), the column or entity name for a category, and
  count / sum_x / avg_x for measures.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from uds.discovery.snapshot import Relationship, TableSnapshot

# PostgreSQL truncates identifiers to 63 bytes; result names must stay what the spec says.
MAX_IDENTIFIER_BYTES = 63
NONE_LABEL = "(none)"
OTHER_LABEL = "(other)"


def qi(name: str) -> str:
    """A quoted identifier: "name", with embedded double quotes doubled."""
    return '"' + name.replace('"', '""') + '"'


def ql(text: str) -> str:
    """A quoted string literal, with embedded single quotes doubled."""
    return "'" + text.replace("'", "''") + "'"


def qualified(schema: str, name: str) -> str:
    return f"{qi(schema)}.{qi(name)}"


def result_name(name: str, taken: set[str]) -> str:
    """`name` cut to what PostgreSQL keeps, made unique among `taken` (which it joins)."""
    base = name.encode("utf-8")[: MAX_IDENTIFIER_BYTES - 3].decode("utf-8", "ignore") or "col"
    candidate, n = base, 2
    while candidate in taken:
        candidate = f"{base}_{n}"
        n += 1
    taken.add(candidate)
    return candidate


Path = tuple[Relationship, ...]


@dataclass
class FromClause:
    """The base table and the many-to-one joins a query needs, with stable aliases."""

    base: TableSnapshot
    _joins: dict[tuple[str, ...], tuple[str, Relationship, str]] = field(default_factory=dict)

    def alias(self, path: Path) -> str:
        if not path:
            return "t0"
        key = tuple(r.key for r in path)
        if key not in self._joins:
            parent = self.alias(path[:-1])
            self._joins[key] = (f"t{len(self._joins) + 1}", path[-1], parent)
        return self._joins[key][0]

    def col(self, path: Path, column: str) -> str:
        return f"{qi(self.alias(path))}.{qi(column)}"

    def sql(self) -> str:
        lines = [f"{qualified(self.base.schema, self.base.name)} AS {qi('t0')}"]
        for alias, rel, parent in self._joins.values():
            on = " AND ".join(
                f"{qi(alias)}.{qi(to)} = {qi(parent)}.{qi(frm)}"
                for frm, to in zip(rel.from_columns, rel.to_columns, strict=True)
            )
            lines.append(f"LEFT JOIN {qualified(rel.to_schema, rel.to_table)} AS {qi(alias)} ON {on}")
        return "\n  ".join(lines)


def as_text(expr: str) -> str:
    """A grouping value as text, NULL shown as (none): categories are labels on a chart."""
    return f"COALESCE(CAST({expr} AS text), {ql(NONE_LABEL)})"


def select_sql(
    *,
    targets: Sequence[tuple[str, str]],
    source: FromClause,
    where: Sequence[str] = (),
    group_by: int = 0,
    order_by: Sequence[str] = (),
    limit: int,
) -> str:
    """SELECT targets (expr, name) FROM source [WHERE ...] [GROUP BY 1..n] ORDER BY ... LIMIT n."""
    parts = ["SELECT " + ",\n       ".join(f"{expr} AS {qi(name)}" for expr, name in targets)]
    parts.append("FROM " + source.sql())
    if where:
        parts.append("WHERE " + " AND ".join(where))
    if group_by:
        parts.append("GROUP BY " + ", ".join(str(i) for i in range(1, group_by + 1)))
    if order_by:
        parts.append("ORDER BY " + ", ".join(order_by))
    parts.append(f"LIMIT {int(limit)}")
    return "\n".join(parts)


def folded_split_sql(
    *,
    targets: Sequence[tuple[str, str]],
    source: FromClause,
    where: Sequence[str],
    keep: int,
    limit: int,
) -> str:
    """A (time, series, value) query whose series beyond the `keep` largest are folded into
    one (other) series, so a chart never has more lines than a person can tell apart.

    `targets` is exactly [(time expr, time name), (series expr, series name), (sum or
    count expr, value name)]; the value must be additive (sums and counts).
    """
    (_, t_name), (_, s_name), (_, v_name) = targets
    base = select_sql(targets=targets, source=source, where=where, group_by=2, limit=1_000_000)
    base = base.removesuffix("\nLIMIT 1000000")
    t, s, v = qi(t_name), qi(s_name), qi(v_name)
    return (
        f"WITH {qi('base')} AS (\n{base}\n),\n"
        f"{qi('top')} AS (\nSELECT {s} FROM {qi('base')} GROUP BY 1 ORDER BY sum({v}) DESC NULLS LAST, 1 "
        f"LIMIT {int(keep)}\n)\n"
        f"SELECT {qi('b')}.{t} AS {t},\n"
        f"       CASE WHEN {qi('k')}.{s} IS NULL THEN {ql(OTHER_LABEL)} ELSE {qi('b')}.{s} END AS {s},\n"
        f"       sum({qi('b')}.{v}) AS {v}\n"
        f"FROM {qi('base')} AS {qi('b')}\n"
        f"LEFT JOIN {qi('top')} AS {qi('k')} ON {qi('k')}.{s} = {qi('b')}.{s}\n"
        f"GROUP BY 1, 2\nORDER BY 1, 2\nLIMIT {int(limit)}"
    )
