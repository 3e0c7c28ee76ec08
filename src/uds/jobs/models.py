"""Tenant tables of the job system (migration t0002), and the JobState a job row reads as."""

from __future__ import annotations

import uuid
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Boolean, Float, ForeignKey, Integer, String, Text, Uuid, func
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from uds.db import TenantBase

QUEUED = "QUEUED"
RUNNING = "RUNNING"
SUCCEEDED = "SUCCEEDED"
FAILED = "FAILED"
CANCELLED = "CANCELLED"
STATUSES = (QUEUED, RUNNING, SUCCEEDED, FAILED, CANCELLED)
ACTIVE = (QUEUED, RUNNING)
TERMINAL = (SUCCEEDED, FAILED, CANCELLED)


class Job(TenantBase):
    __tablename__ = "jobs"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    kind: Mapped[str] = mapped_column(String(40))
    status: Mapped[str] = mapped_column(String(16), default=QUEUED)
    progress: Mapped[float] = mapped_column(Float, default=0.0)
    phase: Mapped[str | None] = mapped_column(String(80))
    message: Mapped[str | None] = mapped_column(Text)
    error: Mapped[str | None] = mapped_column(Text)
    params: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict)
    result: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_seq: Mapped[int] = mapped_column(Integer, default=0)
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    created_by: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())
    started_at: Mapped[datetime | None] = mapped_column()
    finished_at: Mapped[datetime | None] = mapped_column()


class JobEvent(TenantBase):
    __tablename__ = "job_events"

    job_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True)
    seq: Mapped[int] = mapped_column(Integer, primary_key=True)
    key: Mapped[str] = mapped_column(String(200))
    at: Mapped[datetime] = mapped_column(server_default=func.now())
    type: Mapped[str] = mapped_column(String(40))
    progress: Mapped[float] = mapped_column(Float)
    phase: Mapped[str | None] = mapped_column(String(80))
    message: Mapped[str | None] = mapped_column(Text)
    data: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict)


class JobStep(TenantBase):
    __tablename__ = "job_steps"

    job_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True)
    step: Mapped[str] = mapped_column(String(120), primary_key=True)
    finished_at: Mapped[datetime] = mapped_column(server_default=func.now())
    state: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict)


JOB_COLUMNS = tuple(c for c in Job.__table__.c if c.key not in ("params", "last_seq"))


@dataclass(frozen=True, slots=True)
class JobState:
    """A job as callers see it: read from its row, or carried inside a published event."""

    id: uuid.UUID
    kind: str
    status: str
    progress: float
    phase: str | None
    message: str | None
    error: str | None
    result: dict[str, Any] | None
    attempts: int
    cancel_requested: bool
    created_by: str
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None

    @property
    def finished(self) -> bool:
        return self.status in TERMINAL

    @classmethod
    def from_row(cls, row: Any) -> JobState:
        """From an ORM `Job` or a result row with (at least) the JOB_COLUMNS."""
        return cls(**{name: getattr(row, name) for name in cls.__slots__})  # type: ignore[arg-type]

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["id"] = str(self.id)
        for name in ("created_at", "started_at", "finished_at"):
            value = out[name]
            out[name] = value.isoformat() if value is not None else None
        return out

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> JobState:
        values = dict(data)
        values["id"] = uuid.UUID(values["id"])
        for name in ("created_at", "started_at", "finished_at"):
            if values.get(name) is not None:
                values[name] = datetime.fromisoformat(values[name])
        return cls(**values)
