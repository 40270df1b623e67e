"""Messages and dispatches.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from postroom.store.schema import UtcDateTime

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "messages",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("tenant", sa.String(128), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("type", sa.String(16), nullable=False),
        sa.Column("recipient", sa.String(320), nullable=False),
        sa.Column("template_type", sa.String(64), nullable=False),
        sa.Column("template_data", sa.JSON, nullable=False),
        sa.Column("subject", sa.Text, nullable=False),
        sa.Column("body", sa.Text, nullable=False),
        sa.Column("html_body", sa.Text, nullable=True),
        sa.Column("mime", sa.LargeBinary, nullable=False),
        sa.Column("send_count", sa.Integer, nullable=False),
        sa.Column("max_attempts", sa.Integer, nullable=False),
        sa.Column("idempotency_key", sa.String(255), nullable=True),
        sa.Column("request_hash", sa.String(64), nullable=True),
        sa.Column("created_at", UtcDateTime, nullable=False),
        sa.Column("updated_at", UtcDateTime, nullable=False),
        sa.Column("next_attempt_at", UtcDateTime, nullable=True),
        sa.Column("expires_at", UtcDateTime, nullable=True),
        sa.Column("waiting_for", sa.String(16), nullable=True),
        sa.Column("last_error", sa.JSON, nullable=True),
        sa.Column("lease_owner", sa.String(64), nullable=True),
        sa.Column("lease_until", UtcDateTime, nullable=True),
        sa.UniqueConstraint("tenant", "idempotency_key", name="uq_messages_tenant_idempotency_key"),
    )
    op.create_index("ix_messages_due", "messages", ["status", "next_attempt_at"])
    op.create_index("ix_messages_lease", "messages", ["status", "lease_until"])
    op.create_index("ix_messages_created", "messages", ["created_at", "id"])
    op.create_index("ix_messages_recipient", "messages", ["recipient"])
    op.create_table(
        "dispatches",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column(
            "message_id",
            sa.String(36),
            sa.ForeignKey("messages.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("error", sa.JSON, nullable=True),
        sa.Column("worker", sa.String(64), nullable=True),
        sa.Column("created_at", UtcDateTime, nullable=False),
        sa.Column("updated_at", UtcDateTime, nullable=False),
    )
    op.create_index("ix_dispatches_message", "dispatches", ["message_id", "created_at"])


def downgrade() -> None:
    op.drop_table("dispatches")
    op.drop_table("messages")
