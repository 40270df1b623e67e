"""Remember which dead worker a message was taken over from, and say so on the attempt.

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("messages") as batch:
        batch.add_column(sa.Column("reclaimed_from", sa.String(64), nullable=True))
    with op.batch_alter_table("dispatches") as batch:
        batch.add_column(sa.Column("reclaimed_from", sa.String(64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("dispatches") as batch:
        batch.drop_column("reclaimed_from")
    with op.batch_alter_table("messages") as batch:
        batch.drop_column("reclaimed_from")
