"""Where the objects of a GraphQL type come from: one table, one row per object.

A `RowSource` ties a strawberry type to the tenant table its resolvers read it from.
Fields map to columns of the same name unless `columns` says otherwise; how a value is
written follows from the field's GraphQL type and the column's SQL type (uds.api.compiler
has the table of what it handles). `empty_if_null` names list fields whose resolvers read
a NULL as an empty list; `relations` names object fields read from another table, and
`documents` object fields stored as JSON in a column.

The declaration is per type, never per operation: the compiler derives every query from
the selection it is given, and anything it cannot derive falls back to the resolvers.
The differential test (tests/api/test_fast_paths_sameness.py) holds both to the same bytes.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Table


@dataclass(frozen=True)
class Relation:
    """An object field read from another table's rows that match this row.

    One object (the first row in `order`), or with `many` a list of all of them in order.
    """

    source: RowSource
    # (column of the other table, column of this one) pairs that must be equal.
    match: tuple[tuple[str, str], ...]
    # (column, descending) of the other table.
    order: tuple[tuple[str, bool], ...]
    many: bool = False


@dataclass(frozen=True)
class RowSource:
    type: type
    table: Table
    columns: Mapping[str, str] = field(default_factory=dict)
    empty_if_null: frozenset[str] = frozenset()
    relations: Mapping[str, Relation] = field(default_factory=dict)
    # Object fields stored inside a JSONB column: field -> (column, key). The object is
    # rebuilt from that JSON object by its dataclass (`Cls(**value)`), so its keys are the
    # type's field names, and a missing or empty object reads as null.
    documents: Mapping[str, tuple[str, str]] = field(default_factory=dict)

    def column_of(self, python_name: str) -> Any:
        """The table column a field reads, or None."""
        key = self.columns.get(python_name, python_name)
        return self.table.c.get(key)


SOURCES: dict[type, RowSource] = {}


def row_source(source: RowSource) -> RowSource:
    """Register `source` for its type (the compiler finds sources by type)."""
    SOURCES[source.type] = source
    return source
