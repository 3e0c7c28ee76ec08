"""A wide schema: 2,000 tables and 40,000 columns discovered with a fixed number of catalog
queries, every table profiled within the run's budget, progress reported per table."""

from __future__ import annotations

import time

from discovery.kit import OPEN, TEST_OPTIONS, execute
from uds.datasources.params import ConnectionParams
from uds.discovery.budget import Budget
from uds.discovery.engine import discover

TABLES = 2_000
# id, 9 integers, 5 numbers, 5 texts: 20 columns a table.
WIDE = f"""
create schema wide;
do $$
begin
  for i in 1..{TABLES} loop
    execute format(
      'create table wide.t%s (id int primary key, '
      'a1 int, a2 int, a3 int, a4 int, a5 int, a6 int, a7 int, a8 int, a9 int, '
      'n1 numeric, n2 numeric, n3 numeric, n4 numeric, n5 numeric, '
      's1 text, s2 text, s3 text, s4 text, s5 text) with (autovacuum_enabled = false); '
      'insert into wide.t%s select g, g, g * 2, g %% 3, g, g, g, g, g, g, g / 2.0, g, g, g, g, '
      '''v'' || g, ''w'', null, ''x'' || (g %% 2), ''y'' from generate_series(1, 1 + %s %% 5) g',
      i, i, i);
  end loop;
end $$;
"""


async def test_two_thousand_tables_with_a_fixed_number_of_catalog_queries(scratch: ConnectionParams) -> None:
    await execute(scratch, WIDE)
    events: list[tuple[float, str, str]] = []

    async def progress(fraction: float, phase: str, message: str) -> None:
        events.append((fraction, phase, message))

    budget = Budget(rows=1_000_000, seconds=120)
    started = time.monotonic()
    snapshot = await discover(scratch, budget=budget, guard=OPEN, options=TEST_OPTIONS, progress=progress)
    elapsed = time.monotonic() - started

    assert len(snapshot.tables) == TABLES
    assert sum(len(t.columns) for t in snapshot.tables) == 20 * TABLES
    assert all(t.profiled and t.profile_method == "exact" for t in snapshot.tables)
    assert elapsed < budget.seconds and not any("budget" in w for w in snapshot.warnings)
    # Structure (info, relations, columns, constraints, indexes) and sizes: a fixed number
    # however many tables; one read of each table's rows besides.
    assert snapshot.statements["catalog"] <= 8, snapshot.statements
    assert snapshot.statements["data"] <= TABLES + 10, snapshot.statements
    profiled = [m for _, phase, m in events if phase == "profiles"]
    assert len(profiled) == TABLES and len(set(profiled)) == TABLES
    fractions = [f for f, _, _ in events]
    assert fractions == sorted(fractions)
    table = snapshot.table("wide", "t7")
    assert table is not None and table.rows == 3


def test_many_uuid_keys_are_paired_by_name_not_with_every_column() -> None:
    from uds.discovery import relationships
    from uds.discovery.snapshot import ColumnSnapshot, TableSnapshot

    def uuid_column(name: str, position: int) -> ColumnSnapshot:
        return ColumnSnapshot(name=name, position=position, data_type="uuid", family="uuid", nullable=False)

    tables = [
        TableSnapshot(
            schema="s",
            name=f"thing{i}s",
            kind="table",
            primary_key=["id"],
            columns=[uuid_column("id", 1), uuid_column(f"thing{i - 1}_id", 2), uuid_column("batch", 3)],
        )
        for i in range(1, 301)
    ]
    found = relationships.candidates(tables, [])
    # thing{i-1}_id names thing{i-1}s.id, and a table's own key is tried against its other
    # columns: a few candidates a table, not 300 x 300 pairs.
    pairs = {(c.child.name, c.columns[0], c.key.table.name) for c in found}
    named = {(f"thing{i}s", f"thing{i - 1}_id", f"thing{i - 1}s") for i in range(2, 301)}
    assert named <= pairs
    assert all(child == target for child, _, target in pairs - named)
    assert len(pairs) <= 3 * len(tables)
