"""What discovery found, as plain data: the catalog model (dialect-neutral).

`CatalogSnapshot` is what `engine.discover` returns and what `service.store_run` writes;
every class round-trips through `to_dict`/`from_dict` (JSON-safe) so a run can be stored
step by step and read back to resume.

Every profile figure is a `Figure`: the value, how it was obtained (`method`) and from how
many rows (`sample_size`). Methods:

- `exact`: computed over every row of the table.
- `stats`: read from PostgreSQL's planner statistics (pg_stats / pg_class), which ANALYZE
  computes from a sample of its own (`sample_size` is that sample's size).
- `sample`: computed from a TABLESAMPLE sample; `margin` is the half-width of a 99.7 %
  interval for fractions, assuming rows are independent of the page they sit on.
- `estimate`: extrapolated from a sample (distinct counts; row counts).
- `constraint`: implied by the schema (NOT NULL gives null fraction 0; a single-column
  primary key or unique constraint makes every non-null value distinct).
- `index`: read from a btree index (exact minimum and maximum in two index probes).
- `catalog`: from the size of the table on disk and the density seen in a sample.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from datetime import datetime
from typing import Any

EXACT, STATS, SAMPLE, ESTIMATE, CONSTRAINT, INDEX, CATALOG, SKIPPED = (
    "exact",
    "stats",
    "sample",
    "estimate",
    "constraint",
    "index",
    "catalog",
    "skipped",
)

# Semantic types (CatalogColumn.semanticType), by family: what analysis (dashboards, the
# MCP catalog) may do with a column. A measure is summed or averaged; a time is an axis;
# a category or geo value is something to group by; a label names one entity (shown, not
# grouped); an identifier is counted; PII is only ever counted.
SEMANTIC_FAMILIES: dict[str, tuple[str, ...]] = {
    "measure": ("money", "quantity", "percentage", "duration", "measure"),
    "time": ("created_at", "updated_at", "event_time"),
    "category": ("category",),
    "label": ("label",),
    "identifier": ("identifier",),
    "flag": ("boolean_flag",),
    "geo": ("country", "city", "postal_code", "latitude", "longitude"),
    "code": ("currency", "url"),
    "pii": ("email", "phone", "ip_address", "card_number", "person_name"),
}
SEMANTIC_TYPES = tuple(t for types in SEMANTIC_FAMILIES.values() for t in types)
_FAMILY_OF = {t: family for family, types in SEMANTIC_FAMILIES.items() for t in types}


def semantic_family(semantic_type: str | None) -> str | None:
    """The family of a semantic type (see SEMANTIC_FAMILIES), or None if it has none."""
    return _FAMILY_OF.get(semantic_type) if semantic_type else None


PII_TYPES = frozenset(SEMANTIC_FAMILIES["pii"])


@dataclass(slots=True)
class Figure:
    """One profile figure and where it came from."""

    value: Any
    method: str
    sample_size: int | None = None
    margin: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v is not None or k == "value"}

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> Figure | None:
        return None if data is None else cls(**data)


PROFILE_FIGURES = ("null_fraction", "distinct_count", "min", "max", "top_values", "histogram")


@dataclass(slots=True)
class ColumnProfile:
    """Per-column figures. top_values: [[value, frequency], ...] with frequency a fraction
    of all rows; histogram: {"bounds": [k+1 values], "fractions": [k fractions of the
    non-null rows]}. Values are strings (ISO 8601 for times)."""

    method: str
    sample_size: int | None = None
    null_fraction: Figure | None = None
    distinct_count: Figure | None = None
    min: Figure | None = None
    max: Figure | None = None
    top_values: Figure | None = None
    histogram: Figure | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"method": self.method, "sample_size": self.sample_size}
        for name in PROFILE_FIGURES:
            figure = getattr(self, name)
            if figure is not None:
                out[name] = figure.to_dict()
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> ColumnProfile | None:
        if not data:
            return None
        return cls(
            method=data["method"],
            sample_size=data.get("sample_size"),
            **{name: Figure.from_dict(data.get(name)) for name in PROFILE_FIGURES},
        )


@dataclass(slots=True)
class ColumnQuality:
    """Completeness (non-null share), uniqueness (distinct / non-null, for keys) and validity
    (share of values that are valid for the column's semantic type), each 0..1 or None."""

    completeness: float | None = None
    uniqueness: float | None = None
    validity: float | None = None
    notes: list[str] = field(default_factory=list)


@dataclass(slots=True)
class ColumnSnapshot:
    name: str
    position: int
    data_type: str
    # number | integer | text | time | date | bool | uuid | network | interval | other
    family: str
    nullable: bool
    default: str | None = None
    comment: str | None = None
    profile: ColumnProfile | None = None
    semantic_type: str | None = None
    semantic_confidence: float | None = None
    semantic_reasons: list[str] = field(default_factory=list)
    pii: bool = False
    quality: ColumnQuality | None = None

    def to_dict(self) -> dict[str, Any]:
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        out["profile"] = self.profile.to_dict() if self.profile else None
        out["quality"] = asdict(self.quality) if self.quality else None
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ColumnSnapshot:
        data = dict(data)
        data["profile"] = ColumnProfile.from_dict(data.get("profile"))
        data["quality"] = ColumnQuality(**data["quality"]) if data.get("quality") else None
        return cls(**data)


@dataclass(slots=True)
class Quality:
    score: float
    reasons: list[str] = field(default_factory=list)


@dataclass(slots=True)
class TableSnapshot:
    schema: str
    name: str
    # table | partitioned_table | view | materialized_view | foreign_table
    kind: str
    columns: list[ColumnSnapshot] = field(default_factory=list)
    row_estimate: Figure | None = None
    size_bytes: int | None = None
    primary_key: list[str] = field(default_factory=list)
    unique_constraints: list[list[str]] = field(default_factory=list)
    # [{"name", "columns", "unique", "primary", "method"}]
    indexes: list[dict[str, Any]] = field(default_factory=list)
    comment: str | None = None
    analyzed_at: datetime | None = None
    profile_method: str | None = None
    sample_size: int | None = None
    profiled: bool = False
    quality: Quality | None = None
    warnings: list[str] = field(default_factory=list)
    # Share of the table's row versions that are dead (updated or deleted, not yet
    # vacuumed), 0..1, and how the row estimate was arrived at (what was believed, why).
    dead_row_share: float | None = None
    row_estimate_basis: str | None = None
    # A partitioned table's leaf partitions ("schema.name"; they are not listed as tables
    # of their own), and the parent a table inherits from (INHERITS, not partitions).
    partitions: list[str] = field(default_factory=list)
    inherits: str | None = None

    @property
    def key(self) -> tuple[str, str]:
        return (self.schema, self.name)

    @property
    def qualified(self) -> str:
        return f"{self.schema}.{self.name}"

    def column(self, name: str) -> ColumnSnapshot | None:
        return next((c for c in self.columns if c.name == name), None)

    @property
    def rows(self) -> float | None:
        return (
            float(self.row_estimate.value)
            if self.row_estimate and self.row_estimate.value is not None
            else None
        )

    def to_dict(self) -> dict[str, Any]:
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        out["columns"] = [c.to_dict() for c in self.columns]
        out["row_estimate"] = self.row_estimate.to_dict() if self.row_estimate else None
        out["analyzed_at"] = self.analyzed_at.isoformat() if self.analyzed_at else None
        out["quality"] = asdict(self.quality) if self.quality else None
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TableSnapshot:
        data = dict(data)
        data["columns"] = [ColumnSnapshot.from_dict(c) for c in data.get("columns", [])]
        data["row_estimate"] = Figure.from_dict(data.get("row_estimate"))
        analyzed = data.get("analyzed_at")
        data["analyzed_at"] = datetime.fromisoformat(analyzed) if isinstance(analyzed, str) else analyzed
        data["quality"] = Quality(**data["quality"]) if data.get("quality") else None
        return cls(**data)


@dataclass(slots=True)
class Relationship:
    """A reference from columns of one table to a key of another: declared or inferred."""

    from_schema: str
    from_table: str
    from_columns: list[str]
    to_schema: str
    to_table: str
    to_columns: list[str]
    declared: bool
    confidence: float
    name: str | None = None
    # Evidence, for inferred ones: containment measured on a sample.
    reasons: list[str] = field(default_factory=list)
    containment: float | None = None
    sample_size: int | None = None

    @property
    def key(self) -> str:
        return (
            f"{self.from_schema}.{self.from_table}({','.join(self.from_columns)})->"
            f"{self.to_schema}.{self.to_table}({','.join(self.to_columns)})"
        )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Relationship:
        return cls(**data)


@dataclass(slots=True)
class CatalogSnapshot:
    database: str
    server_version: str
    tables: list[TableSnapshot] = field(default_factory=list)
    relationships: list[Relationship] = field(default_factory=list)
    rows_read: int = 0
    warnings: list[str] = field(default_factory=list)
    # Statements the run sent to the source: {"catalog": n, "control": m, "data": k}
    # (engine.DiscoverySession.count_statements; not stored).
    statements: dict[str, int] = field(default_factory=dict)

    def table(self, schema: str, name: str) -> TableSnapshot | None:
        return next((t for t in self.tables if t.schema == schema and t.name == name), None)
