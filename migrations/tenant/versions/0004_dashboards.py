"""Dashboards and their widgets, with versions.

Revision ID: t0004
Revises: t0003
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "t0004"
down_revision = "t0003"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)
EMPTY_LIST = sa.text("'[]'::jsonb")
EMPTY_OBJECT = sa.text("'{}'::jsonb")


def upgrade() -> None:
    op.create_table(
        "dashboards",
        sa.Column("id", sa.Uuid(), primary_key=True),
        sa.Column(
            "data_source_id",
            sa.Uuid(),
            sa.ForeignKey("data_sources.id", ondelete="CASCADE", name="fk_dashboards_data_source"),
            nullable=False,
        ),
        sa.Column("run_id", sa.Uuid()),
        sa.Column("job_id", sa.Uuid()),
        sa.Column("title", sa.String(200), nullable=False),
        sa.Column("goal", sa.Text()),
        sa.Column("version", sa.Integer(), nullable=False, server_default="1"),
        sa.Column("message", sa.Text(), nullable=False, server_default=""),
        sa.Column("matched", sa.Boolean(), nullable=False, server_default=sa.true()),
        sa.Column("schemas", JSONB(), nullable=False, server_default=EMPTY_LIST),
        sa.Column("created_by", sa.String(255), nullable=False),
        sa.Column("created_at", TS, nullable=False, server_default=sa.func.now()),
        sa.Column("updated_at", TS, nullable=False, server_default=sa.func.now()),
    )
    op.create_index("ix_dashboards_created", "dashboards", ["created_at", "id"])
    op.create_index("ix_dashboards_data_source", "dashboards", ["data_source_id"])
    op.create_table(
        "widgets",
        sa.Column("id", sa.Uuid(), primary_key=True),
        sa.Column(
            "dashboard_id",
            sa.Uuid(),
            sa.ForeignKey("dashboards.id", ondelete="CASCADE", name="fk_widgets_dashboard"),
            nullable=False,
        ),
        sa.Column("key", sa.String(40), nullable=False, server_default=""),
        sa.Column("title", sa.String(200), nullable=False),
        sa.Column("kind", sa.String(24), nullable=False),
        sa.Column("sql", sa.Text(), nullable=False),
        sa.Column("spec", JSONB(), nullable=False, server_default=EMPTY_OBJECT),
        sa.Column("x", sa.Integer(), nullable=False),
        sa.Column("y", sa.Integer(), nullable=False),
        sa.Column("w", sa.Integer(), nullable=False),
        sa.Column("h", sa.Integer(), nullable=False),
        sa.Column("score", sa.Float(), nullable=False, server_default="0"),
        sa.Column("reason", sa.Text(), nullable=False, server_default=""),
        sa.Column("insights", JSONB(), nullable=True),
        sa.Column("columns", JSONB(), nullable=False, server_default=EMPTY_LIST),
        sa.Column("version", sa.Integer(), nullable=False, server_default="1"),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("created_at", TS, nullable=False, server_default=sa.func.now()),
        sa.Column("updated_at", TS, nullable=False, server_default=sa.func.now()),
    )
    op.create_index("ix_widgets_dashboard_position", "widgets", ["dashboard_id", "position"])


def downgrade() -> None:
    op.drop_index("ix_widgets_dashboard_position", table_name="widgets")
    op.drop_table("widgets")
    op.drop_index("ix_dashboards_data_source", table_name="dashboards")
    op.drop_index("ix_dashboards_created", table_name="dashboards")
    op.drop_table("dashboards")
