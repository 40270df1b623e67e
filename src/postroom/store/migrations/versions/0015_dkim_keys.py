"""DKIM keys made by Postroom (``postroom dkim generate``): one row per tenant and selector,
the private key encrypted, at most one ``active`` per tenant.

Revision ID: 0015
Revises: 0014
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from postroom.store.schema import UtcDateTime

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "dkim_keys",
        sa.Column("tenant", sa.String(128), primary_key=True),
        sa.Column("selector", sa.String(63), primary_key=True),
        sa.Column("domain", sa.String(253), nullable=False),
        sa.Column("algorithm", sa.String(16), nullable=False),
        sa.Column("private_key", sa.Text, nullable=False),
        sa.Column("public_key", sa.Text, nullable=False),
        sa.Column("state", sa.String(8), nullable=False),
        sa.Column("created_at", UtcDateTime, nullable=False),
        sa.Column("activated_at", UtcDateTime, nullable=True),
    )
    op.create_index("ix_dkim_keys_tenant_state", "dkim_keys", ["tenant", "state"])


def downgrade() -> None:
    op.drop_index("ix_dkim_keys_tenant_state", table_name="dkim_keys")
    op.drop_table("dkim_keys")
