"""Indexes that keep filtered, newest-first message lists fast with millions of rows.

Each one starts with a filter column and ends with the keyset order ``(created_at, id)``, so a
page of messages of one status, tenant (and status) or template type is read in index order
instead of sorting every matching row.

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

INDEXES = {
    "ix_messages_status_created": ["status", "created_at", "id"],
    "ix_messages_tenant_created": ["tenant", "created_at", "id"],
    "ix_messages_tenant_status_created": ["tenant", "status", "created_at", "id"],
    "ix_messages_template_created": ["template_type", "created_at", "id"],
}


def upgrade() -> None:
    for name, columns in INDEXES.items():
        op.create_index(name, "messages", columns)


def downgrade() -> None:
    for name in INDEXES:
        op.drop_index(name, table_name="messages")
