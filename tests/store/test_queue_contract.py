"""The Queue contract, run against every backend: durable enqueue, atomic claiming with
leases, idempotency, completion records, rate slots."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from store_support import new

from postroom.errors import DuplicateRequestError
from postroom.models import Diagnosis, DispatchStatus, Priority, Status, WaitingFor
from postroom.store import Budget, Completion, MessageFilter, Store, open_store, utcnow

from conftest import Clock


async def test_claim_leases_due_messages_once(any_store: Store) -> None:
    await any_store.enqueue([new(n) for n in range(5)], max_attempts=3, ttl=0)
    first = await any_store.claim(worker="a", limit=3, lease=60)
    second = await any_store.claim(worker="b", limit=10, lease=60)
    assert len(first) == 3 and len(second) == 2
    assert {m.id for m in first}.isdisjoint({m.id for m in second})
    assert all(m.status is Status.PROCESSING and m.lease_owner == "a" for m in first)
    assert await any_store.claim(worker="c", limit=10, lease=60) == []


async def test_an_expired_lease_makes_a_message_claimable_again(
    any_store: Store, clock_at: Clock
) -> None:
    [(message, _)] = await any_store.enqueue([new()], max_attempts=3, ttl=0)
    [claimed] = await any_store.claim(worker="dead", limit=1, lease=60)
    assert claimed.id == message.id
    clock_at.advance(59)
    assert await any_store.claim(worker="b", limit=1, lease=60) == []
    clock_at.advance(2)  # the lease ran out a second ago
    [again] = await any_store.claim(worker="b", limit=1, lease=60)
    assert again.id == message.id and again.lease_owner == "b"
    assert again.reclaimed_from == "dead"


async def test_renew_keeps_the_lease_alive(any_store: Store, clock_at: Clock) -> None:
    await any_store.enqueue([new()], max_attempts=3, ttl=0)
    [claimed] = await any_store.claim(worker="a", limit=1, lease=30)
    for _ in range(3):
        clock_at.advance(20)
        await any_store.renew([claimed.id], worker="a", lease=30)
    clock_at.advance(20)  # 80 s after the claim: the first lease ran out 50 s ago
    assert await any_store.claim(worker="b", limit=1, lease=30) == []
    await any_store.renew([claimed.id], worker="b", lease=3600)  # not b's lease: no effect
    clock_at.advance(11)  # the last renewal (to 60 + 30 s) has run out
    [taken] = await any_store.claim(worker="b", limit=1, lease=30)
    assert taken.id == claimed.id


async def test_release_returns_unstarted_messages(any_store: Store) -> None:
    await any_store.enqueue([new()], max_attempts=3, ttl=0)
    [claimed] = await any_store.claim(worker="a", limit=1, lease=60)
    await any_store.release([claimed.id], worker="a")
    [again] = await any_store.claim(worker="b", limit=1, lease=60)
    assert again.id == claimed.id


async def test_two_stores_on_one_database_never_claim_the_same_message(sql_dsn: str) -> None:
    one, two = open_store(sql_dsn), open_store(sql_dsn)
    await one.migrate()
    try:
        await one.enqueue([new(n) for n in range(200)], max_attempts=3, ttl=0)

        async def drain(store: Store, name: str) -> list[str]:
            got: list[str] = []
            while batch := await store.claim(worker=name, limit=7, lease=60):
                got += [m.id for m in batch]
            return got

        a, b = await asyncio.gather(drain(one, "one"), drain(two, "two"))
    finally:
        await one.close()
        await two.close()
    assert len(a) + len(b) == 200
    assert set(a).isdisjoint(b)


async def test_complete_records_a_dispatch_per_attempt(any_store: Store) -> None:
    [(message, _)] = await any_store.enqueue([new()], max_attempts=3, ttl=0)
    await any_store.claim(worker="w", limit=1, lease=60)
    error = Diagnosis("server_unavailable", True, "cause", "fix", stage="connect", reply="421 x")
    later = utcnow() + timedelta(minutes=5)
    await any_store.complete(
        [
            Completion(
                message.id,
                Status.QUEUED,
                error,
                next_attempt_at=later,
                waiting_for=WaitingFor.BACKOFF,
            )
        ],
        worker="w",
    )
    waiting = await any_store.get(message.id)
    assert waiting.status is Status.QUEUED and waiting.send_count == 1
    assert waiting.waiting_for is WaitingFor.BACKOFF and waiting.last_error == error
    assert await any_store.claim(worker="w", limit=1, lease=60) == []  # not due yet
    assert await any_store.next_due() == later
    # An expiry abandons without an attempt: no dispatch row, send_count unchanged.
    expired = Diagnosis("expired", False, "c", "f")
    await any_store.complete(
        [Completion(message.id, Status.ABANDONED, expired, attempted=False)], worker="w"
    )
    done = await any_store.get(message.id)
    assert done.status is Status.ABANDONED and done.send_count == 1
    assert len(done.dispatches) == 1 and done.last_error == expired


async def test_idempotency_key_is_scoped_to_the_tenant(any_store: Store) -> None:
    [(a, created_a)] = await any_store.enqueue([new(1, key="k")], max_attempts=3, ttl=0)
    [(b, created_b)] = await any_store.enqueue([new(2, key="k")], max_attempts=3, ttl=0)
    [(c, created_c)] = await any_store.enqueue(
        [new(3, key="k", tenant="acme")], max_attempts=3, ttl=0
    )
    assert created_a and not created_b and created_c
    assert a.id == b.id != c.id


async def test_ttl_sets_the_expiry(any_store: Store) -> None:
    [(message, _)] = await any_store.enqueue([new()], max_attempts=1, ttl=3600)
    assert message.expires_at is not None
    assert abs((message.expires_at - message.created_at).total_seconds() - 3600) < 1
    [(forever, _)] = await any_store.enqueue([new(1)], max_attempts=1, ttl=0)
    assert forever.expires_at is None


async def test_rate_slots_are_shared_and_free_up(sql_dsn: str) -> None:
    one, two = open_store(sql_dsn), open_store(sql_dsn)
    await one.migrate()
    try:
        stored = await one.enqueue([new(n) for n in range(12)], max_attempts=3, ttl=0)
        ids = [message.id for message, _ in stored]
        await one.claim(worker="w", limit=12, lease=60)
        limits = [(5, 0.6)]
        results = await asyncio.gather(
            *(
                store.take_slot("acme", limits, message_id=ids[n], lane=Priority.NORMAL)
                for n, store in enumerate([one, two] * 6)
            )
        )
        taken = [ids[n] for n, r in enumerate(results) if r is None]
        refused = [r for r in results if r is not None]
        assert len(taken) == 5 and len(refused) == 7
        start = utcnow()
        assert all(start < r.free_at <= start + timedelta(seconds=0.7) for r in refused)
        assert await one.take_slot("other", limits, message_id="x") is None  # limits are per tenant
        await one.complete([Completion(i, Status.SENT) for i in taken], worker="w")
        await asyncio.sleep(0.7)  # a window after the hand-offs were written
        assert await two.take_slot("acme", limits, message_id="y", lane=Priority.NORMAL) is None
        # Two limits: the stricter one decides.
        assert await one.take_slot("b", [(10, 60), (1, 0.3)], message_id="z") is None
        later = await one.take_slot("b", [(10, 60), (1, 0.3)], message_id="w", lane=Priority.NORMAL)
        assert later is not None and later.free_at <= utcnow() + timedelta(seconds=0.3)
    finally:
        await one.close()
        await two.close()


async def test_a_rate_slot_counts_from_the_hand_off(any_store: Store) -> None:
    [(message, _)] = await any_store.enqueue([new(1)], max_attempts=3, ttl=0)
    await any_store.claim(worker="w", limit=1, lease=60)
    limits = [(1, 0.5)]
    assert await any_store.take_slot("default", limits, message_id=message.id) is None
    await asyncio.sleep(0.4)  # a slow send
    await any_store.complete([Completion(message.id, Status.SENT)], worker="w")
    handed_off = utcnow()
    wait = await any_store.take_slot("default", limits, message_id="next", lane=Priority.NORMAL)
    assert wait is not None
    assert wait.free_at >= handed_off + timedelta(seconds=0.45)


async def test_a_slot_stays_taken_until_its_hand_off_is_written(
    any_store: Store, clock_at: Clock
) -> None:
    """A send slower than the window (or a status write held up): the provider counts the
    message when it arrives, so its slot is not free again until its outcome is written, and
    then counts from then. A worker that dies without writing it holds it a lease at most."""
    [(message, _)] = await any_store.enqueue([new(1)], max_attempts=3, ttl=0)
    await any_store.claim(worker="w", limit=1, lease=60)
    limits = [(1, 1.0)]
    assert await any_store.take_slot("default", limits, message_id=message.id) is None
    clock_at.advance(5)  # five windows later, still being sent
    wait = await any_store.take_slot("default", limits, message_id="next", lane=Priority.NORMAL)
    assert wait is not None and wait.waiting_for is WaitingFor.RATE_LIMIT
    assert wait.free_at >= utcnow() + timedelta(seconds=1)
    await any_store.complete([Completion(message.id, Status.SENT)], worker="w")
    clock_at.advance(0.5)
    wait = await any_store.take_slot("default", limits, message_id="next", lane=Priority.NORMAL)
    assert wait is not None  # counted from the hand-off's write, half a window ago
    clock_at.advance(0.6)
    assert await any_store.take_slot("default", limits, message_id="next") is None
    # "next" is never written (its worker died): its slot is free again after the lease.
    clock_at.advance(30)
    assert await any_store.take_slot("default", limits, message_id="other", lease=40) is not None
    clock_at.advance(11)
    assert await any_store.take_slot("default", limits, message_id="other", lease=40) is None


async def test_a_taken_over_message_counts_its_dead_holders_slot_and_takes_a_new_one(
    any_store: Store, clock_at: Clock
) -> None:
    """The dead worker may have handed the message off before it died: its slot counts from
    the takeover, and the new holder needs a slot of its own, like any other message."""
    stored = await any_store.enqueue([new(n) for n in range(2)], max_attempts=3, ttl=0)
    lost, other = (message.id for message, _ in stored)
    await any_store.claim(worker="dead", limit=1, lease=60)
    limits = [(1, 1.0)]
    assert await any_store.take_slot("default", limits, message_id=lost) is None
    clock_at.advance(61)  # the lease ran out; nothing was written
    [taken_over] = await any_store.claim(worker="next", limit=1, lease=60)
    assert taken_over.id == lost
    assert await any_store.take_slot("default", limits, message_id=lost) is not None
    assert await any_store.take_slot("default", limits, message_id=other) is not None
    clock_at.advance(1.1)
    assert await any_store.take_slot("default", limits, message_id=lost) is None
    assert await any_store.take_slot("default", limits, message_id=other) is not None


async def test_a_code_uses_its_booked_slot_when_it_comes_a_moment_early(
    any_store: Store, clock_at: Clock
) -> None:
    [(first, _)] = await any_store.enqueue([new(1)], max_attempts=3, ttl=0)
    await any_store.claim(worker="w", limit=1, lease=60)
    limits = [(1, 1.0)]
    assert await any_store.take_slot("default", limits, message_id=first.id) is None
    await any_store.complete([Completion(first.id, Status.SENT)], worker="w")
    booked = await any_store.take_slot("default", limits, message_id="code")
    assert booked is not None
    # Asked again before its time, in any lane, the booking stays as it is.
    again = await any_store.take_slot("default", limits, message_id="code", lane=Priority.NORMAL)
    assert again == booked
    behind = await any_store.take_slot("default", limits, message_id="later")
    assert behind is not None and behind.free_at > booked.free_at
    clock_at.now = booked.free_at - timedelta(milliseconds=30)  # its claim fell due early
    assert await any_store.take_slot("default", limits, message_id="code") is None


@pytest.mark.parametrize("ending", ["expired", "cancelled", "given back"])
async def test_a_booking_left_unused_frees_its_slot(
    any_store: Store, clock_at: Clock, ending: str
) -> None:
    """A code that booked a slot and then expires, is cancelled or is given back unsent by a
    stopping worker leaves the slot to the next message, not to nobody."""
    stored = await any_store.enqueue([new(n) for n in range(2)], max_attempts=3, ttl=0)
    first, code = (message.id for message, _ in stored)
    await any_store.claim(worker="w", limit=1, lease=60)
    limits = [(1, 1.0)]
    assert await any_store.take_slot("default", limits, message_id=first) is None
    await any_store.complete([Completion(first, Status.SENT)], worker="w")
    booked = await any_store.take_slot("default", limits, message_id=code)
    assert booked is not None
    if ending == "cancelled":
        await any_store.cancel(code, error=Diagnosis("cancelled", False, "c", "f"))
    else:
        clock_at.advance(1.0)  # the booked time
        [claimed] = await any_store.claim(worker="w", limit=1, lease=60)
        assert claimed.id == code
        if ending == "expired":
            gone = Diagnosis("expired", False, "c", "f")
            done = Completion(code, Status.ABANDONED, error=gone, attempted=False)
            await any_store.complete([done], worker="w")
        else:
            await any_store.release([code], worker="w")
    clock_at.advance(1.1)  # a window after the booked time, when it would have arrived
    assert await any_store.take_slot("default", limits, message_id="next") is None


async def test_a_booked_slot_waits_again_while_what_filled_the_window_is_on_its_way(
    any_store: Store, clock_at: Clock
) -> None:
    """Codes book the next free slot, counting a slow send as arriving when they asked. When
    the booked time comes and that send is still on its way, the code waits again; once it
    arrived and a window passed, one of the codes goes, not both."""
    stored = await any_store.enqueue([new(n) for n in range(3)], max_attempts=3, ttl=0)
    slow, one, two = (message.id for message, _ in stored)
    await any_store.claim(worker="w", limit=3, lease=60)
    limits = [(1, 1.0)]
    assert await any_store.take_slot("default", limits, message_id=slow) is None
    for code in (one, two):
        booked = await any_store.take_slot("default", limits, message_id=code)
        assert booked is not None and booked.waiting_for is WaitingFor.RATE_LIMIT
    clock_at.advance(1.1)  # the first code's booked time: the slow send has not arrived yet
    assert await any_store.take_slot("default", limits, message_id=one) is not None
    await any_store.complete([Completion(slow, Status.SENT)], worker="w")  # it arrived
    clock_at.advance(1.1)
    taken = [await any_store.take_slot("default", limits, message_id=c) for c in (one, two)]
    assert sum(wait is None for wait in taken) == 1
    went, left = (one, two) if taken[0] is None else (two, one)
    await any_store.complete([Completion(went, Status.SENT)], worker="w")
    clock_at.advance(1.1)  # the next window: the other code's turn
    assert await any_store.take_slot("default", limits, message_id=left) is None


async def test_a_claim_records_the_completions_it_carries(any_store: Store) -> None:
    stored = await any_store.enqueue([new(n) for n in range(3)], max_attempts=3, ttl=0)
    [first] = await any_store.claim(worker="a", limit=1, lease=60)
    rest = await any_store.claim(
        worker="a", limit=5, lease=60, completions=[Completion(first.id, Status.SENT)]
    )
    assert {m.id for m in rest} == {m.id for m, _ in stored} - {first.id}
    done = await any_store.get(first.id)
    assert done.status is Status.SENT
    assert done.send_count == 1
    assert [d.status for d in done.dispatches] == [DispatchStatus.SUCCESS]
    assert done.lease_owner is None


async def test_a_changed_request_under_a_used_key_stores_nothing_of_its_batch(
    any_store: Store,
) -> None:
    [(first, _)] = await any_store.enqueue([new(1, key="k")], max_attempts=3, ttl=0)
    batch = [new(5), new(6, tenant="acme"), new(2, key="k")]  # new(2) hashes differently
    with pytest.raises(DuplicateRequestError):
        await any_store.enqueue(batch, max_attempts=3, ttl=0, refuse_changed=True)
    assert [m.id for m in await any_store.list_messages(MessageFilter())] == [first.id]
    # The same request under the same key is no conflict: the stored message comes back.
    [(again, created)] = await any_store.enqueue(
        [new(1, key="k")], max_attempts=3, ttl=0, refuse_changed=True
    )
    assert again.id == first.id and not created


async def test_each_tenant_gets_its_own_budget_in_one_enqueue(any_store: Store) -> None:
    stored = await any_store.enqueue(
        [new(1), new(2, tenant="acme")],
        max_attempts=3,
        ttl=0,
        budgets={"acme": Budget(max_attempts=9, ttl=60)},
    )
    [(plain, _), (acme, _)] = stored
    assert (plain.max_attempts, plain.expires_at) == (3, None)
    assert acme.max_attempts == 9 and acme.expires_at is not None
