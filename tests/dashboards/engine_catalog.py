"""A hand-written catalog of a third domain (a lending library), for engine tests that need
no database: goal reading, scoring, layout, quoting. Figures are what discovery would
report for a library of 400 members, 1,200 books and 20,000 loans."""

from __future__ import annotations

from typing import Any

from uds.discovery.snapshot import (
    CatalogSnapshot,
    ColumnProfile,
    ColumnSnapshot,
    Figure,
    Quality,
    Relationship,
    TableSnapshot,
)


def column(
    name: str,
    family: str,
    *,
    position: int,
    semantic: str | None = None,
    pii: bool = False,
    distinct: float | None = None,
    nulls: float = 0.0,
    low: Any = None,
    high: Any = None,
    top: list[list[Any]] | None = None,
    data_type: str | None = None,
) -> ColumnSnapshot:
    profile = ColumnProfile(
        method="exact",
        null_fraction=Figure(nulls, "exact"),
        distinct_count=Figure(distinct, "exact") if distinct is not None else None,
        min=Figure(low, "exact") if low is not None else None,
        max=Figure(high, "exact") if high is not None else None,
        top_values=Figure(top, "exact") if top else None,
    )
    types = {
        "integer": "integer",
        "number": "numeric",
        "text": "text",
        "time": "timestamp with time zone",
        "date": "date",
        "bool": "boolean",
    }
    return ColumnSnapshot(
        name=name,
        position=position,
        data_type=data_type or types[family],
        family=family,
        nullable=nulls > 0,
        profile=profile,
        semantic_type=semantic,
        pii=pii,
    )


def table(
    name: str, rows: int, columns: list[ColumnSnapshot], *, schema: str = "library", **extra: Any
) -> TableSnapshot:
    return TableSnapshot(
        schema=schema,
        name=name,
        kind="table",
        columns=columns,
        row_estimate=Figure(rows, "exact"),
        primary_key=["id"],
        profiled=True,
        quality=Quality(1.0, ["no issues found"]),
        **extra,
    )


def library_catalog(*, book_confidence: float = 0.93) -> CatalogSnapshot:
    members = table(
        "members",
        400,
        [
            column("id", "integer", position=1, semantic="identifier", distinct=400, low=1, high=400),
            column("full_name", "text", position=2, semantic="person_name", pii=True, distinct=390),
            column("email", "text", position=3, semantic="email", pii=True, distinct=400),
            column(
                "membership_type",
                "text",
                position=4,
                semantic="category",
                distinct=3,
                top=[["adult", 0.6], ["student", 0.3], ["senior", 0.1]],
            ),
            column(
                "joined_at",
                "time",
                position=5,
                semantic="created_at",
                distinct=400,
                low="2019-01-01 00:00:00+00",
                high="2024-12-01 00:00:00+00",
            ),
        ],
    )
    books = table(
        "books",
        1200,
        [
            column("id", "integer", position=1, semantic="identifier", distinct=1200, low=1, high=1200),
            column("title", "text", position=2, distinct=1150),
            column(
                "genre",
                "text",
                position=3,
                semantic="category",
                distinct=12,
                top=[["fiction", 0.3], ["history", 0.15], ["science", 0.1]],
            ),
            column(
                "replacement_cost",
                "number",
                position=4,
                semantic="money",
                distinct=800,
                low="4.5",
                high="120",
            ),
            column("pages", "integer", position=5, distinct=600, low=40, high=1400),
        ],
    )
    loans = table(
        "loans",
        20000,
        [
            column("id", "integer", position=1, semantic="identifier", distinct=20000, low=1, high=20000),
            column("member_id", "integer", position=2, semantic="identifier", distinct=390, low=1, high=400),
            column("book_id", "integer", position=3, semantic="identifier", distinct=1100, low=1, high=1200),
            column(
                "borrowed_at",
                "time",
                position=4,
                semantic="created_at",
                distinct=20000,
                low="2023-01-01 08:00:00+00",
                high="2024-12-31 18:00:00+00",
            ),
            column(
                "returned_at",
                "time",
                position=5,
                distinct=18000,
                nulls=0.1,
                low="2023-01-03 08:00:00+00",
                high="2025-01-20 18:00:00+00",
            ),
            column(
                "lateFee",
                "number",
                position=6,
                semantic="money",
                distinct=300,
                nulls=0.7,
                low="0.5",
                high="25",
            ),
            column("days_out", "integer", position=7, distinct=60, low=1, high=90),
            column(
                "channel",
                "text",
                position=8,
                semantic="category",
                distinct=2,
                top=[["desk", 0.7], ["kiosk", 0.3]],
            ),
        ],
    )
    relationships = [
        Relationship(
            "library",
            "loans",
            ["member_id"],
            "library",
            "members",
            ["id"],
            declared=True,
            confidence=1.0,
            name="loans_member_id_fkey",
        ),
        Relationship(
            "library",
            "loans",
            ["book_id"],
            "library",
            "books",
            ["id"],
            declared=False,
            confidence=book_confidence,
            reasons=["name matches", "containment 1.00"],
            containment=1.0,
        ),
    ]
    return CatalogSnapshot(
        database="library", server_version="16.4", tables=[members, books, loans], relationships=relationships
    )
