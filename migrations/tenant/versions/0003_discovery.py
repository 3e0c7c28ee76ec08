"""Data sources, discovery runs and the catalog each run stored.

Revision ID: t0003
Revises: t0002
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "t0003"
down_revision = "t0002"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)
EMPTY_LIST = sa.text("'[]'::jsonb")
EMPTY_OBJECT = sa.text("'{}'::jsonb")


def _run_fk(table: str) -> sa.Column:
    return sa.Column(
        "run_id",
        sa.Uuid(),
        sa.ForeignKey("discovery_runs.id", ondelete="CASCADE", name=f"fk_{table}_run"),
        primary_key=True,
    )


def upgrade() -> None:
    op.create_table(
        "data_sources",
        sa.Column("id", sa.Uuid(), primary_key=True),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("host", sa.String(255), nullable=False),
        sa.Column("port", sa.Integer(), nullable=False),
        sa.Column("database", sa.String(63), nullable=False),
        sa.Column("username", sa.String(63), nullable=False),
        sa.Column("sslmode", sa.String(16), nullable=False),
        sa.Column("schemas", JSONB(), nullable=False, server_default=EMPTY_LIST),
        sa.Column("secret", sa.Text(), nullable=False),
        sa.Column("secret_kid", sa.String(16), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False, server_default="1"),
        sa.Column("created_by", sa.String(255), nullable=False),
        sa.Column("created_at", TS, nullable=False, server_default=sa.func.now()),
        sa.Column("updated_at", TS, nullable=False, server_default=sa.func.now()),
        sa.UniqueConstraint("name", name="uq_data_sources_name"),
    )
    op.create_table(
        "discovery_runs",
        sa.Column("id", sa.Uuid(), primary_key=True),
        sa.Column(
            "data_source_id",
            sa.Uuid(),
            sa.ForeignKey("data_sources.id", ondelete="CASCADE", name="fk_discovery_runs_data_source"),
            nullable=False,
        ),
        sa.Column("job_id", sa.Uuid()),
        sa.Column("status", sa.String(16), nullable=False, server_default="RUNNING"),
        sa.Column("started_at", TS, nullable=False, server_default=sa.func.now()),
        sa.Column("finished_at", TS),
        sa.Column("rows_read", sa.BigInteger(), nullable=False, server_default="0"),
        sa.Column("row_budget", sa.BigInteger(), nullable=False),
        sa.Column("server_version", sa.String(200)),
        sa.Column("database", sa.String(63)),
        sa.Column("warnings", JSONB(), nullable=False, server_default=EMPTY_LIST),
        sa.Column("error", sa.Text()),
        sa.Column("created_by", sa.String(255), nullable=False),
        sa.CheckConstraint(
            "status in ('RUNNING', 'SUCCEEDED', 'FAILED', 'CANCELLED')", name="ck_discovery_runs_status"
        ),
    )
    op.create_index("ix_discovery_runs_source_started", "discovery_runs", ["data_source_id", "started_at"])
    op.create_table(
        "catalog_tables",
        _run_fk("catalog_tables"),
        sa.Column("schema_name", sa.String(63), primary_key=True),
        sa.Column("table_name", sa.String(63), primary_key=True),
        sa.Column("kind", sa.String(24), nullable=False),
        sa.Column("row_estimate", sa.Float()),
        sa.Column("size_bytes", sa.BigInteger()),
        sa.Column("primary_key", JSONB(), nullable=False, server_default=EMPTY_LIST),
        sa.Column("profile_method", sa.String(16)),
        sa.Column("profiled", sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.Column("quality_score", sa.Float()),
        sa.Column("detail", JSONB(), nullable=False, server_default=EMPTY_OBJECT),
    )
    op.create_table(
        "catalog_columns",
        _run_fk("catalog_columns"),
        sa.Column("schema_name", sa.String(63), primary_key=True),
        sa.Column("table_name", sa.String(63), primary_key=True),
        sa.Column("column_name", sa.String(63), primary_key=True),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("data_type", sa.Text(), nullable=False),
        sa.Column("nullable", sa.Boolean(), nullable=False),
        sa.Column("semantic_type", sa.String(40)),
        sa.Column("pii", sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.Column("detail", JSONB(), nullable=False, server_default=EMPTY_OBJECT),
    )
    op.create_table(
        "catalog_relationships",
        _run_fk("catalog_relationships"),
        sa.Column("key", sa.Text(), primary_key=True),
        sa.Column("from_schema", sa.String(63), nullable=False),
        sa.Column("from_table", sa.String(63), nullable=False),
        sa.Column("to_schema", sa.String(63), nullable=False),
        sa.Column("to_table", sa.String(63), nullable=False),
        sa.Column("declared", sa.Boolean(), nullable=False),
        sa.Column("confidence", sa.Float(), nullable=False),
        sa.Column("detail", JSONB(), nullable=False, server_default=EMPTY_OBJECT),
    )


def downgrade() -> None:
    op.drop_table("catalog_relationships")
    op.drop_table("catalog_columns")
    op.drop_table("catalog_tables")
    op.drop_index("ix_discovery_runs_source_started", table_name="discovery_runs")
    op.drop_table("discovery_runs")
    op.drop_table("data_sources")
