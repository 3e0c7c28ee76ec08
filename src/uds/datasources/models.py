"""A tenant's registered data sources (in every tenant schema)."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import String, Text, func
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from uds.db import TenantBase


class DataSource(TenantBase):
    __tablename__ = "data_sources"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    host: Mapped[str] = mapped_column(String(255))
    port: Mapped[int]
    database: Mapped[str] = mapped_column(String(63))
    username: Mapped[str] = mapped_column(String(63))
    sslmode: Mapped[str] = mapped_column(String(16))
    schemas: Mapped[list[str]] = mapped_column(JSONB, default=list)
    # The password, sealed by uds.datasources.credentials; never leaves the service layer.
    secret: Mapped[str] = mapped_column(Text)
    secret_kid: Mapped[str] = mapped_column(String(16))
    # Bumped on every change of the connection, so caches keyed by it go stale.
    version: Mapped[int] = mapped_column(default=1)
    created_by: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(server_default=func.now(), onupdate=func.now())
