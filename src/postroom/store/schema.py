"""The tables, as SQLAlchemy Core objects. Migrations in ``migrations/`` create them."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator


class UtcDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every backend (SQLite stores them naive)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> Any:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the store")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        assert isinstance(value, datetime)
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


metadata = MetaData()

messages = Table(
    "messages",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("tenant", String(128), nullable=False),
    Column("status", String(16), nullable=False),
    Column("type", String(16), nullable=False, default="email"),
    Column("recipient", String(320), nullable=False),
    Column("template_type", String(64), nullable=False),
    Column("template_data", JSON, nullable=False),
    Column("subject", Text, nullable=False),
    Column("body", Text, nullable=False),
    Column("html_body", Text, nullable=True),
    Column("mime", LargeBinary, nullable=False),
    Column("send_count", Integer, nullable=False, default=0),
    Column("max_attempts", Integer, nullable=False),
    Column("idempotency_key", String(255), nullable=True),
    Column("request_hash", String(64), nullable=True),
    Column("created_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
    Column("next_attempt_at", UtcDateTime, nullable=True),
    Column("expires_at", UtcDateTime, nullable=True),
    Column("waiting_for", String(16), nullable=True),
    Column("last_error", JSON, nullable=True),
    Column("lease_owner", String(64), nullable=True),
    Column("lease_until", UtcDateTime, nullable=True),
    Column("reclaimed_from", String(64), nullable=True),
    # Migration 0011: the lane, duplicates folded into this message, and the content hash
    # that finds them.
    Column("priority", String(8), nullable=False, server_default="urgent"),
    Column("folded_duplicates", Integer, nullable=False, server_default="0"),
    Column("content_hash", String(64), nullable=True),
    Column("locale", String(35), nullable=True),
    Column("mime_ref", String(64), nullable=True),  # migration 0010: see relay_bodies
    UniqueConstraint("tenant", "idempotency_key", name="uq_messages_tenant_idempotency_key"),
    Index("ix_messages_due", "status", "next_attempt_at"),
    Index("ix_messages_lease", "status", "lease_until"),
    Index("ix_messages_created", "created_at", "id"),
    Index("ix_messages_recipient", "recipient"),
    # Filtered lists, newest first (migration 0005): filter columns, then the keyset order.
    Index("ix_messages_status_created", "status", "created_at", "id"),
    Index("ix_messages_tenant_created", "tenant", "created_at", "id"),
    Index("ix_messages_tenant_status_created", "tenant", "status", "created_at", "id"),
    Index("ix_messages_template_created", "template_type", "created_at", "id"),
    Index("ix_messages_mime_ref", "mime_ref"),
    # Recipient search in any case (migration 0009).
    Index("ix_messages_recipient_lower", func.lower(text("recipient"))),
    # Claims read one range per (tenant, lane), due order (migration 0011).
    Index("ix_messages_lane_due", "status", "tenant", "priority", "next_attempt_at"),
    Index("ix_messages_content", "content_hash", "created_at"),
)
# Per-recipient limits count a recipient's recent messages, case-insensitively.
Index(
    "ix_messages_recipient_recent",
    messages.c.tenant,
    func.lower(messages.c.recipient),
    messages.c.created_at,
)

dispatches = Table(
    "dispatches",
    metadata,
    Column("id", String(36), primary_key=True),
    Column(
        "message_id",
        String(36),
        ForeignKey("messages.id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("status", String(16), nullable=False),
    Column("error", JSON, nullable=True),
    Column("worker", String(64), nullable=True),
    Column("reclaimed_from", String(64), nullable=True),
    Column("created_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
    # The evidence of a hand-off (migration 0009): where it went, the provider's answer and
    # its id for the message, by which provider events and searches find the message.
    Column("transport", String(16), nullable=True),
    Column("host", String(320), nullable=True),
    Column("reply", Text, nullable=True),
    Column("provider_message_id", String(255), nullable=True),
    Index("ix_dispatches_message", "message_id", "created_at"),
    Index("ix_dispatches_provider_message_id", "provider_message_id"),
)

# Tenants saved through the admin API; credentials inside ``courier`` are encrypted.
tenants = Table(
    "tenants",
    metadata,
    Column("id", String(128), primary_key=True),
    Column("courier", JSON, nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
)

# The refresh token of a tenant's OAuth2 device-code sign-in (`postroom oauth login`), encrypted,
# rotated by the worker; for file tenants too, whose settings cannot be written (migration 0006).
oauth_tokens = Table(
    "oauth_tokens",
    metadata,
    Column("tenant", String(128), primary_key=True),
    Column("refresh_token", Text, nullable=False),
    Column("origin", String(64), nullable=True),
    Column("updated_at", UtcDateTime, nullable=False),
)

# One row per hand-off of a rate-limited tenant; rows older than the longest window go.
rate_events = Table(
    "rate_events",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("tenant", String(128), nullable=False),
    Column("taken_at", UtcDateTime, nullable=False),
    # Until the hand-off, the time the slot was taken; then the time of the hand-off, so a
    # slow send still counts in the window the provider sees.
    Column("message_id", String(36), nullable=True),
    Column("lane", String(8), nullable=True),  # the message's priority (migration 0011)
    Index("ix_rate_events_tenant_time", "tenant", "taken_at"),
    Index("ix_rate_events_lane", "tenant", "lane", "taken_at"),
    Index("ix_rate_events_message", "message_id"),
)

# Signed-in dashboard sessions (migration 0008): a session counts only while its row is here, so
# a sign-out on one `serve` process ends it on every process sharing the database. ``id`` is a
# keyed hash of the cookie's session id, never the id itself.
sessions = Table(
    "sessions",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("created_at", UtcDateTime, nullable=False),
    Column("expires_at", UtcDateTime, nullable=False),
    Index("ix_sessions_expires", "expires_at"),
)

# What providers reported after the hand-off (migration 0012). ``message_id`` is null while
# no message matches (kept a day, matched when the send is recorded later); the same
# (tenant, provider, event_id) is stored once.
delivery_events = Table(
    "delivery_events",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("tenant", String(128), nullable=False),
    Column("message_id", String(36), ForeignKey("messages.id", ondelete="CASCADE"), nullable=True),
    Column("provider", String(16), nullable=False),
    Column("event_id", String(255), nullable=False),
    Column("event", String(16), nullable=False),
    Column("recipient", String(320), nullable=False),
    Column("provider_message_id", String(255), nullable=True),
    Column("header_message_id", String(255), nullable=True),
    Column("hard", Boolean, nullable=True),
    Column("reply", Text, nullable=True),
    Column("diagnosis", String(64), nullable=True),
    Column("occurred_at", UtcDateTime, nullable=False),
    Column("received_at", UtcDateTime, nullable=False),
    UniqueConstraint("tenant", "provider", "event_id", name="uq_delivery_events_event"),
    Index("ix_delivery_events_message", "message_id", "occurred_at"),
    Index("ix_delivery_events_unmatched", "tenant", "provider_message_id"),
    Index("ix_delivery_events_received", "received_at"),
)

# Addresses a tenant no longer mails (hard bounce or complaint), until ``expires_at``.
suppressions = Table(
    "suppressions",
    metadata,
    Column("tenant", String(128), primary_key=True),
    Column("address", String(320), primary_key=True),
    Column("reason", Text, nullable=False),
    Column("event", String(16), nullable=False),
    Column("event_ref", String(36), nullable=True),
    Column("message_id", String(36), nullable=True),
    Column("created_at", UtcDateTime, nullable=False),
    Column("expires_at", UtcDateTime, nullable=True),
)

# Nonces of signed provider requests (a Mailgun token, a webhook-id...), to refuse replays.
webhook_nonces = Table(
    "webhook_nonces",
    metadata,
    Column("nonce", String(300), primary_key=True),
    Column("seen_at", UtcDateTime, nullable=False),
    Index("ix_webhook_nonces_seen", "seen_at"),
)

# Events for the identity system's webhooks: stored before they are sent, retried for a day.
webhook_deliveries = Table(
    "webhook_deliveries",
    metadata,
    Column("id", String(40), primary_key=True),  # the webhook-id header
    Column("tenant", String(128), nullable=False),
    Column("endpoint", Integer, nullable=False),  # index in courier.webhooks
    Column("url", Text, nullable=False),
    Column("event_type", String(32), nullable=False),
    Column("message_id", String(36), nullable=True),
    Column("payload", JSON, nullable=False),
    Column("status", String(16), nullable=False),  # pending, delivered, failed
    Column("attempts", Integer, nullable=False, default=0),
    Column("next_attempt_at", UtcDateTime, nullable=True),
    Column("last_status", Integer, nullable=True),
    Column("last_answer", Text, nullable=True),
    Column("created_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
    Index("ix_webhook_deliveries_due", "status", "next_attempt_at"),
    Index("ix_webhook_deliveries_created", "tenant", "created_at"),
)

# DKIM keys made by Postroom (migration 0015): the private key encrypted (enc:v1:), at most one
# active key per tenant.
dkim_keys = Table(
    "dkim_keys",
    metadata,
    Column("tenant", String(128), primary_key=True),
    Column("selector", String(63), primary_key=True),
    Column("domain", String(253), nullable=False),
    Column("algorithm", String(16), nullable=False),
    Column("private_key", Text, nullable=False),  # enc:v1: PEM
    Column("public_key", Text, nullable=False),  # the p= value
    Column("state", String(8), nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("activated_at", UtcDateTime, nullable=True),
    Index("ix_dkim_keys_tenant_state", "tenant", "state"),
)
