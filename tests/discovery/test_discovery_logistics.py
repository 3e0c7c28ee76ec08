"""Discovery on a database it was never tuned for (tests/discovery/logistics.py): every
planted reference found whatever its name, no trap taken for a reference, composite
references, partitioned and inherited tables counted once, planted semantic types."""

from __future__ import annotations

from dataclasses import replace

from discovery.kit import OPEN, TEST_OPTIONS
from discovery.logistics import DECLARED, PLANTED, SEMANTICS, TRAPS
from uds.datasources.params import ConnectionParams
from uds.discovery import quality
from uds.discovery.budget import Budget
from uds.discovery.engine import discover
from uds.discovery.snapshot import (
    CatalogSnapshot,
    ColumnProfile,
    ColumnQuality,
    ColumnSnapshot,
    Figure,
    TableSnapshot,
)
from uds.settings import Settings

CONFIDENT = 0.7


def found(
    snapshot: CatalogSnapshot, *, declared: bool
) -> dict[tuple[str, tuple[str, ...], str, tuple[str, ...]], float]:
    return {
        (r.from_table, tuple(r.from_columns), r.to_table, tuple(r.to_columns)): r.confidence
        for r in snapshot.relationships
        if r.declared is declared
    }


def test_every_planted_reference_is_found_whatever_its_name(logistics_discovered: CatalogSnapshot) -> None:
    inferred = found(logistics_discovered, declared=False)
    missing = {p: inferred.get(p) for p in PLANTED if inferred.get(p, 0) < CONFIDENT}
    assert not missing, missing
    assert set(found(logistics_discovered, declared=True)) == DECLARED
    rel = next(r for r in logistics_discovered.relationships if r.from_columns == ["custno"])
    assert any("sampled distinct values found in customers.id" in reason for reason in rel.reasons)
    assert any("abbreviation 'cust'" in reason for reason in rel.reasons)


def test_no_confident_relationship_from_a_trap_or_into_a_small_lookup(
    logistics_discovered: CatalogSnapshot,
) -> None:
    confident = {
        (r.from_table, tuple(r.from_columns), r.to_table, tuple(r.to_columns))
        for r in logistics_discovered.relationships
        if not r.declared and r.confidence >= CONFIDENT
    }
    assert confident - PLANTED == set(), confident - PLANTED
    for table, column in TRAPS:
        assert not [
            r
            for r in logistics_discovered.relationships
            if r.from_table == table
            and column in r.from_columns
            and len(r.from_columns) == 1
            and r.confidence >= CONFIDENT
        ]
    into_regions = {r.from_columns[0] for r in logistics_discovered.relationships if r.to_table == "regions"}
    assert into_regions == {"region_id"}


def test_composite_references_are_found(logistics_discovered: CatalogSnapshot) -> None:
    rel = next(
        r
        for r in logistics_discovered.relationships
        if r.from_table == "pick_tasks" and len(r.from_columns) == 2
    )
    assert (rel.to_table, rel.to_columns, rel.from_columns) == (
        "order_lines",
        ["order_no", "line_no"],
        ["order_no", "line_no"],
    )
    assert rel.confidence >= CONFIDENT and rel.containment == 1.0


def test_partitioned_and_inherited_tables_are_counted_once(logistics_discovered: CatalogSnapshot) -> None:
    names = {t.name for t in logistics_discovered.tables}
    assert "shipments" in names and not {"shipments_2024", "shipments_2025"} & names
    shipments = logistics_discovered.table("logi", "shipments")
    assert shipments is not None and shipments.kind == "partitioned_table"
    assert shipments.partitions == ["logi.shipments_2024", "logi.shipments_2025"]
    assert shipments.rows is not None and abs(shipments.rows / 30_000 - 1) <= 0.05
    parent = logistics_discovered.table("logi", "vehicle_log")
    child = logistics_discovered.table("logi", "vehicle_log_archive")
    assert parent is not None and child is not None
    assert child.inherits == "logi.vehicle_log"
    # The parent counts its own rows, not its child's too.
    assert parent.rows == 2_000 and child.rows == 3_000
    view = logistics_discovered.table("logi", "daily_volume")
    assert view is not None and view.kind == "materialized_view"


def test_the_bloated_table_reports_its_dead_rows(logistics_discovered: CatalogSnapshot) -> None:
    events = logistics_discovered.table("logi", "tracking_events")
    assert events is not None and events.rows is not None
    assert abs(events.rows / 40_000 - 1) <= 0.05, events.row_estimate_basis
    assert events.dead_row_share is not None and events.dead_row_share >= 0.45
    assert events.quality is not None and any("vacuum pending" in r for r in events.quality.reasons)


def test_planted_semantic_types(logistics_discovered: CatalogSnapshot) -> None:
    wrong = {}
    for (table, column), expected in SEMANTICS.items():
        found_table = logistics_discovered.table("logi", table)
        assert found_table is not None, table
        col = found_table.column(column)
        assert col is not None, (table, column)
        if col.semantic_type != expected:
            wrong[(table, column)] = (col.semantic_type, expected, col.semantic_reasons)
        else:
            assert col.semantic_confidence is not None and col.semantic_reasons
    assert not wrong, wrong


def test_quality_names_the_columns_that_carry_no_information(logistics_discovered: CatalogSnapshot) -> None:
    vehicles = logistics_discovered.table("logi", "vehicles")
    archive = logistics_discovered.table("logi", "vehicle_log_archive")
    assert vehicles is not None and vehicles.quality is not None
    assert archive is not None and archive.quality is not None
    assert (
        "decommissioned_on is empty (all null in 500 rows): it carries no information"
        in vehicles.quality.reasons
    )
    assert (
        "archived_by holds one value ('system') in all 3,000 rows: it carries no information"
        in archive.quality.reasons
    )


def test_a_sampled_column_without_information_says_how_many_rows_were_seen() -> None:
    column = ColumnSnapshot(name="note", position=1, data_type="text", family="text", nullable=True)
    column.profile = ColumnProfile(method="sample", sample_size=4_000)
    column.profile.null_fraction = Figure(1.0, "sample", 4_000)
    column.quality = ColumnQuality(completeness=0.0)
    table = TableSnapshot(
        schema="s", name="t", kind="table", primary_key=["id"], columns=[column], profiled=True
    )
    reasons = quality.table_quality(table, []).reasons
    assert reasons == ["note is empty (all null in 4,000 sampled rows): it carries no information"]


async def test_several_connections_find_the_same_catalog(
    logistics: ConnectionParams, logistics_discovered: CatalogSnapshot
) -> None:
    assert Settings.from_env({}).discovery_connections == 1
    connections = Settings.from_env({"UDS_DISCOVERY_CONNECTIONS": "3"}).discovery_connections
    options = replace(TEST_OPTIONS, concurrency=connections)
    again = await discover(logistics, budget=Budget(rows=10_000_000), guard=OPEN, options=options)
    assert [t.key for t in again.tables] == [t.key for t in logistics_discovered.tables]
    assert [t.rows for t in again.tables] == [t.rows for t in logistics_discovered.tables]
    assert {r.key for r in again.relationships} == {r.key for r in logistics_discovered.relationships}
