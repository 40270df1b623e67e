"""The event records' contract on every store (SQLite, PostgreSQL, memory): events stored once
and matched by the dispatch's provider id or the Message-ID header with the recipient, kept a
day when unknown, suppressions that expire, replays, and webhook deliveries leased once."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

from store_support import new

from postroom.events.model import EventKind, ProviderEvent
from postroom.models import Handoff, Status
from postroom.store import Completion, Store, utcnow
from postroom.store.events_base import Suppression, WebhookDelivery
from postroom.store.records import events_of


def bounce(event_id: str, *, pid: str | None = None, header: str | None = None) -> ProviderEvent:
    return ProviderEvent(
        provider="sendgrid",
        event_id=event_id,
        kind=EventKind.BOUNCED,
        recipient="user1@example.org",
        occurred_at=utcnow(),
        provider_message_id=pid,
        header_message_id=header,
        hard=True,
        reply="550 5.1.1 unknown",
        diagnosis="recipient_rejected",
    )


async def sent(store: Store, pid: str | None) -> str:
    [(message, _)] = await store.enqueue([new(1)], max_attempts=3, ttl=0)
    [claimed] = await store.claim(worker="w", limit=1, lease=30)
    handoff = Handoff("smtp", "127.0.0.1:25", f"250 Ok: queued as {pid}", pid)
    await store.complete([Completion(claimed.id, Status.SENT, handoff=handoff)], worker="w")
    return message.id


async def test_events_are_stored_once_and_matched_by_the_providers_id(any_store: Store) -> None:
    records = events_of(any_store)
    message_id = await sent(any_store, "SG123")
    [first] = await records.record_events("default", [bounce("e1", pid="SG123")], now=utcnow())
    assert first.event.message_id == message_id and first.recipient == "user1@example.org"
    assert await records.record_events("default", [bounce("e1", pid="SG123")], now=utcnow()) == []
    other_tenant = await records.record_events("acme", [bounce("e1", pid="SG123")], now=utcnow())
    assert other_tenant[0].event.message_id is None  # another tenant's message is not matched
    [event] = await records.events_for(message_id)
    assert event.kind is EventKind.BOUNCED and event.reply == "550 5.1.1 unknown"
    latest = await records.latest_events([message_id, "nothing"])
    assert list(latest) == [message_id]


async def test_an_event_is_matched_by_message_id_header_and_recipient(any_store: Store) -> None:
    records = events_of(any_store)
    mime = b"Message-ID: <abc.123@example.org>\r\nSubject: x\r\n\r\nbody\r\n"
    [(message, _)] = await any_store.enqueue([replace(new(2), mime=mime)], max_attempts=3, ttl=0)
    event = replace(bounce("h1", header="abc.123@example.org"), recipient="user2@example.org")
    [matched] = await records.record_events("default", [event], now=utcnow())
    assert matched.event.message_id == message.id
    elsewhere = replace(event, event_id="h2", recipient="someone@example.org")
    [unmatched] = await records.record_events("default", [elsewhere], now=utcnow())
    assert unmatched.event.message_id is None  # the same header for another recipient


async def test_unknown_events_wait_a_day_for_their_send(any_store: Store) -> None:
    records = events_of(any_store)
    now = utcnow()
    await records.record_events(
        "default", [bounce("old", pid="LATE1")], now=now - timedelta(hours=25)
    )
    await records.record_events("default", [bounce("new", pid="LATE1")], now=now)
    message_id = await sent(any_store, "LATE1")
    matched = await records.match_pending(now=now)
    assert [m.event.event_id for m in matched] == ["new"]  # the one past a day was forgotten
    assert [e.event_id for e in await records.events_for(message_id)] == ["new"]
    assert await records.match_pending(now=now) == []


async def test_suppressions_expire_and_replays_are_told(any_store: Store) -> None:
    records = events_of(any_store)
    now = utcnow()
    entry = Suppression(
        "default",
        "Gone@Example.org",
        "hard bounce",
        "bounced",
        None,
        None,
        now,
        now + timedelta(hours=1),
    )
    await records.suppress(entry)
    assert await records.suppression("default", "gone@example.org", now=now) is not None
    assert await records.suppression("acme", "gone@example.org", now=now) is None
    assert (
        await records.suppression("default", "gone@example.org", now=now + timedelta(hours=2))
        is None
    )
    assert [
        s.address
        for s in await records.list_suppressions(None, search="EXAMPLE", now=now, limit=10)
    ] == ["gone@example.org"]
    assert await records.remove_suppression("default", "GONE@example.org")
    assert not await records.remove_suppression("default", "gone@example.org")
    assert not await records.nonce_seen("t:n1", now=now, keep=600)
    assert await records.nonce_seen("t:n1", now=now, keep=600)
    assert not await records.nonce_seen("t:n1", now=now + timedelta(hours=1), keep=600)


async def test_a_due_delivery_is_leased_to_one_sender(any_store: Store) -> None:
    records = events_of(any_store)
    now = utcnow()
    delivery = WebhookDelivery(
        "msg_1",
        "default",
        0,
        "https://id.example.org/h",
        "message.sent",
        None,
        {"type": "message.sent"},
        "pending",
        0,
        now,
        None,
        None,
        now,
        now,
    )
    await records.add_deliveries([delivery])
    assert [d.id for d in await records.claim_deliveries(now=now, lease=60, limit=5)] == ["msg_1"]
    assert await records.claim_deliveries(now=now, lease=60, limit=5) == []
    await records.finish_delivery(
        "msg_1",
        status="delivered",
        next_attempt_at=None,
        last_status=204,
        last_answer="204",
        now=now,
    )
    [done] = await records.list_deliveries(tenant="default", message_id=None, limit=5)
    assert (done.status, done.attempts, done.last_status) == ("delivered", 1, 204)


async def test_suppressions_of_a_batch_are_read_at_once(any_store: Store) -> None:
    records = events_of(any_store)
    now = utcnow()
    for tenant, address, expires in (
        ("default", "Gone@Example.org", None),
        ("default", "old@example.org", now - timedelta(minutes=1)),
        ("acme", "acme-only@example.org", now + timedelta(hours=1)),
    ):
        await records.suppress(
            Suppression(tenant, address, "hard bounce", "bounced", None, None, now, expires)
        )
    asked = [
        ("default", "GONE@example.org"),
        ("default", "gone@example.org"),
        ("default", "old@example.org"),
        ("default", "acme-only@example.org"),
        ("acme", "acme-only@example.org"),
        ("acme", "fine@example.org"),
    ]
    found = await records.suppressions_of(asked, now=now)
    assert sorted(found) == [
        ("acme", "acme-only@example.org"),
        ("default", "GONE@example.org"),
        ("default", "gone@example.org"),
    ]
    assert found[("default", "GONE@example.org")].address == "gone@example.org"
    assert await records.suppressions_of([], now=now) == {}
