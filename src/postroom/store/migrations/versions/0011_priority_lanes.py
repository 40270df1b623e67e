"""Priority lanes, folded duplicates and per-recipient limits.

``messages`` gains ``priority`` (urgent, normal or bulk; existing messages get their template
type's default), ``folded_duplicates`` (later identical enqueues answered with this message)
and ``content_hash`` (what finds them), with the indexes that claims by lane, duplicate
lookups and per-recipient counts read. ``rate_events`` gains ``lane``, so that the share of a
window taken by bulk mail can be counted.

Revision ID: 0011
Revises: 0010
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

_NORMAL_TYPES = ("verifiable_address_changed", "authenticator_key_added", "stub")


def upgrade() -> None:
    op.add_column(
        "messages",
        sa.Column("priority", sa.String(8), nullable=False, server_default="urgent"),
    )
    op.add_column(
        "messages",
        sa.Column("folded_duplicates", sa.Integer, nullable=False, server_default="0"),
    )
    op.add_column("messages", sa.Column("content_hash", sa.String(64), nullable=True))
    messages = sa.table("messages", sa.column("priority"), sa.column("template_type"))
    op.execute(
        messages.update()
        .where(messages.c.template_type.in_(_NORMAL_TYPES))
        .values(priority="normal")
    )
    op.create_index(
        "ix_messages_lane_due",
        "messages",
        ["status", "tenant", "priority", "next_attempt_at"],
    )
    op.create_index("ix_messages_content", "messages", ["content_hash", "created_at"])
    op.create_index(
        "ix_messages_recipient_recent",
        "messages",
        ["tenant", sa.text("lower(recipient)"), "created_at"],
    )
    op.add_column("rate_events", sa.Column("lane", sa.String(8), nullable=True))
    op.create_index("ix_rate_events_lane", "rate_events", ["tenant", "lane", "taken_at"])


def downgrade() -> None:
    op.drop_index("ix_rate_events_lane", table_name="rate_events")
    with op.batch_alter_table("rate_events") as batch:
        batch.drop_column("lane")
    for name in ("ix_messages_recipient_recent", "ix_messages_content", "ix_messages_lane_due"):
        op.drop_index(name, table_name="messages")
    with op.batch_alter_table("messages") as batch:
        for column in ("content_hash", "folded_duplicates", "priority"):
            batch.drop_column(column)
