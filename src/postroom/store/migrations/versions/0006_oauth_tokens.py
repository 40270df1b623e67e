"""OAuth2 refresh tokens of device-code sign-ins (``postroom oauth login``).

One row per tenant, the token encrypted like every stored credential. The worker replaces it
when the provider rotates it; file tenants, whose settings Postroom cannot write, keep theirs
only here.

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from postroom.store.schema import UtcDateTime

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "oauth_tokens",
        sa.Column("tenant", sa.String(128), primary_key=True),
        sa.Column("refresh_token", sa.Text, nullable=False),
        sa.Column("origin", sa.String(64), nullable=True),
        sa.Column("updated_at", UtcDateTime, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("oauth_tokens")
