"""What each table and column of a catalog can be in a chart, from discovery's facts.

Roles: a measure (summed or averaged), a time axis, a category (grouped by), a label (names
one entity), PII (only ever counted). Semantic types decide first (today's detector and
the families of `SEMANTIC_FAMILIES`); where a column has none, the data type and the
profile decide (a numeric column that is not a key is a measure, a timestamp is a time
axis, a column with few distinct values is a category), so a database UDS has never seen
still gets a dashboard.

PII is decided generously: discovery's PII flag, the pii family, and a name check of our
own (e-mail, phone, person names, birth dates, addresses, ...) in case the detector missed
a column. Such columns are never grouped, labelled or listed.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from uds.dashboards.names import name_words
from uds.discovery.snapshot import (
    SEMANTIC_FAMILIES,
    CatalogSnapshot,
    ColumnSnapshot,
    Relationship,
    TableSnapshot,
    semantic_family,
)

# Inferred relationships below this confidence are not joined through.
INFERRED_MIN_CONFIDENCE = 0.8
# A category has at least 2 and at most this many distinct values.
MAX_CATEGORY_VALUES = 50
# A pie chart shows at most this many slices.
MAX_PIE_VALUES = 6

PII_NAME = re.compile(
    r"(^|_)(e_?mail|phone|mobile|msisdn|fax|first_?name|last_?name|full_?name|given_?name|family_?name|"
    r"middle_?name|surname|maiden_?name|nick_?name|ssn|social_security|passport|national_id|tax_id|iban|"
    r"card_?number|cc_?num|birth|dob|date_of_birth|birthday|street|address|ip|ip_?address|password|"
    r"secret|token|(contact|customer|user|person|employee|owner|author|client|patient|member|recipient|sender|"
    r"holder|manager|driver|passenger|guest|buyer|seller)_?name)($|_)"
)
PERSON_TABLE = re.compile(
    r"(^|_)(customer|user|person|people|employee|member|contact|client|patient|student|author|staff|"
    r"subscriber|lead|candidate|applicant)s?$"
)
ID_LIKE = re.compile(
    r"(^id$|_id$|^id_|_uuid$|^uuid$|_key$|_code$|^code$|_ref$|reference$|_no$|_number$|^sku$)"
)
NOT_A_MEASURE = re.compile(
    r"(^|_)(year|month|day|hour|zip|postal|phone|lat|latitude|lon|lng|longitude|version|"
    r"position|sort|order_?index|rank|level|parent)($|_)"
)
QUANTITY_NAME = re.compile(
    r"(^|_)(qty|quantity|units?|seats?|items?|count|volume|stock|inventory|visits?)($|_)"
)
MONEY_NAME = re.compile(
    r"amount|price|total|cost|revenue|fee|balance|salary|wage|payment|paid|refund|discount|"
    r"spend|budget|income|charge|mrr|arr|gmv|due"
)
PERCENT_NAME = re.compile(r"(percent|pct|ratio|rate)($|_)")
DURATION_NAME = re.compile(r"(duration|elapsed|latency|_ms$|_secs?$|_seconds$|_minutes$|_hours$|_days$)")
CATEGORY_NAME = re.compile(
    r"status|state|type|kind|category|level|tier|stage|segment|method|channel|source|plan|"
    r"grade|priority|class|group|region|department"
)
LABEL_NAME = re.compile(r"^(name|title|label|display_name|caption|headline)$|_(name|title|label)$")
UPDATED_NAME = re.compile(r"(^|_)(updated|modified|changed|edited|last_modified|last_updated)(_|$)")

MEASURE_TYPES = frozenset(SEMANTIC_FAMILIES["measure"])
# Words that make a number a value per unit (a price, a rate): averaged, never summed.
PER_UNIT_WORDS = frozenset({"price", "rate", "unit", "per", "avg", "average", "mean", "ratio", "score"})
GROUPABLE_TYPES = frozenset({"category", "country", "city", "currency", "boolean_flag"})


@dataclass(frozen=True, slots=True)
class Measure:
    column: ColumnSnapshot
    kind: str  # money | quantity | percentage | duration | measure
    # How the kind was decided, for the reason ("semantic type money", "numeric column").
    evidence: str

    @property
    def additive(self) -> bool:
        """Sums mean something for amounts and quantities; for prices, rates, durations and
        numbers of unknown meaning (a rating, an age, a temperature) only averages do."""
        if self.kind not in ("money", "quantity"):
            return False
        return not set(name_words(self.column.name)) & PER_UNIT_WORDS


@dataclass(frozen=True, slots=True)
class TimeAxis:
    column: ColumnSnapshot
    kind: str  # created | event | updated
    evidence: str
    span: tuple[dt.datetime, dt.datetime] | None


@dataclass(frozen=True, slots=True)
class Category:
    column: ColumnSnapshot
    values: int  # distinct count
    evidence: str


@dataclass(frozen=True, slots=True)
class LineAmount:
    """A price column and a quantity column of one row: their product is what the row is worth."""

    price: ColumnSnapshot
    quantity: ColumnSnapshot


@dataclass(slots=True)
class TableFacts:
    table: TableSnapshot
    rows: float | None
    measures: list[Measure] = field(default_factory=list)
    times: list[TimeAxis] = field(default_factory=list)
    categories: list[Category] = field(default_factory=list)
    label: ColumnSnapshot | None = None
    label_unique: bool = False
    line_amount: LineAmount | None = None
    # Many-to-one relationships from this table (usable for joins).
    outgoing: list[Relationship] = field(default_factory=list)
    importance: float = 0.0

    @property
    def ref(self) -> str:
        return table_ref(self.table)

    @property
    def quality(self) -> float:
        return float(self.table.quality.score) if self.table.quality is not None else 0.8


def table_ref(table: TableSnapshot) -> str:
    return f"{table.schema}.{table.name}"


def column_ref(table: TableSnapshot, column: ColumnSnapshot | str) -> str:
    name = column if isinstance(column, str) else column.name
    return f"{table.schema}.{table.name}.{name}"


# -- single columns -----------------------------------------------------------------------


def is_pii(table: TableSnapshot, column: ColumnSnapshot) -> bool:
    """Never grouped, labelled or listed: discovery's PII flag, the pii family, or a PII name."""
    if column.pii or semantic_family(column.semantic_type) == "pii":
        return True
    name = column.name.lower()
    if PII_NAME.search(name):
        return True
    # "name" in a table of people is a person's name.
    return name in ("name", "display_name") and PERSON_TABLE.search(table.name.lower()) is not None


