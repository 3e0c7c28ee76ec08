"""Discovery runs and the catalog each one stored (in every tenant schema).

Every row of a run is keyed by the run id, so a retried job rewrites its own rows
(upserts) and never duplicates them; deleting a run or its data source cascades.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, ForeignKey, String, Text, func
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from uds.db import TenantBase

RUNNING, SUCCEEDED, FAILED, CANCELLED = "RUNNING", "SUCCEEDED", "FAILED", "CANCELLED"
RUN_STATUSES = (RUNNING, SUCCEEDED, FAILED, CANCELLED)


class DiscoveryRun(TenantBase):
    __tablename__ = "discovery_runs"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    data_source_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("data_sources.id", ondelete="CASCADE"), index=True
    )
    job_id: Mapped[uuid.UUID | None]
    status: Mapped[str] = mapped_column(String(16), default=RUNNING)
    started_at: Mapped[datetime] = mapped_column(server_default=func.now())
    finished_at: Mapped[datetime | None]
    rows_read: Mapped[int] = mapped_column(BigInteger, default=0)
    row_budget: Mapped[int] = mapped_column(BigInteger)
    server_version: Mapped[str | None] = mapped_column(String(200))
    database: Mapped[str | None] = mapped_column(String(63))
    warnings: Mapped[list[str]] = mapped_column(JSONB, default=list)
    error: Mapped[str | None] = mapped_column(Text)
    created_by: Mapped[str] = mapped_column(String(255))


class CatalogTable(TenantBase):
    __tablename__ = "catalog_tables"

    run_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("discovery_runs.id", ondelete="CASCADE"), primary_key=True
    )
    schema_name: Mapped[str] = mapped_column(String(63), primary_key=True)
    table_name: Mapped[str] = mapped_column(String(63), primary_key=True)
    kind: Mapped[str] = mapped_column(String(24))
    row_estimate: Mapped[float | None]
    size_bytes: Mapped[int | None] = mapped_column(BigInteger)
    primary_key: Mapped[list[str]] = mapped_column(JSONB, default=list)
    profile_method: Mapped[str | None] = mapped_column(String(16))
    profiled: Mapped[bool] = mapped_column(default=False)
    quality_score: Mapped[float | None]
    # The whole TableSnapshot minus its columns (constraints, indexes, figures, warnings).
    detail: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict)


class CatalogColumn(TenantBase):
    __tablename__ = "catalog_columns"

    run_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("discovery_runs.id", ondelete="CASCADE"), primary_key=True
    )
    schema_name: Mapped[str] = mapped_column(String(63), primary_key=True)
    table_name: Mapped[str] = mapped_column(String(63), primary_key=True)
    column_name: Mapped[str] = mapped_column(String(63), primary_key=True)
    position: Mapped[int]
    data_type: Mapped[str] = mapped_column(Text)
    nullable: Mapped[bool]
    semantic_type: Mapped[str | None] = mapped_column(String(40))
    pii: Mapped[bool] = mapped_column(default=False)
    # The whole ColumnSnapshot (profile with its figures, quality, semantic reasons).
    detail: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict)


class CatalogRelationship(TenantBase):
    __tablename__ = "catalog_relationships"

    run_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("discovery_runs.id", ondelete="CASCADE"), primary_key=True
    )
    key: Mapped[str] = mapped_column(Text, primary_key=True)
    from_schema: Mapped[str] = mapped_column(String(63))
    from_table: Mapped[str] = mapped_column(String(63))
    to_schema: Mapped[str] = mapped_column(String(63))
    to_table: Mapped[str] = mapped_column(String(63))
    declared: Mapped[bool]
    confidence: Mapped[float]
    detail: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict)
