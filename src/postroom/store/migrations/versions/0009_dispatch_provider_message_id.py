"""STAND-IN, to be dropped when the hand-off evidence (its own migration 0009) is merged:
the provider's message id of a successful dispatch, which delivery events are matched by.

Revision ID: 0009
Revises: 0008
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("dispatches", sa.Column("provider_message_id", sa.String(255), nullable=True))
    op.create_index("ix_dispatches_provider_message_id", "dispatches", ["provider_message_id"])


def downgrade() -> None:
    op.drop_index("ix_dispatches_provider_message_id", table_name="dispatches")
    op.drop_column("dispatches", "provider_message_id")
