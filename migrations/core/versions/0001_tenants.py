"""Tenants, memberships and the platform audit log.

Revision ID: c0001
Revises:
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "c0001"
down_revision = None
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "tenants",
        sa.Column("id", sa.Uuid(), primary_key=True),
        sa.Column("slug", sa.String(40), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("status", sa.String(16), nullable=False, server_default="active"),
        sa.Column("plan", sa.String(40), nullable=False, server_default="free"),
        sa.Column("limits", JSONB(), nullable=False, server_default=sa.text("'{}'::jsonb")),
        sa.Column("created_at", TS, nullable=False, server_default=sa.func.now()),
        sa.Column("updated_at", TS, nullable=False, server_default=sa.func.now()),
        sa.UniqueConstraint("slug", name="uq_tenants_slug"),
        sa.CheckConstraint("status in ('active', 'suspended')", name="ck_tenants_status"),
        schema="uds",
    )
    op.create_table(
        "memberships",
        sa.Column(
            "tenant_id",
            sa.Uuid(),
            sa.ForeignKey("uds.tenants.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("subject", sa.String(255), primary_key=True),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("created_at", TS, nullable=False, server_default=sa.func.now()),
        sa.CheckConstraint("role in ('VIEWER', 'EDITOR', 'ADMIN')", name="ck_memberships_role"),
        schema="uds",
    )
    op.create_index("ix_memberships_subject", "memberships", ["subject"], schema="uds")
    op.create_table(
        "platform_audit",
        sa.Column("id", sa.BigInteger(), sa.Identity(), primary_key=True),
        sa.Column("at", TS, nullable=False, server_default=sa.func.now()),
        sa.Column("actor", sa.String(255), nullable=False),
        sa.Column("action", sa.String(80), nullable=False),
        sa.Column("target", sa.Text()),
        sa.Column("allowed", sa.Boolean(), nullable=False, server_default=sa.true()),
        sa.Column("detail", JSONB(), nullable=False, server_default=sa.text("'{}'::jsonb")),
        schema="uds",
    )


def downgrade() -> None:
    op.drop_table("platform_audit", schema="uds")
    op.drop_table("memberships", schema="uds")
    op.drop_table("tenants", schema="uds")
