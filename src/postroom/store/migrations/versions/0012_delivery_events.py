"""Delivery events from the providers, the suppression list, replay nonces of signed event
webhooks and the webhooks sent back to the identity system.

Revision ID: 0012
Revises: 0011 (priority lanes)
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from postroom.store.schema import UtcDateTime

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "delivery_events",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("tenant", sa.String(128), nullable=False),
        sa.Column(
            "message_id",
            sa.String(36),
            sa.ForeignKey("messages.id", ondelete="CASCADE"),
            nullable=True,
        ),
        sa.Column("provider", sa.String(16), nullable=False),
        sa.Column("event_id", sa.String(255), nullable=False),
        sa.Column("event", sa.String(16), nullable=False),
        sa.Column("recipient", sa.String(320), nullable=False),
        sa.Column("provider_message_id", sa.String(255), nullable=True),
        sa.Column("header_message_id", sa.String(255), nullable=True),
        sa.Column("hard", sa.Boolean, nullable=True),
        sa.Column("reply", sa.Text, nullable=True),
        sa.Column("diagnosis", sa.String(64), nullable=True),
        sa.Column("occurred_at", UtcDateTime, nullable=False),
        sa.Column("received_at", UtcDateTime, nullable=False),
        sa.UniqueConstraint("tenant", "provider", "event_id", name="uq_delivery_events_event"),
    )
    op.create_index("ix_delivery_events_message", "delivery_events", ["message_id", "occurred_at"])
    op.create_index(
        "ix_delivery_events_unmatched", "delivery_events", ["tenant", "provider_message_id"]
    )
    op.create_index("ix_delivery_events_received", "delivery_events", ["received_at"])
    op.create_table(
        "suppressions",
        sa.Column("tenant", sa.String(128), primary_key=True),
        sa.Column("address", sa.String(320), primary_key=True),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("event", sa.String(16), nullable=False),
        sa.Column("event_ref", sa.String(36), nullable=True),
        sa.Column("message_id", sa.String(36), nullable=True),
        sa.Column("created_at", UtcDateTime, nullable=False),
        sa.Column("expires_at", UtcDateTime, nullable=True),
    )
    op.create_table(
        "webhook_nonces",
        sa.Column("nonce", sa.String(300), primary_key=True),
        sa.Column("seen_at", UtcDateTime, nullable=False),
    )
    op.create_index("ix_webhook_nonces_seen", "webhook_nonces", ["seen_at"])
    op.create_table(
        "webhook_deliveries",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("tenant", sa.String(128), nullable=False),
        sa.Column("endpoint", sa.Integer, nullable=False),
        sa.Column("url", sa.Text, nullable=False),
        sa.Column("event_type", sa.String(32), nullable=False),
        sa.Column("message_id", sa.String(36), nullable=True),
        sa.Column("payload", sa.JSON, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("next_attempt_at", UtcDateTime, nullable=True),
        sa.Column("last_status", sa.Integer, nullable=True),
        sa.Column("last_answer", sa.Text, nullable=True),
        sa.Column("created_at", UtcDateTime, nullable=False),
        sa.Column("updated_at", UtcDateTime, nullable=False),
    )
    op.create_index(
        "ix_webhook_deliveries_due", "webhook_deliveries", ["status", "next_attempt_at"]
    )
    op.create_index("ix_webhook_deliveries_created", "webhook_deliveries", ["tenant", "created_at"])


def downgrade() -> None:
    op.drop_table("webhook_deliveries")
    op.drop_table("webhook_nonces")
    op.drop_table("suppressions")
    op.drop_table("delivery_events")
