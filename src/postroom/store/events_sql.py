"""The SQL side of :class:`~postroom.store.events_base.EventRecords`, on the engines and the
thread of a :class:`~postroom.store.sql.SqlStore`."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any, TypeVar

from sqlalchemy import Connection, func, or_, select, update
from sqlalchemy.engine import Row
from sqlalchemy.exc import IntegrityError

from postroom.events.model import DeliveryEvent, EventKind, ProviderEvent, header_message_id
from postroom.store.base import new_id
from postroom.store.events_base import (
    UNMATCHED_KEPT,
    MatchedEvent,
    Plan,
    Suppression,
)
from postroom.store.schema import (
    delivery_events,
    dispatches,
    messages,
    suppressions,
    webhook_deliveries,
    webhook_nonces,
)
from postroom.store.webhooks_sql import SqlDeliveries, delivery_row

T = TypeVar("T")
CANDIDATES = 50  # newest messages to a recipient searched for a Message-ID header


class SqlEventRecords(SqlDeliveries):
    """Delivery events, suppressions, nonces and webhook deliveries in the SQL database."""

    # -- nonces ----------------------------------------------------------------------

    async def nonce_seen(self, nonce: str, *, now: datetime, keep: float) -> bool:
        """Remember ``nonce``; True when it was already remembered."""

        return await self._write(lambda conn: _nonce_seen(conn, nonce, now, keep))

    # -- events ----------------------------------------------------------------------

    async def record_events(
        self, tenant: str, events: Sequence[ProviderEvent], *, now: datetime
    ) -> list[MatchedEvent]:
        """Store new events, matched where a message is found."""

        return await self._write(lambda conn: _record(conn, tenant, events, now))

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
        """In one transaction: refuse a seen nonce (None), store the events, and write the
        suppressions and webhook deliveries ``plan`` makes of the new ones."""

        def run(conn: Connection) -> list[MatchedEvent] | None:
            if nonce is not None and _nonce_seen(conn, nonce, now, keep):
                return None
            matched = _record(conn, tenant, events, now)
            entries, deliveries = plan(matched)
            for entry in entries:
                _suppress(conn, entry)
            if deliveries:
                conn.execute(webhook_deliveries.insert(), [delivery_row(d) for d in deliveries])
            return matched

        return await self._write(run)

    async def match_pending(self, *, now: datetime) -> list[MatchedEvent]:
        """Match what can be matched now; forget unmatched events older than a day."""

        def run(conn: Connection) -> list[MatchedEvent]:
            conn.execute(
                delivery_events.delete().where(
                    delivery_events.c.message_id.is_(None),
                    delivery_events.c.received_at < now - timedelta(seconds=UNMATCHED_KEPT),
                )
            )
            out: list[MatchedEvent] = []
            for row in conn.execute(
                select(delivery_events).where(delivery_events.c.message_id.is_(None)).limit(500)
            ):
                event = _event(row)
                found = _match(
                    conn,
                    event.tenant,
                    event.provider_message_id,
                    event.header_message_id,
                    event.recipient,
                )
                if found is None:
                    continue
                conn.execute(
                    update(delivery_events)
                    .where(delivery_events.c.id == event.id)
                    .values(message_id=found["id"])
                )
                out.append(_matched(replace(event, message_id=found["id"]), found))
            return out

        return await self._write(run)

    async def events_for(self, message_id: str) -> list[DeliveryEvent]:
        """A message's events, oldest first."""

        def run(conn: Connection) -> list[DeliveryEvent]:
            rows = conn.execute(
                select(delivery_events)
                .where(delivery_events.c.message_id == message_id)
                .order_by(delivery_events.c.occurred_at, delivery_events.c.received_at)
            )
            return [_event(r) for r in rows]

        return await self._read(run)

    async def latest_events(self, message_ids: Sequence[str]) -> dict[str, DeliveryEvent]:
        """The latest event of each message that has one."""
        if not message_ids:
            return {}

        def run(conn: Connection) -> dict[str, DeliveryEvent]:
            out: dict[str, DeliveryEvent] = {}
            rows = conn.execute(
                select(delivery_events)
                .where(delivery_events.c.message_id.in_(list(message_ids)))
                .order_by(delivery_events.c.occurred_at, delivery_events.c.received_at)
            )
            for row in rows:
                event = _event(row)
                assert event.message_id is not None
                out[event.message_id] = event
            return out

        return await self._read(run)

    async def event_summary(self, *, since: datetime) -> dict[str, Any]:
        """Counts per kind and the top bounce diagnoses since ``since``."""

        def run(conn: Connection) -> dict[str, Any]:
            recent = delivery_events.c.received_at >= since
            counts = {
                str(kind): int(n)
                for kind, n in conn.execute(
                    select(delivery_events.c.event, func.count())
                    .where(recent)
                    .group_by(delivery_events.c.event)
                )
            }
            reasons = [
                {"diagnosis": str(code), "count": int(n)}
                for code, n in conn.execute(
                    select(delivery_events.c.diagnosis, func.count().label("n"))
                    .where(recent, delivery_events.c.event == EventKind.BOUNCED.value)
                    .group_by(delivery_events.c.diagnosis)
                    .order_by(func.count().desc())
                    .limit(5)
                )
            ]
            return {"counts": counts, "bounce_reasons": reasons}

        return await self._read(run)

    # -- suppressions ----------------------------------------------------------------

    async def suppress(self, entry: Suppression) -> None:
        """Add or refresh a suppression."""
        await self._write(lambda conn: _suppress(conn, entry))

    async def suppression(self, tenant: str, address: str, *, now: datetime) -> Suppression | None:
        """The unexpired suppression of ``address`` for ``tenant``."""

        def run(conn: Connection) -> Suppression | None:
            row = conn.execute(
                select(suppressions).where(
                    suppressions.c.tenant == tenant,
                    suppressions.c.address == address.strip().lower(),
                    _unexpired(now),
                )
            ).first()
            return _suppression(row) if row is not None else None

        return await self._read(run)

    async def list_suppressions(
        self, tenant: str | None, *, search: str | None, now: datetime, limit: int
    ) -> list[Suppression]:
        """Unexpired suppressions, newest first."""

        def run(conn: Connection) -> list[Suppression]:
            query = select(suppressions).where(_unexpired(now))
            if tenant is not None:
                query = query.where(suppressions.c.tenant == tenant)
            if search:
                query = query.where(
                    suppressions.c.address.contains(search.lower(), autoescape=True)
                )
            query = query.order_by(suppressions.c.created_at.desc()).limit(limit)
            return [_suppression(r) for r in conn.execute(query)]

        return await self._read(run)

    async def remove_suppression(self, tenant: str, address: str) -> bool:
        """Remove one suppression."""

        def run(conn: Connection) -> bool:
            done = conn.execute(
                suppressions.delete().where(
                    suppressions.c.tenant == tenant,
                    suppressions.c.address == address.strip().lower(),
                )
            )
            return bool(done.rowcount)

        return await self._write(run)