def figure(column: ColumnSnapshot, name: str) -> object | None:
    profile = column.profile
    fig = getattr(profile, name, None) if profile is not None else None
    return fig.value if fig is not None else None


def distinct_count(column: ColumnSnapshot) -> float | None:
    value = figure(column, "distinct_count")
    return float(value) if isinstance(value, int | float) else None


def null_fraction(column: ColumnSnapshot) -> float:
    value = figure(column, "null_fraction")
    return float(value) if isinstance(value, int | float) else (0.0 if not column.nullable else 0.1)


def number_range(column: ColumnSnapshot) -> tuple[float, float] | None:
    lo, hi = figure(column, "min"), figure(column, "max")
    try:
        a, b = float(lo), float(hi)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return (a, b) if math.isfinite(a) and math.isfinite(b) else None


def time_span(column: ColumnSnapshot) -> tuple[dt.datetime, dt.datetime] | None:
    lo, hi = figure(column, "min"), figure(column, "max")
    try:
        start = dt.datetime.fromisoformat(str(lo))
        end = dt.datetime.fromisoformat(str(hi))
    except ValueError:
        return None
    if start.tzinfo is None:
        start = start.replace(tzinfo=dt.UTC)
    if end.tzinfo is None:
        end = end.replace(tzinfo=dt.UTC)
    return (start, end) if end >= start else None


def _keys(table: TableSnapshot, relationships: Sequence[Relationship]) -> set[str]:
    keys = set(table.primary_key)
    for unique in table.unique_constraints:
        if len(unique) == 1:
            keys.update(unique)
    for rel in relationships:
        if (rel.from_schema, rel.from_table) == table.key:
            keys.update(rel.from_columns)
    return keys


