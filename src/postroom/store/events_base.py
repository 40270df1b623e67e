"""What the store keeps after the hand-off, by role: delivery events, the suppression list,
replay nonces and the webhooks owed to the identity system. :func:`events_of` gives the
:class:`EventRecords` of any :class:`~postroom.store.base.Store`."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from postroom.events.model import DeliveryEvent, ProviderEvent

UNMATCHED_KEPT = 24 * 3600.0
"""Seconds an event of an unknown message is kept, waiting for its send to be recorded."""


@dataclass(frozen=True, slots=True)
class Suppression:
    """An address a tenant does not mail until ``expires_at`` (None: until removed)."""

    tenant: str
    address: str
    reason: str
    event: str
    event_ref: str | None
    message_id: str | None
    created_at: datetime
    expires_at: datetime | None

    def to_json(self) -> dict[str, Any]:
        """The API's suppression object."""
        return {
            "tenant": self.tenant,
            "address": self.address,
            "reason": self.reason,
            "event": self.event,
            "event_id": self.event_ref,
            "message_id": self.message_id,
            "created_at": _time(self.created_at),
            "expires_at": _time(self.expires_at),
        }

    def active(self, now: datetime) -> bool:
        """True while the suppression holds: it never expires, or expires after ``now``. The
        one rule; the SQL store asks the same of its rows (``events_sql._unexpired``)."""
        return self.expires_at is None or self.expires_at > now


@dataclass(frozen=True, slots=True)
class WebhookDelivery:
    """One event owed to one of a tenant's webhooks; ``id`` is its ``webhook-id``."""

    id: str
    tenant: str
    endpoint: int
    url: str
    event_type: str
    message_id: str | None
    payload: dict[str, Any]
    status: str  # pending, delivered, failed
    attempts: int
    next_attempt_at: datetime | None
    last_status: int | None
    last_answer: str | None
    created_at: datetime
    updated_at: datetime

    def to_json(self) -> dict[str, Any]:
        """The API's and dashboard's view of a delivery."""
        return {
            "id": self.id,
            "tenant": self.tenant,
            "url": self.url,
            "type": self.event_type,
            "message_id": self.message_id,
            "status": self.status,
            "attempts": self.attempts,
            "next_attempt_at": _time(self.next_attempt_at),
            "last_status": self.last_status,
            "last_answer": self.last_answer,
            "created_at": _time(self.created_at),
        }


@dataclass(frozen=True, slots=True)
class MatchedEvent:
    """A stored event and the message it belongs to (None while unmatched)."""

    event: DeliveryEvent
    recipient: str | None = None
    template_type: str | None = None
    template_data: dict[str, Any] | None = None


Plan = Callable[[list[MatchedEvent]], tuple[list[Suppression], list[WebhookDelivery]]]
"""What new events lead to: the suppressions and the webhook deliveries to write with them."""


def _time(value: datetime | None) -> str | None:
    return value.isoformat().replace("+00:00", "Z") if value is not None else None


class EventRecords(Protocol):
    """The store's verbs for what happens after the hand-off. Every write is atomic."""

    async def nonce_seen(self, nonce: str, *, now: datetime, keep: float) -> bool:
        """Remember ``nonce``; True when it was already remembered (a replay). Nonces older
        than ``keep`` seconds are forgotten."""

    async def record_events(
        self, tenant: str, events: Sequence[ProviderEvent], *, now: datetime
    ) -> list[MatchedEvent]:
        """Store the events not stored before (same tenant, provider and event id), each
        matched to a message of ``tenant`` by the provider's message id of a dispatch, else by
        Message-ID header and recipient; return the new ones."""

    async def take_events(
        self,
        tenant: str,
        events: Sequence[ProviderEvent],
        *,
        now: datetime,
        nonce: str | None,
        keep: float,
        plan: Plan,
    ) -> list[MatchedEvent] | None:
        """In one transaction: None when ``nonce`` was seen (a replay; nothing is stored),
        else :meth:`record_events`, and the suppressions and deliveries ``plan`` makes of the
        new events are written with them."""

    async def match_pending(self, *, now: datetime) -> list[MatchedEvent]:
        """Match stored events of unknown messages whose send is now recorded; forget those
        older than a day. Return the newly matched."""

    async def events_for(self, message_id: str) -> list[DeliveryEvent]:
        """A message's events, oldest first."""

    async def latest_events(self, message_ids: Sequence[str]) -> dict[str, DeliveryEvent]:
        """The latest event of each of these messages that has one."""

    async def event_summary(self, *, since: datetime) -> dict[str, Any]:
        """Counts per event kind since ``since`` and the top bounce diagnoses."""

    async def suppress(self, entry: Suppression) -> None:
        """Add (or refresh) a suppression."""

    async def suppression(self, tenant: str, address: str, *, now: datetime) -> Suppression | None:
        """The unexpired suppression of ``address`` (any case) for ``tenant``, or None."""

    async def list_suppressions(
        self, tenant: str | None, *, search: str | None, now: datetime, limit: int
    ) -> list[Suppression]:
        """Unexpired suppressions, newest first, of a tenant (None: all)."""

    async def remove_suppression(self, tenant: str, address: str) -> bool:
        """Remove one; False when there was none."""

    async def add_deliveries(self, deliveries: Sequence[WebhookDelivery]) -> None:
        """Store webhook deliveries (durably, before any is sent)."""

    async def claim_deliveries(
        self, *, now: datetime, lease: float, limit: int
    ) -> list[WebhookDelivery]:
        """Pending deliveries that are due, leased for ``lease`` seconds."""

    async def finish_delivery(
        self,
        delivery_id: str,
        *,
        status: str,
        next_attempt_at: datetime | None,
        last_status: int | None,
        last_answer: str | None,
        now: datetime,
    ) -> None:
        """Record one attempt of a delivery."""

    async def list_deliveries(
        self, *, tenant: str | None, message_id: str | None, limit: int
    ) -> list[WebhookDelivery]:
        """Deliveries newest first."""
