"""Hand-offs per tenant, for rate limits shared by every worker.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from postroom.store.schema import UtcDateTime

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "rate_events",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("tenant", sa.String(128), nullable=False),
        sa.Column("taken_at", UtcDateTime, nullable=False),
    )
    op.create_index("ix_rate_events_tenant_time", "rate_events", ["tenant", "taken_at"])


def downgrade() -> None:
    op.drop_table("rate_events")
