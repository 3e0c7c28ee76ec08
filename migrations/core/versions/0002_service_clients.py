"""Service clients (OAuth2 client credentials), bound to one tenant and role.

Revision ID: c0002
Revises: c0001
"""

import sqlalchemy as sa
from alembic import op

revision = "c0002"
down_revision = "c0001"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "service_clients",
        sa.Column("id", sa.Uuid(), primary_key=True),
        sa.Column(
            "tenant_id", sa.Uuid(), sa.ForeignKey("uds.tenants.id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("client_id", sa.String(64), nullable=False),
        sa.Column("secret_hash", sa.String(200), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("created_by", sa.String(255), nullable=False),
        sa.Column("created_at", TS, nullable=False, server_default=sa.func.now()),
        sa.Column("revoked_at", TS),
        sa.UniqueConstraint("client_id", name="uq_service_clients_client_id"),
        sa.CheckConstraint("role in ('VIEWER', 'EDITOR', 'ADMIN')", name="ck_service_clients_role"),
        schema="uds",
    )
    op.create_index("ix_service_clients_tenant_id", "service_clients", ["tenant_id"], schema="uds")


def downgrade() -> None:
    op.drop_table("service_clients", schema="uds")