def measure_of(table: TableSnapshot, column: ColumnSnapshot, keys: set[str]) -> Measure | None:
    if is_pii(table, column) or column.family not in ("integer", "number"):
        return None
    semantic = column.semantic_type
    if semantic in MEASURE_TYPES:
        return Measure(column, semantic, f"semantic type {semantic}")
    if semantic is not None:
        return None  # an identifier, a category, a code: not something to add up
    name = column.name.lower()
    if column.name in keys or ID_LIKE.search(name) or NOT_A_MEASURE.search(name):
        return None
    span = number_range(column)
    if span is not None and span[0] == span[1]:
        return None
    distinct = distinct_count(column)
    if column.family == "integer" and CATEGORY_NAME.search(name) and distinct is not None and distinct <= 20:
        return None
    if QUANTITY_NAME.search(name):
        kind = "quantity"
    elif MONEY_NAME.search(name) and column.family == "number":
        kind = "money"
    elif PERCENT_NAME.search(name):
        kind = "percentage"
    elif DURATION_NAME.search(name):
        kind = "duration"
    else:
        kind = "measure"
    return Measure(column, kind, f"a {column.data_type} column that is not a key")


def time_of(table: TableSnapshot, column: ColumnSnapshot) -> TimeAxis | None:
    if column.family not in ("time", "date") or is_pii(table, column):
        return None
    span = time_span(column)
    if span is not None and span[0] == span[1]:
        return None
    semantic = column.semantic_type
    if semantic == "created_at":
        return TimeAxis(column, "created", "semantic type created_at", span)
    if semantic == "event_time":
        return TimeAxis(column, "event", "semantic type event_time", span)
    if semantic == "updated_at" or UPDATED_NAME.search(column.name.lower()):
        return TimeAxis(column, "updated", "an update time", span)
    return TimeAxis(column, "event", f"a {column.data_type} column", span)


def category_of(table: TableSnapshot, column: ColumnSnapshot, keys: set[str]) -> Category | None:
    if is_pii(table, column) or column.name in keys:
        return None
    semantic = column.semantic_type
    distinct = distinct_count(column)
    if column.family == "bool" or semantic == "boolean_flag":
        return Category(column, 2 if distinct is None else max(2, int(distinct)), "a yes/no column")
    if distinct is None or not 2 <= distinct <= MAX_CATEGORY_VALUES:
        return None
    values = round(distinct)
    if semantic in GROUPABLE_TYPES:
        return Category(column, values, f"semantic type {semantic}")
    if semantic is not None:
        return None  # identifiers, labels, URLs, postal codes, measures
    if column.family == "text" or (column.family == "integer" and CATEGORY_NAME.search(column.name.lower())):
        return Category(column, values, f"{values} distinct values")
    return None


def label_of(table: TableSnapshot, keys: set[str]) -> tuple[ColumnSnapshot | None, bool]:
    """The column that names a row of `table` (not PII), and whether it is unique."""
    best: tuple[int, int, ColumnSnapshot] | None = None
    own = "_".join(name_words(table.name))
    for column in table.columns:
        if column.family != "text" or is_pii(table, column):
            continue
        name = column.name.lower()
        if column.semantic_type == "label":
            rank = 0
        elif LABEL_NAME.search(name):
            rank = 1
        elif name in ("sku", "code", "slug", "handle") or name in {f"{own}_code", f"{own}_sku"}:
            rank = 2
        else:
            continue
        if null_fraction(column) >= 0.5:
            continue  # mostly empty: it names few rows
        if best is None or (rank, column.position) < best[:2]:
            best = (rank, column.position, column)
    if best is None:
        return None, False
    column = best[2]
    unique = [column.name] in table.unique_constraints or table.primary_key == [column.name]
    distinct = distinct_count(column)
    if not unique and distinct is not None and table.rows and column.profile is not None:
        unique = column.profile.method == "exact" and distinct >= table.rows
    return column, unique


def usable_join(rel: Relationship, catalog_tables: dict[tuple[str, str], TableSnapshot]) -> bool:
    """A many-to-one hop that cannot multiply rows: the target columns are its key."""
    if not rel.declared and rel.confidence < INFERRED_MIN_CONFIDENCE:
        return False
    if (rel.from_schema, rel.from_table) == (rel.to_schema, rel.to_table):
        return False
    target = catalog_tables.get((rel.to_schema, rel.to_table))
    source = catalog_tables.get((rel.from_schema, rel.from_table))
    if target is None or source is None or len(rel.from_columns) != len(rel.to_columns):
        return False
    if not all(source.column(c) for c in rel.from_columns):
        return False
    target_cols = sorted(rel.to_columns)
    return target_cols == sorted(target.primary_key) or any(
        sorted(u) == target_cols for u in target.unique_constraints
    )