def _record(
    conn: Connection, tenant: str, events: Sequence[ProviderEvent], now: datetime
) -> list[MatchedEvent]:
    """Store the events not stored before, each matched where a message is found."""
    out: list[MatchedEvent] = []
    for event in events:
        exists = conn.execute(
            select(delivery_events.c.id).where(
                delivery_events.c.tenant == tenant,
                delivery_events.c.provider == event.provider,
                delivery_events.c.event_id == event.event_id,
            )
        ).first()
        if exists is not None:
            continue
        found = _match(
            conn,
            tenant,
            event.provider_message_id,
            event.header_message_id,
            event.recipient,
        )
        stored = DeliveryEvent(
            id=new_id(),
            tenant=tenant,
            message_id=found["id"] if found else None,
            received_at=now,
            **_fields(event),
        )
        try:
            with conn.begin_nested():
                conn.execute(delivery_events.insert().values(**_row(stored)))
        except IntegrityError:
            continue  # the same event arrived at the same moment on another request
        out.append(_matched(stored, found))
    return out


def _nonce_seen(conn: Connection, nonce: str, now: datetime, keep: float) -> bool:
    """Remember ``nonce`` (forgetting those older than ``keep``); True when it was known."""
    conn.execute(
        webhook_nonces.delete().where(webhook_nonces.c.seen_at < now - timedelta(seconds=keep))
    )
    try:
        with conn.begin_nested():
            conn.execute(webhook_nonces.insert().values(nonce=nonce[:300], seen_at=now))
    except IntegrityError:
        return True
    return False


