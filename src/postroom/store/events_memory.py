"""The in-memory :class:`~postroom.store.events_base.EventRecords`, beside a
:class:`~postroom.store.memory.MemoryStore` (same contract as the SQL one, nothing kept)."""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

from postroom.events.model import DeliveryEvent, EventKind, ProviderEvent, header_message_id
from postroom.store.base import new_id
from postroom.store.events_base import (
    UNMATCHED_KEPT,
    MatchedEvent,
    Plan,
    Suppression,
    WebhookDelivery,
)
from postroom.store.memory import MemoryStore


class MemoryEventRecords:
    """Events, suppressions, nonces and deliveries in dicts; every method is atomic on the
    event loop (none awaits anything slow)."""

    def __init__(self, store: MemoryStore) -> None:
        self._store = store
        self._events: dict[str, DeliveryEvent] = {}
        self._keys: set[tuple[str, str, str]] = set()
        self._suppressions: dict[tuple[str, str], Suppression] = {}
        self._nonces: dict[str, datetime] = {}
        self._deliveries: dict[str, WebhookDelivery] = {}

    async def nonce_seen(self, nonce: str, *, now: datetime, keep: float) -> bool:
        """Remember ``nonce``; True when it was already remembered."""
        cutoff = now - timedelta(seconds=keep)
        self._nonces = {n: t for n, t in self._nonces.items() if t >= cutoff}
        if nonce in self._nonces:
            return True
        self._nonces[nonce] = now
        return False

    def _match(self, tenant: str, event: DeliveryEvent) -> MatchedEvent:
        ids = {i for i in (event.provider_message_id, event.header_message_id) if i}
        found = None
        for message in self._store._messages.values():
            if message.tenant != tenant:
                continue
            dispatched = self._store._dispatches.get(message.id, [])
            if ids and any(d.provider_message_id in ids for d in dispatched):
                found = message
                break
            if (
                event.header_message_id
                and message.recipient.lower() == event.recipient
                and header_message_id(message.mime) == event.header_message_id
            ):
                found = message
        if found is None:
            return MatchedEvent(event)
        return MatchedEvent(
            replace(event, message_id=found.id),
            found.recipient,
            found.template_type.value,
            copy.deepcopy(found.template_data),
        )

    async def record_events(
        self, tenant: str, events: Sequence[ProviderEvent], *, now: datetime
    ) -> list[MatchedEvent]:
        """Store new events, matched where a message is found."""
        out: list[MatchedEvent] = []
        for event in events:
            key = (tenant, event.provider, event.event_id)
            if key in self._keys:
                continue
            self._keys.add(key)
            stored = DeliveryEvent(
                id=new_id(),
                tenant=tenant,
                message_id=None,
                received_at=now,
                provider=event.provider,
                event_id=event.event_id,
                kind=event.kind,
                recipient=event.recipient,
                occurred_at=event.occurred_at,
                provider_message_id=event.provider_message_id,
                header_message_id=event.header_message_id,
                hard=event.hard,
                reply=event.reply,
                diagnosis=event.diagnosis,
            )
            matched = self._match(tenant, stored)
            self._events[stored.id] = matched.event
            out.append(matched)
        return out

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
        """A replay (None), or the events stored with what ``plan`` makes of them."""
        if nonce is not None and await self.nonce_seen(nonce, now=now, keep=keep):
            return None
        matched = await self.record_events(tenant, events, now=now)
        entries, deliveries = plan(matched)
        for entry in entries:
            await self.suppress(entry)
        await self.add_deliveries(deliveries)
        return matched

    async def match_pending(self, *, now: datetime) -> list[MatchedEvent]:
        """Match what can be matched now; forget unmatched events older than a day."""
        out: list[MatchedEvent] = []
        for event in list(self._events.values()):
            if event.message_id is not None:
                continue
            if event.received_at < now - timedelta(seconds=UNMATCHED_KEPT):
                del self._events[event.id]
                continue
            matched = self._match(event.tenant, event)
            if matched.event.message_id is not None:
                self._events[event.id] = matched.event
                out.append(matched)
        return out

    async def events_for(self, message_id: str) -> list[DeliveryEvent]:
        """A message's events, oldest first."""
        found = [e for e in self._events.values() if e.message_id == message_id]
        return sorted(found, key=lambda e: (e.occurred_at, e.received_at))

    async def latest_events(self, message_ids: Sequence[str]) -> dict[str, DeliveryEvent]:
        """The latest event of each message that has one."""
        out: dict[str, DeliveryEvent] = {}
        for message_id in message_ids:
            events = await self.events_for(message_id)
            if events:
                out[message_id] = events[-1]
        return out

    async def event_summary(self, *, since: datetime) -> dict[str, Any]:
        """Counts per kind and the top bounce diagnoses since ``since``."""
        counts: dict[str, int] = {}
        reasons: dict[str, int] = {}
        for event in self._events.values():
            if event.received_at < since:
                continue
            counts[event.kind.value] = counts.get(event.kind.value, 0) + 1
            if event.kind is EventKind.BOUNCED:
                code = event.diagnosis or "unknown"
                reasons[code] = reasons.get(code, 0) + 1
        top = sorted(reasons.items(), key=lambda kv: -kv[1])[:5]
        return {
            "counts": counts,
            "bounce_reasons": [{"diagnosis": k, "count": n} for k, n in top],
        }

    async def suppress(self, entry: Suppression) -> None:
        """Add or refresh a suppression."""
        entry = replace(entry, address=entry.address.lower())
        self._suppressions[(entry.tenant, entry.address)] = entry

    async def suppression(self, tenant: str, address: str, *, now: datetime) -> Suppression | None:
        """The unexpired suppression of ``address`` for ``tenant``."""
        found = self._suppressions.get((tenant, address.strip().lower()))
        return found if found is not None and found.active(now) else None

    async def list_suppressions(
        self, tenant: str | None, *, search: str | None, now: datetime, limit: int
    ) -> list[Suppression]:
        """Unexpired suppressions, newest first."""
        found = [
            s
            for s in self._suppressions.values()
            if (tenant is None or s.tenant == tenant)
            and (not search or search.lower() in s.address)
            and s.active(now)
        ]
        return sorted(found, key=lambda s: s.created_at, reverse=True)[:limit]

    async def remove_suppression(self, tenant: str, address: str) -> bool:
        """Remove one suppression."""
        return self._suppressions.pop((tenant, address.strip().lower()), None) is not None

    async def add_deliveries(self, deliveries: Sequence[WebhookDelivery]) -> None:
        """Store deliveries."""
        for delivery in deliveries:
            self._deliveries[delivery.id] = delivery

    async def claim_deliveries(
        self, *, now: datetime, lease: float, limit: int
    ) -> list[WebhookDelivery]:
        """Due pending deliveries, leased."""
        due = sorted(
            (
                d
                for d in self._deliveries.values()
                if d.status == "pending" and d.next_attempt_at and d.next_attempt_at <= now
            ),
            key=lambda d: d.next_attempt_at or now,
        )[:limit]
        for d in due:
            self._deliveries[d.id] = replace(d, next_attempt_at=now + timedelta(seconds=lease))
        return due

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
        """Record one attempt."""
        d = self._deliveries[delivery_id]
        self._deliveries[delivery_id] = replace(
            d,
            status=status,
            attempts=d.attempts + 1,
            next_attempt_at=next_attempt_at,
            last_status=last_status,
            last_answer=last_answer,
            updated_at=now,
        )

    async def list_deliveries(
        self, *, tenant: str | None, message_id: str | None, limit: int
    ) -> list[WebhookDelivery]:
        """Deliveries newest first."""
        found = [
            d
            for d in self._deliveries.values()
            if (tenant is None or d.tenant == tenant)
            and (message_id is None or d.message_id == message_id)
        ]
        return sorted(found, key=lambda d: d.created_at, reverse=True)[:limit]