def table_facts(catalog: CatalogSnapshot) -> dict[str, TableFacts]:
    """Facts of every table, keyed by "schema.table", with importance (0..1) for overviews."""
    by_key = {t.key: t for t in catalog.tables}
    rels = sorted(catalog.relationships, key=lambda r: r.key)
    out: dict[str, TableFacts] = {}
    for table in sorted(catalog.tables, key=lambda t: t.key):
        keys = _keys(table, rels)
        facts = TableFacts(table=table, rows=table.rows)
        for column in sorted(table.columns, key=lambda c: (c.position, c.name)):
            if (m := measure_of(table, column, keys)) is not None:
                facts.measures.append(m)
            if (t := time_of(table, column)) is not None:
                facts.times.append(t)
            if (c := category_of(table, column, keys)) is not None:
                facts.categories.append(c)
        facts.label, facts.label_unique = label_of(table, keys)
        facts.line_amount = _line_amount(facts)
        facts.outgoing = [
            r for r in rels if (r.from_schema, r.from_table) == table.key and usable_join(r, by_key)
        ]
        facts.times.sort(key=lambda t: ({"created": 0, "event": 1, "updated": 2}[t.kind], t.column.position))
        out[facts.ref] = facts
    _rank(out)
    return out


def _line_amount(facts: TableFacts) -> LineAmount | None:
    price = next(
        (m.column for m in facts.measures if m.kind == "money" and "price" in name_words(m.column.name)), None
    )
    quantity = next((m.column for m in facts.measures if m.kind == "quantity"), None)
    return LineAmount(price, quantity) if price is not None and quantity is not None else None


def _rank(facts: dict[str, TableFacts]) -> None:
    """Importance for an overview: big tables first, then those with measures, a time axis
    and references to other tables (fact tables refer to the tables that describe them)."""
    biggest = max((f.rows or 0.0 for f in facts.values()), default=0.0)
    for f in facts.values():
        size = math.log10((f.rows or 0.0) + 10) / math.log10(biggest + 10) if biggest > 0 else 0.0
        score = (
            0.55 * size + 0.15 * bool(f.measures) + 0.15 * bool(f.times) + 0.15 * min(len(f.outgoing), 2) / 2
        )
        if f.table.kind in ("view", "materialized_view", "foreign_table"):
            score *= 0.7  # views repeat what their tables hold, and may be slow
        if f.rows is not None and f.rows <= 0:
            score = 0.0
        f.importance = round(score, 4)


# -- grains and readable facts ------------------------------------------------------------

GRAINS: tuple[tuple[str, dt.timedelta], ...] = (
    ("hour", dt.timedelta(days=3)),
    ("day", dt.timedelta(days=120)),
    ("week", dt.timedelta(days=730)),
    ("month", dt.timedelta(days=3660)),
)


def choose_grain(span: tuple[dt.datetime, dt.datetime] | None) -> str:
    """At most about a hundred points: hours up to 3 days, days to 4 months, weeks to 2
    years, months to 10 years, then years. Unknown span: months."""
    if span is None:
        return "month"
    length = span[1] - span[0]
    for grain, limit in GRAINS:
        if length <= limit:
            return grain
    return "year"


def describe_span(span: tuple[dt.datetime, dt.datetime]) -> str:
    start, end = span
    days = (end - start).total_seconds() / 86400
    if days >= 365 * 1.5:
        length = f"{days / 365.25:.1f} years"
    elif days >= 60:
        length = f"{days / 30.44:.0f} months"
    elif days >= 2:
        length = f"{days:.0f} days"
    else:
        length = f"{days * 24:.0f} hours"
    return f"from {start:%Y-%m-%d} to {end:%Y-%m-%d} ({length})"


def count_text(rows: float | None, noun: str) -> str:
    if rows is None:
        return f"an unknown number of {noun}"
    return f"{round(rows):,} {noun}"


def top_values_text(column: ColumnSnapshot, limit: int = 3) -> str:
    top = figure(column, "top_values")
    if not isinstance(top, list) or not top:
        return ""
    parts = [f"{value} {float(freq):.0%}" for value, freq in top[:limit] if value is not None]
    return f" (most common: {', '.join(parts)})" if parts else ""
