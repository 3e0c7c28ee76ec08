"""Stored dashboards and their widgets (in every tenant schema; tenant migration 0004).

A dashboard belongs to one data source (deleting the source deletes its dashboards) and
remembers the discovery run it was generated from. Every edit raises the dashboard's
`version`, and the edited widget's own `version`: widget data is cached per widget id
and version, so an edited widget never shows stale rows.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import Float, ForeignKey, Integer, String, Text, func
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from uds.db import TenantBase


class Dashboard(TenantBase):
    __tablename__ = "dashboards"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    data_source_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("data_sources.id", ondelete="CASCADE"))
    # The discovery run the widgets were generated from, and the job that did it.
    run_id: Mapped[uuid.UUID | None]
    job_id: Mapped[uuid.UUID | None]
    title: Mapped[str] = mapped_column(String(200))
    goal: Mapped[str | None] = mapped_column(Text)
    version: Mapped[int] = mapped_column(Integer, default=1)
    # What the generator said about the goal (matched words, or that nothing matched).
    message: Mapped[str] = mapped_column(Text, default="")
    matched: Mapped[bool] = mapped_column(default=True)
    # The source schemas widget SQL may read (those the catalog had), for the SQL checker.
    schemas: Mapped[list[str]] = mapped_column(JSONB, default=list)
    created_by: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(server_default=func.now())


class Widget(TenantBase):
    __tablename__ = "widgets"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    dashboard_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("dashboards.id", ondelete="CASCADE"))
    # The engine's content key (kind and SQL), the same in every generation.
    key: Mapped[str] = mapped_column(String(40), default="")
    title: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(24))
    sql: Mapped[str] = mapped_column(Text)
    spec: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict)
    x: Mapped[int]
    y: Mapped[int]
    w: Mapped[int]
    h: Mapped[int]
    score: Mapped[float] = mapped_column(Float, default=0.0)
    reason: Mapped[str] = mapped_column(Text, default="")
    # Computed when the data is first fetched; None until then.
    insights: Mapped[list[str] | None] = mapped_column(JSONB(none_as_null=True), nullable=True)
    # Source columns the SQL reads ("schema.table.column"), to tell a changed source.
    columns: Mapped[list[str]] = mapped_column(JSONB, default=list)
    version: Mapped[int] = mapped_column(Integer, default=1)
    position: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(server_default=func.now())
