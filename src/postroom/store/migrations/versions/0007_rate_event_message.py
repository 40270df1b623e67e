"""Rate events remember the message whose hand-off they wait for (``message_id``), indexed,
because every status write moves its message's event to the hand-off time.

Revision 0003 was once edited to create this column, so a database made by that edition
has it already; one made before does not. Both end up the same.

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    columns = {c["name"] for c in sa.inspect(op.get_bind()).get_columns("rate_events")}
    if "message_id" not in columns:
        with op.batch_alter_table("rate_events") as batch:
            batch.add_column(sa.Column("message_id", sa.String(36), nullable=True))
    op.create_index("ix_rate_events_message", "rate_events", ["message_id"])


def downgrade() -> None:
    op.drop_index("ix_rate_events_message", table_name="rate_events")
    with op.batch_alter_table("rate_events") as batch:
        batch.drop_column("message_id")
