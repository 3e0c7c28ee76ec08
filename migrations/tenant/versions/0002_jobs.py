"""Jobs, their ordered progress events, and their completed steps.

Revision ID: t0002
Revises: t0001
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "t0002"
down_revision = "t0001"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "jobs",
        sa.Column("id", sa.Uuid(), primary_key=True),
        sa.Column("kind", sa.String(40), nullable=False),
        sa.Column("status", sa.String(16), nullable=False, server_default="QUEUED"),
        sa.Column("progress", sa.Float(), nullable=False, server_default="0"),
        sa.Column("phase", sa.String(80)),
        sa.Column("message", sa.Text()),
        sa.Column("error", sa.Text()),
        sa.Column("params", JSONB(), nullable=False, server_default=sa.text("'{}'::jsonb")),
        sa.Column("result", JSONB()),
        # Runs of the handler so far; also the fencing token of the current run.
        sa.Column("attempts", sa.Integer(), nullable=False, server_default="0"),
        # Seq of the newest event: the next event takes last_seq + 1 under this row's lock.
        sa.Column("last_seq", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("cancel_requested", sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.Column("created_by", sa.String(255), nullable=False),
        sa.Column("created_at", TS, nullable=False, server_default=sa.func.now()),
        sa.Column("started_at", TS),
        sa.Column("finished_at", TS),
        sa.CheckConstraint(
            "status in ('QUEUED', 'RUNNING', 'SUCCEEDED', 'FAILED', 'CANCELLED')", name="ck_jobs_status"
        ),
        sa.CheckConstraint("progress >= 0 and progress <= 1", name="ck_jobs_progress"),
    )
    op.create_index("ix_jobs_status_created", "jobs", ["status", "created_at"])
    op.create_index("ix_jobs_created", "jobs", ["created_at", "id"])
    op.create_table(
        "job_events",
        sa.Column("job_id", sa.Uuid(), sa.ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("seq", sa.Integer(), primary_key=True),
        # What the event stands for (`start:2`, `scan:1-500#1`, `end`): emitting the same
        # logical event again, e.g. in a retried run, is a no-op instead of a duplicate.
        sa.Column("key", sa.String(200), nullable=False),
        sa.Column("at", TS, nullable=False, server_default=sa.func.now()),
        sa.Column("type", sa.String(40), nullable=False),
        sa.Column("progress", sa.Float(), nullable=False),
        sa.Column("phase", sa.String(80)),
        sa.Column("message", sa.Text()),
        sa.Column("data", JSONB(), nullable=False, server_default=sa.text("'{}'::jsonb")),
        sa.UniqueConstraint("job_id", "key", name="uq_job_events_job_id_key"),
    )
    op.create_table(
        "job_steps",
        sa.Column("job_id", sa.Uuid(), sa.ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("step", sa.String(120), primary_key=True),
        sa.Column("finished_at", TS, nullable=False, server_default=sa.func.now()),
        sa.Column("state", JSONB(), nullable=False, server_default=sa.text("'{}'::jsonb")),
    )


def downgrade() -> None:
    op.drop_table("job_steps")
    op.drop_table("job_events")
    op.drop_index("ix_jobs_created", table_name="jobs")
    op.drop_index("ix_jobs_status_created", table_name="jobs")
    op.drop_table("jobs")
