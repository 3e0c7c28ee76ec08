"""Drift between two discovery runs: what was added, removed or changed.

Structure changes are always reported (tables, columns, types, nullability, defaults,
primary keys, relationships). Profile changes are reported when they are larger than
sampling noise would explain: null fraction by 5 points or more, distinct count by 25 %
or more (and at least 10 values), row estimate by 20 % or more, a new minimum or
maximum, a different semantic type or PII flag.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from uds.discovery.snapshot import CatalogSnapshot, ColumnSnapshot, TableSnapshot

NULL_FRACTION_DELTA = 0.05
DISTINCT_RATIO = 0.25
ROWS_RATIO = 0.2


@dataclass(slots=True)
class Change:
    field: str
    before: str | None
    after: str | None


@dataclass(slots=True)
class ColumnDiff:
    name: str
    changes: list[Change] = field(default_factory=list)


@dataclass(slots=True)
class TableDiff:
    schema: str
    name: str
    added_columns: list[str] = field(default_factory=list)
    removed_columns: list[str] = field(default_factory=list)
    changed_columns: list[ColumnDiff] = field(default_factory=list)
    changes: list[Change] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not (self.added_columns or self.removed_columns or self.changed_columns or self.changes)


@dataclass(slots=True)
class CatalogDiff:
    added_tables: list[tuple[str, str]] = field(default_factory=list)
    removed_tables: list[tuple[str, str]] = field(default_factory=list)
    changed_tables: list[TableDiff] = field(default_factory=list)
    added_relationships: list[str] = field(default_factory=list)
    removed_relationships: list[str] = field(default_factory=list)


def diff(before: CatalogSnapshot, after: CatalogSnapshot) -> CatalogDiff:
    """What changed from `before` to `after`."""
    result = CatalogDiff()
    old = {t.key: t for t in before.tables}
    new = {t.key: t for t in after.tables}
    result.added_tables = sorted(new.keys() - old.keys())
    result.removed_tables = sorted(old.keys() - new.keys())
    for key in sorted(old.keys() & new.keys()):
        changed = _table_diff(old[key], new[key])
        if not changed.empty:
            result.changed_tables.append(changed)
    old_rels = {r.key for r in before.relationships}
    new_rels = {r.key for r in after.relationships}
    result.added_relationships = sorted(new_rels - old_rels)
    result.removed_relationships = sorted(old_rels - new_rels)
    return result


def _table_diff(a: TableSnapshot, b: TableSnapshot) -> TableDiff:
    out = TableDiff(a.schema, a.name)
    a_cols = {c.name: c for c in a.columns}
    b_cols = {c.name: c for c in b.columns}
    out.added_columns = [c.name for c in b.columns if c.name not in a_cols]
    out.removed_columns = [c.name for c in a.columns if c.name not in b_cols]
    for column in b.columns:
        if column.name in a_cols:
            changes = _column_changes(a_cols[column.name], column)
            if changes:
                out.changed_columns.append(ColumnDiff(column.name, changes))
    if a.kind != b.kind:
        out.changes.append(Change("kind", a.kind, b.kind))
    if a.primary_key != b.primary_key:
        out.changes.append(
            Change("primaryKey", ",".join(a.primary_key) or None, ",".join(b.primary_key) or None)
        )
    rows_a, rows_b = a.rows, b.rows
    if rows_a is not None and rows_b is not None and _ratio_changed(rows_a, rows_b, ROWS_RATIO, 10):
        out.changes.append(Change("rowEstimate", _num(rows_a), _num(rows_b)))
    return out


def _column_changes(a: ColumnSnapshot, b: ColumnSnapshot) -> list[Change]:
    changes: list[Change] = []
    for name, before, after in (
        ("dataType", a.data_type, b.data_type),
        ("nullable", str(a.nullable).lower(), str(b.nullable).lower()),
        ("default", a.default, b.default),
        ("semanticType", a.semantic_type, b.semantic_type),
        ("pii", str(a.pii).lower(), str(b.pii).lower()),
    ):
        if before != after:
            changes.append(Change(name, before, after))
    pa, pb = a.profile, b.profile
    if pa is None or pb is None:
        return changes
    na = _value(pa.null_fraction)
    nb = _value(pb.null_fraction)
    if na is not None and nb is not None and abs(float(na) - float(nb)) >= NULL_FRACTION_DELTA:
        changes.append(Change("nullFraction", _num(na, 4), _num(nb, 4)))
    da = _value(pa.distinct_count)
    db = _value(pb.distinct_count)
    if da is not None and db is not None and _ratio_changed(float(da), float(db), DISTINCT_RATIO, 10):
        changes.append(Change("distinctCount", _num(da), _num(db)))
    if a.data_type == b.data_type:
        for name, fa, fb in (("min", pa.min, pb.min), ("max", pa.max, pb.max)):
            va, vb = _value(fa), _value(fb)
            if va is not None and vb is not None and va != vb and _exactish(fa) and _exactish(fb):
                changes.append(Change(name, str(va), str(vb)))
    return changes


def _value(figure: Any) -> Any:
    return None if figure is None else figure.value


def _exactish(figure: Any) -> bool:
    """Extremes are compared only when both are exact (a sample's extremes always move)."""
    return figure is not None and figure.method in ("exact", "index")


def _ratio_changed(a: float, b: float, ratio: float, minimum: float) -> bool:
    if abs(a - b) < minimum:
        return False
    return abs(a - b) / max(abs(a), abs(b), 1.0) >= ratio


def _num(value: Any, digits: int = 0) -> str:
    number = float(value)
    return str(round(number)) if digits == 0 else f"{number:.{digits}f}"
