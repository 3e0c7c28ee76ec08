"""The domain event outbox: events written with the change, relayed to the Redis stream.

One table in the shared schema for every tenant's events and the platform's, so a
tenant's pending events (its `tenant.deleted` included) outlive its dropped schema, and
one relay query serves them all.

Revision ID: c0003
Revises: c0002
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "c0003"
down_revision = "c0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "event_outbox",
        sa.Column("seq", sa.BigInteger(), sa.Identity(), primary_key=True),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("type", sa.String(80), nullable=False),
        sa.Column("tenant", sa.String(40)),
        sa.Column("subject", sa.String(300)),
        sa.Column("time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("data", JSONB(), nullable=False),
        sa.UniqueConstraint("id", name="uq_event_outbox_id"),
        schema="uds",
    )


def downgrade() -> None:
    op.drop_table("event_outbox", schema="uds")
