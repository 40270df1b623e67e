"""The SMTP listener: logins that API tenants manage, and the log of refused submissions.

``smtp_logins``: one row per username (unique across every tenant), the password only as a
keyed SHA-256 or scrypt hash. ``listener_refusals``: the newest refusals (client address,
reply, reason), so that ``postroom listener log`` and the dashboard show why a client failed.
``relay_bodies``: the MIME of mail for several recipients, kept once; each recipient's message
names it in ``messages.mime_ref``.

Revision ID: 0010
Revises: 0009
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from postroom.store.schema import UtcDateTime

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("messages", sa.Column("mime_ref", sa.String(64), nullable=True))
    op.create_index("ix_messages_mime_ref", "messages", ["mime_ref"])
    op.create_table(
        "relay_bodies",
        sa.Column("digest", sa.String(64), primary_key=True),
        sa.Column("mime", sa.LargeBinary, nullable=False),
    )
    op.create_table(
        "smtp_logins",
        sa.Column("username", sa.String(128), primary_key=True),
        sa.Column("tenant", sa.String(128), nullable=False),
        sa.Column("password_hash", sa.String(255), nullable=False),
        sa.Column("priority", sa.String(16), nullable=False),
        sa.Column("created_at", UtcDateTime, nullable=False),
    )
    op.create_index("ix_smtp_logins_tenant", "smtp_logins", ["tenant", "username"])
    op.create_table(
        "listener_refusals",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("at", UtcDateTime, nullable=False),
        sa.Column("client", sa.String(64), nullable=False),
        sa.Column("reply", sa.String(512), nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("username", sa.String(128), nullable=True),
        sa.Column("tenant", sa.String(128), nullable=True),
    )


def downgrade() -> None:
    op.drop_table("listener_refusals")
    op.drop_index("ix_smtp_logins_tenant", table_name="smtp_logins")
    op.drop_table("smtp_logins")
    op.drop_table("relay_bodies")
    op.drop_index("ix_messages_mime_ref", table_name="messages")
    op.drop_column("messages", "mime_ref")
