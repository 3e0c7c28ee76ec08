"""A generated dashboard before it is stored: plain, JSON-safe, deterministic data."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

KINDS = ("kpi", "timeseries", "bar", "stacked_bar", "pie", "histogram", "scatter", "table")
GRID_COLUMNS = 12


@dataclass(frozen=True, slots=True)
class GridPos:
    """A place on the 12-column grid: column x (0..11), row y, width w, height h (rows)."""

    x: int
    y: int
    w: int
    h: int

    def to_dict(self) -> dict[str, int]:
        return {"x": self.x, "y": self.y, "w": self.w, "h": self.h}


@dataclass(slots=True)
class WidgetDraft:
    """One widget. `key` is stable from its content (kind and SQL); `columns` are the source
    columns its SQL reads ("schema.table.column"), so a changed source can be detected."""

    key: str
    title: str
    kind: str
    sql: str
    spec: dict[str, Any]
    position: GridPos
    score: float
    reason: str
    columns: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "title": self.title,
            "kind": self.kind,
            "sql": self.sql,
            "spec": self.spec,
            "position": self.position.to_dict(),
            "score": self.score,
            "reason": self.reason,
            "columns": list(self.columns),
        }


@dataclass(slots=True)
class DashboardDraft:
    title: str
    goal: str | None
    message: str
    matched: bool
    widgets: list[WidgetDraft] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "title": self.title,
            "goal": self.goal,
            "message": self.message,
            "matched": self.matched,
            "widgets": [w.to_dict() for w in self.widgets],
        }
