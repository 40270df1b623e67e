"""The Records contract, run against every backend: newest-first pages with filters, one
message with its attempts, retry and cancel."""

from __future__ import annotations

import pytest
from store_support import new

from postroom.errors import ConflictError, NotFoundError
from postroom.models import Diagnosis, DispatchStatus, Status
from postroom.store import Completion, MessageFilter, Store


async def test_list_is_newest_first_with_filters_and_keyset_pages(any_store: Store) -> None:
    for n in range(7):
        await any_store.enqueue(
            [new(n, tenant="acme" if n % 2 else "default")], max_attempts=1, ttl=0
        )
    everything = await any_store.list_messages(MessageFilter(limit=100))
    assert [m.recipient for m in everything] == [f"user{n}@example.org" for n in reversed(range(7))]
    acme = await any_store.list_messages(MessageFilter(tenant="acme"))
    assert {m.tenant for m in acme} == {"acme"} and len(acme) == 3
    page1 = await any_store.list_messages(MessageFilter(limit=3))
    last = page1[-1]
    page2 = await any_store.list_messages(MessageFilter(limit=3, before=(last.created_at, last.id)))
    assert [m.id for m in page1 + page2] == [m.id for m in everything[:6]]


async def test_retry_and_cancel_move_a_message_between_queued_and_abandoned(
    any_store: Store,
) -> None:
    [(message, _)] = await any_store.enqueue([new()], max_attempts=1, ttl=0)
    with pytest.raises(ConflictError):
        await any_store.retry(message.id, attempts=2, ttl=0)  # queued, not abandoned
    stopped = Diagnosis("cancelled", False, "cancelled by an operator", "nothing to do")
    cancelled = await any_store.cancel(message.id, error=stopped)
    assert cancelled.status is Status.ABANDONED and cancelled.last_error == stopped
    with pytest.raises(ConflictError):
        await any_store.cancel(message.id, error=stopped)  # already abandoned
    again = await any_store.retry(message.id, attempts=2, ttl=60)
    assert again.status is Status.QUEUED and again.max_attempts == 2
    assert again.expires_at is not None
    [claimed] = await any_store.claim(worker="w", limit=1, lease=60)
    assert claimed.id == message.id
    await any_store.complete([Completion(message.id, Status.SENT)], worker="w")
    sent = await any_store.get(message.id)
    assert sent.status is Status.SENT
    assert [d.status for d in sent.dispatches] == [DispatchStatus.SUCCESS]
    counts = await any_store.count_by_status()
    assert counts["sent"] == 1 and counts["queued"] == 0
    with pytest.raises(NotFoundError):
        await any_store.get("no-such-message")
    with pytest.raises(NotFoundError):
        await any_store.cancel("no-such-message", error=stopped)
