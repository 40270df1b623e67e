"""The evidence of every hand-off on its dispatch: the transport (``smtp``, ``http``,
``outbox``), the host it went to, the provider's final reply and the provider's id for the
message, indexed so that provider events and searches find the message by it; and an index
on the lower-cased recipient, for recipient searches in any case.

Existing dispatches keep NULL in the new columns (nothing was recorded then).

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
    with op.batch_alter_table("dispatches") as batch:
        batch.add_column(sa.Column("transport", sa.String(16), nullable=True))
        batch.add_column(sa.Column("host", sa.String(320), nullable=True))
        batch.add_column(sa.Column("reply", sa.Text, nullable=True))
        batch.add_column(sa.Column("provider_message_id", sa.String(255), nullable=True))
    op.create_index("ix_dispatches_provider_message_id", "dispatches", ["provider_message_id"])
    op.create_index("ix_messages_recipient_lower", "messages", [sa.text("lower(recipient)")])


def downgrade() -> None:
    op.drop_index("ix_messages_recipient_lower", table_name="messages")
    op.drop_index("ix_dispatches_provider_message_id", table_name="dispatches")
    with op.batch_alter_table("dispatches") as batch:
        for name in ("provider_message_id", "reply", "host", "transport"):
            batch.drop_column(name)