def _suppress(conn: Connection, entry: Suppression) -> None:
    """Add or refresh a suppression."""
    values = {
        "reason": entry.reason,
        "event": entry.event,
        "event_ref": entry.event_ref,
        "message_id": entry.message_id,
        "created_at": entry.created_at,
        "expires_at": entry.expires_at,
    }
    address = entry.address.lower()
    done = conn.execute(
        update(suppressions)
        .where(suppressions.c.tenant == entry.tenant, suppressions.c.address == address)
        .values(**values)
    )
    if done.rowcount == 0:
        conn.execute(suppressions.insert().values(tenant=entry.tenant, address=address, **values))


def _match(
    conn: Connection,
    tenant: str,
    provider_id: str | None,
    header_id: str | None,
    recipient: str,
) -> dict[str, Any] | None:
    """The message of ``tenant`` an event belongs to: by a dispatch's provider message id,
    else by the Message-ID header among the newest messages to ``recipient``."""
    wanted = [
        messages.c.id,
        messages.c.recipient,
        messages.c.template_type,
        messages.c.template_data,
    ]
    ids = [i for i in {provider_id, header_id} if i]
    if ids:
        row = conn.execute(
            select(*wanted)
            .join(dispatches, dispatches.c.message_id == messages.c.id)
            .where(messages.c.tenant == tenant, dispatches.c.provider_message_id.in_(ids))
            .limit(1)
        ).first()
        if row is not None:
            return dict(row._mapping)
    if header_id and recipient:
        rows = conn.execute(
            select(*wanted, messages.c.mime)
            .where(
                messages.c.tenant == tenant,
                or_(
                    messages.c.recipient == recipient, func.lower(messages.c.recipient) == recipient
                ),
            )
            .order_by(messages.c.created_at.desc())
            .limit(CANDIDATES)
        )
        for row in rows:
            if header_message_id(row.mime) == header_id:
                return {k: v for k, v in row._mapping.items() if k != "mime"}
    return None


def _fields(event: ProviderEvent) -> dict[str, Any]:
    return {
        "provider": event.provider,
        "event_id": event.event_id,
        "kind": event.kind,
        "recipient": event.recipient,
        "occurred_at": event.occurred_at,
        "provider_message_id": event.provider_message_id,
        "header_message_id": event.header_message_id,
        "hard": event.hard,
        "reply": event.reply,
        "diagnosis": event.diagnosis,
    }


def _row(event: DeliveryEvent) -> dict[str, Any]:
    return {
        "id": event.id,
        "tenant": event.tenant,
        "message_id": event.message_id,
        "provider": event.provider,
        "event_id": event.event_id,
        "event": event.kind.value,
        "recipient": event.recipient,
        "provider_message_id": event.provider_message_id,
        "header_message_id": event.header_message_id,
        "hard": event.hard,
        "reply": event.reply,
        "diagnosis": event.diagnosis,
        "occurred_at": event.occurred_at,
        "received_at": event.received_at,
    }


def _event(row: Row[Any]) -> DeliveryEvent:
    m = dict(row._mapping)
    m["kind"] = EventKind(m.pop("event"))
    return DeliveryEvent(**m)


def _matched(event: DeliveryEvent, found: dict[str, Any] | None) -> MatchedEvent:
    if found is None:
        return MatchedEvent(event)
    return MatchedEvent(event, found["recipient"], found["template_type"], found["template_data"])


def _unexpired(now: datetime) -> Any:
    """:meth:`Suppression.active` as a condition on the rows."""
    return or_(suppressions.c.expires_at.is_(None), suppressions.c.expires_at > now)


def _suppression(row: Row[Any]) -> Suppression:
    return Suppression(**dict(row._mapping))
