"""Priority lanes in the store, on every backend: claims by lane and shared between tenants,
rate-limit slots kept for urgent mail, folded duplicates and per-recipient limits."""

from __future__ import annotations

import asyncio
from collections import Counter
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event
from store_support import new

from postroom.errors import RecipientLimitError
from postroom.models import NewMessage, Priority, Status, TemplateType, WaitingFor
from postroom.store import Completion, MessageFilter, Store, open_store, utcnow
from postroom.store.base import Budget
from postroom.store.sql import SqlStore

from conftest import Clock

LANES = {"default": 300.0, "acme": 300.0}


def within(ttl: float = 0, **rules: Any) -> dict[str, Budget]:
    """The default tenant's budget: one attempt, ``ttl``, and the enqueue rules given."""
    return {"default": Budget(1, ttl, **rules)}


def lane(n: int, priority: Priority, *, tenant: str = "default") -> NewMessage:
    return replace(new(n, tenant=tenant), priority=priority, template_type=TemplateType.STUB)


async def test_a_claim_takes_urgent_before_normal_before_bulk(any_store: Store) -> None:
    await any_store.enqueue([lane(n, Priority.BULK) for n in range(20)], max_attempts=1, ttl=0)
    await any_store.enqueue([lane(100, Priority.NORMAL)], max_attempts=1, ttl=0)
    await any_store.enqueue([lane(200, Priority.URGENT)], max_attempts=1, ttl=0)
    claimed = await any_store.claim(worker="w", limit=3, lease=60, tenants=LANES)
    assert [m.priority for m in claimed] == [Priority.URGENT, Priority.NORMAL, Priority.BULK]
    assert claimed[2].recipient == "user0@example.org"  # bulk in due order


async def test_a_normal_message_past_its_aging_goes_before_urgent_ones(
    any_store: Store, clock_at: Clock
) -> None:
    await any_store.enqueue([lane(1, Priority.NORMAL)], max_attempts=1, ttl=0)
    await any_store.enqueue([lane(n, Priority.URGENT) for n in range(2, 6)], max_attempts=1, ttl=0)
    # Aging 0.2 s: the normal message has waited longer by the time of the claim.
    clock_at.advance(0.25)  # the time the aging asks for
    claimed = await any_store.claim(worker="w", limit=1, lease=60, tenants={"default": 0.2})
    assert [m.priority for m in claimed] == [Priority.NORMAL]
    young = await any_store.claim(worker="w", limit=1, lease=60, tenants={"default": 300})
    assert [m.priority for m in young] == [Priority.URGENT]


async def test_a_look_for_urgent_mail_takes_aged_normal_mail_then_codes_of_every_tenant(
    any_store: Store, clock_at: Clock
) -> None:
    # On a stopped clock: on a busy host the second normal message aged past 0.2 s too.
    await any_store.enqueue([lane(1, Priority.NORMAL)], max_attempts=1, ttl=0)
    clock_at.advance(0.25)  # past the aging of 0.2 s below
    await any_store.enqueue(
        [lane(2, Priority.NORMAL), lane(3, Priority.BULK)], max_attempts=1, ttl=0
    )
    codes = [lane(n, Priority.URGENT, tenant=t) for n in range(4, 8) for t in ("default", "acme")]
    await any_store.enqueue(codes, max_attempts=1, ttl=0)
    aging = {"default": 0.2, "acme": 0.2}
    look = await any_store.claim(worker="w", limit=5, lease=60, tenants=aging, urgent_only=True)
    # Five of nine: the normal message past its aging and four codes, the room shared
    # evenly between the tenants (three and two, whichever goes first).
    [aged] = [m for m in look if m.priority is Priority.NORMAL]
    assert aged.recipient == "user1@example.org"
    assert [m.priority for m in look].count(Priority.URGENT) == 4
    assert sorted(Counter(m.tenant for m in look).values()) == [2, 3]
    rest = await any_store.claim(worker="w", limit=10, lease=60, tenants=aging, urgent_only=True)
    assert [m.priority for m in rest] == [Priority.URGENT] * 4  # no young normal, no bulk


async def test_a_look_for_urgent_mail_shares_the_room_over_aged_mail_and_codes_together(
    any_store: Store, clock_at: Clock
) -> None:
    """One tenant's backlog of aged notifications does not take the whole look from another
    tenant's codes: each tenant's aged mail and codes form one share."""
    aged = [lane(n, Priority.NORMAL) for n in range(3)]
    await any_store.enqueue(aged, max_attempts=1, ttl=0)
    clock_at.advance(0.25)  # past the aging of 0.2 s below
    codes = [lane(n, Priority.URGENT, tenant="acme") for n in range(10, 14)]
    await any_store.enqueue(codes, max_attempts=1, ttl=0)
    aging = {"default": 0.2, "acme": 0.2}
    look = await any_store.claim(worker="w", limit=4, lease=60, tenants=aging, urgent_only=True)
    assert Counter(m.tenant for m in look) == {"default": 2, "acme": 2}


async def test_one_tenants_flood_does_not_starve_another_in_a_claim(any_store: Store) -> None:
    flood = [lane(n, Priority.BULK, tenant="acme") for n in range(300)]
    await any_store.enqueue(flood, max_attempts=1, ttl=0)
    await any_store.enqueue(
        [lane(1000 + n, Priority.BULK) for n in range(3)], max_attempts=1, ttl=0
    )
    claimed = await any_store.claim(worker="w", limit=10, lease=60, tenants=LANES)
    tenants = [m.tenant for m in claimed]
    # The flood came first in due order, yet the other tenant's messages all come along.
    assert tenants.count("default") == 3 and tenants.count("acme") == 7


async def test_bulk_of_a_tenant_held_back_is_not_claimed(any_store: Store) -> None:
    await any_store.enqueue([lane(1, Priority.BULK, tenant="acme")], max_attempts=1, ttl=0)
    await any_store.enqueue([lane(2, Priority.BULK)], max_attempts=1, ttl=0)
    claimed = await any_store.claim(
        worker="w", limit=5, lease=60, tenants=LANES, hold_bulk=["acme"]
    )
    assert [m.tenant for m in claimed] == ["default"]
    urgent = await any_store.claim(worker="w", limit=5, lease=60, tenants=LANES, urgent_only=True)
    assert urgent == []  # bulk is never what a look for urgent mail takes


async def test_a_claim_takes_at_most_the_cap_of_a_paced_tenants_bulk(any_store: Store) -> None:
    await any_store.enqueue(
        [lane(n, Priority.BULK, tenant="acme") for n in range(50)], max_attempts=1, ttl=0
    )
    await any_store.enqueue(
        [lane(100 + n, Priority.BULK) for n in range(30)], max_attempts=1, ttl=0
    )
    await any_store.enqueue([lane(200, Priority.NORMAL, tenant="acme")], max_attempts=1, ttl=0)
    claimed = await any_store.claim(
        worker="w", limit=40, lease=60, tenants=LANES, bulk_caps={"acme": 2}
    )
    taken = Counter((m.tenant, m.priority) for m in claimed)
    # acme's bulk is capped, its normal mail is not; the other tenant fills the room.
    assert taken == {
        ("acme", Priority.BULK): 2,
        ("acme", Priority.NORMAL): 1,
        ("default", Priority.BULK): 30,
    }
    again = await any_store.claim(worker="w", limit=40, lease=60, tenants=LANES)
    assert len(again) == 40  # without the cap, the rest of acme's bulk is there to take


async def test_a_claim_that_skips_urgent_mail_takes_everything_else(any_store: Store) -> None:
    await any_store.enqueue([lane(1, Priority.NORMAL)], max_attempts=1, ttl=0)
    await any_store.enqueue([lane(n, Priority.URGENT) for n in range(2, 5)], max_attempts=1, ttl=0)
    await any_store.enqueue([lane(n, Priority.BULK) for n in range(5, 7)], max_attempts=1, ttl=0)
    rest = await any_store.claim(worker="w", limit=10, lease=60, tenants=LANES, skip_urgent=True)
    assert [m.priority for m in rest] == [Priority.NORMAL, Priority.BULK, Priority.BULK]
    urgent = await any_store.claim(worker="w", limit=10, lease=60, tenants=LANES)
    assert [m.priority for m in urgent] == [Priority.URGENT] * 3


async def test_tenants_not_named_are_still_claimed(any_store: Store) -> None:
    await any_store.enqueue([lane(1, Priority.BULK, tenant="gone")], max_attempts=1, ttl=0)
    [claimed] = await any_store.claim(worker="w", limit=5, lease=60, tenants=LANES)
    assert claimed.tenant == "gone"


async def test_tenants_not_named_are_found_wherever_they_sort(any_store: Store) -> None:
    # Named: acme and default. Gone: one sorting before, between and after them, and
    # a named tenant's queue in the way of each.
    for n, tenant in enumerate(["aardvark", "acme", "bravo", "default", "zulu", "zulu"]):
        await any_store.enqueue([lane(n, Priority.BULK, tenant=tenant)], max_attempts=1, ttl=0)
    claimed = await any_store.claim(worker="w", limit=10, lease=60, tenants=LANES)
    assert sorted(m.tenant for m in claimed) == [
        "aardvark",
        "acme",
        "bravo",
        "default",
        "zulu",
        "zulu",
    ]


async def test_bulk_keeps_a_share_of_the_window_for_urgent_mail(any_store: Store) -> None:
    limits = [(10, 60.0)]
    taken = 0
    for n in range(12):
        wait = await any_store.take_slot(
            "default", limits, message_id=f"b{n}", lane=Priority.BULK, bulk_share=0.5
        )
        if wait is None:
            taken += 1
        else:
            assert wait.waiting_for is WaitingFor.PRIORITY
    assert taken == 1  # paced: at a 0.5 share of 10 a minute, one bulk slot per 12 s
    # Urgent mail takes what bulk may not.
    for n in range(9):
        urgent = f"u{n}"
        assert await any_store.take_slot("default", limits, message_id=urgent) is None
    full = await any_store.take_slot("default", limits, message_id="late", lane=Priority.NORMAL)
    assert full is not None and full.waiting_for is WaitingFor.RATE_LIMIT


async def test_a_send_on_a_quiet_tenant_leaves_room_for_a_code_every_two_seconds(
    any_store: Store, clock_at: Clock
) -> None:
    # 60 a minute, bulk's share 0.8. Bulk asks for a slot every quarter second from the
    # start, and from 5 s in a code comes every 2 s: nothing leaves the window in that minute,
    # so each code finds room only if bulk left it. (Hand-offs written at once: lease=0.)
    limits = [(60, 60.0)]
    booked, bulk = [], 0
    for step in range(240):
        if step >= 20 and step % 8 == 4:
            wait = await any_store.take_slot("default", limits, message_id=f"c{step}", lease=0)
            if wait is not None:
                booked.append(step / 4)
        wait = await any_store.take_slot(
            "default", limits, message_id=f"b{step}", lane=Priority.BULK, bulk_share=0.8, lease=0
        )
        bulk += wait is None
        clock_at.advance(0.25)
    assert booked == [], f"codes at these seconds found the window full: {booked}"
    assert bulk >= 15, f"bulk took {bulk} slots in the minute"


async def test_an_urgent_message_books_the_next_free_slot(any_store: Store) -> None:
    limits = [(1, 0.5)]
    [(first, _)] = await any_store.enqueue([new(1)], max_attempts=3, ttl=0)
    await any_store.claim(worker="w", limit=1, lease=60)
    assert await any_store.take_slot("default", limits, message_id=first.id) is None
    await any_store.complete([Completion(first.id, Status.SENT)], worker="w")  # handed off
    booked = await any_store.take_slot("default", limits, message_id="code")
    assert booked is not None and booked.waiting_for is WaitingFor.RATE_LIMIT
    await asyncio.sleep((booked.free_at - utcnow()).total_seconds())  # until the booked time
    # The slot that freed is the code's: a normal message asking first does not get it.
    normal = await any_store.take_slot("default", limits, message_id="notice", lane=Priority.NORMAL)
    assert normal is not None
    assert await any_store.take_slot("default", limits, message_id="code") is None


async def test_bulk_messages_live_for_the_bulk_ttl(any_store: Store) -> None:
    rules = within(60, bulk_ttl=7 * 86400)
    [(bulk, _), (code, _)] = await any_store.enqueue(
        [lane(1, Priority.BULK), lane(2, Priority.URGENT)], max_attempts=1, ttl=60, budgets=rules
    )
    assert bulk.expires_at is not None and code.expires_at is not None
    assert (bulk.expires_at - bulk.created_at).days == 7
    assert (code.expires_at - code.created_at).total_seconds() == pytest.approx(60, abs=1)


def code(n: int = 0, *, to: str = "jane@example.org", kind: str = "login_code_valid") -> NewMessage:
    return replace(
        new(n),
        recipient=to,
        template_type=TemplateType(kind),
        priority=Priority.URGENT,
        content_hash=f"{to.lower()}:{kind}:{n}",
    )


FOLD = within(dedupe_window=60)


async def test_the_same_content_within_the_window_folds_into_the_first(any_store: Store) -> None:
    [(first, created)] = await any_store.enqueue([code(1)], max_attempts=1, ttl=0, budgets=FOLD)
    [(again, folded)] = await any_store.enqueue([code(1)], max_attempts=1, ttl=0, budgets=FOLD)
    assert created and not folded
    assert again.id == first.id and again.folded_duplicates == 1
    assert (await any_store.get(first.id)).folded_duplicates == 1
    [(other, made)] = await any_store.enqueue([code(2)], max_attempts=1, ttl=0, budgets=FOLD)
    assert made and other.id != first.id
    # Off (window 0): a new message each time.
    [(_, fresh)] = await any_store.enqueue([code(1)], max_attempts=1, ttl=0)
    assert fresh


async def test_an_abandoned_message_is_never_what_a_duplicate_folds_into(
    any_store: Store,
) -> None:
    [(first, _)] = await any_store.enqueue([code(1)], max_attempts=1, ttl=0, budgets=FOLD)
    await any_store.claim(worker="w", limit=1, lease=60)
    await any_store.complete([Completion(first.id, Status.ABANDONED)], worker="w")
    [(second, created)] = await any_store.enqueue([code(1)], max_attempts=1, ttl=0, budgets=FOLD)
    assert created and second.id != first.id


async def test_concurrent_duplicates_make_one_message(store_dsn: str) -> None:
    stores = [open_store(store_dsn) for _ in range(3)]
    await stores[0].migrate()
    try:
        results = await asyncio.gather(
            *(
                s.enqueue([code(7)], max_attempts=1, ttl=0, budgets=FOLD)
                for s in stores
                for _ in range(10)
            )
        )
        ids = {message.id for [(message, _)] in results}
        assert len(ids) == 1
        assert sum(created for [(_, created)] in results) == 1
        assert (await stores[0].get(ids.pop())).folded_duplicates == 29
    finally:
        for s in stores:
            await s.close()


LIMITS = within(dedupe_window=60, cooldown=30, per_hour=10)


async def test_the_cooldown_refuses_a_second_code_and_says_when(any_store: Store) -> None:
    await any_store.enqueue([code(1)], max_attempts=1, ttl=0, budgets=LIMITS)
    with pytest.raises(RecipientLimitError) as refused:
        await any_store.enqueue(
            [code(2, to="JANE@example.org")], max_attempts=1, ttl=0, budgets=LIMITS
        )
    assert refused.value.limit == "cooldown"
    assert 29 <= refused.value.retry_after <= 30
    assert "courier.recipient_limits.cooldown" in str(refused.value)
    # The same content again is a duplicate, folded before the limit is looked at.
    [(_, created)] = await any_store.enqueue([code(1)], max_attempts=1, ttl=0, budgets=LIMITS)
    assert not created
    # Another template type, another recipient, a test message and bulk mail are not held.
    other_kind = code(3, kind="verification_code_valid")
    for message in (
        other_kind,
        code(4, to="joe@example.org"),
        replace(code(5), template_type=TemplateType.TEST),
    ):
        [(_, made)] = await any_store.enqueue([message], max_attempts=1, ttl=0, budgets=LIMITS)
        assert made
    [(_, made)] = await any_store.enqueue(
        [replace(code(6), priority=Priority.BULK)], max_attempts=1, ttl=0, budgets=LIMITS
    )
    assert made


async def test_the_eleventh_message_in_an_hour_is_refused(any_store: Store) -> None:
    rules = within(per_hour=10)
    for n in range(10):
        await any_store.enqueue([code(n)], max_attempts=1, ttl=0, budgets=rules)
    with pytest.raises(RecipientLimitError) as refused:
        await any_store.enqueue([code(10)], max_attempts=1, ttl=0, budgets=rules)
    assert refused.value.limit == "per_hour"
    assert 3590 <= refused.value.retry_after <= 3600
    [(_, made)] = await any_store.enqueue(
        [code(11, to="joe@example.org")], max_attempts=1, ttl=0, budgets=rules
    )
    assert made
    # Nothing was stored for the refused one.
    assert len(await any_store.list_messages(_jane())) == 10


def _jane() -> MessageFilter:
    return MessageFilter(recipient="jane@example.org", limit=100)


async def test_a_rate_limit_check_counts_in_sql_and_reads_no_rows(tmp_path: Path) -> None:
    store = open_store(f"sqlite:///{tmp_path / 'slots.db'}")
    await store.migrate()
    assert isinstance(store, SqlStore)
    limits = [(1000, 3600.0), (500, 60.0)]
    try:
        for n in range(500):  # a busy window
            await store.take_slot("acme", limits, message_id=f"m{n}", lane=Priority.NORMAL)
        seen: list[str] = []

        def note(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
            seen.append(" ".join(statement.split()))

        event.listen(store._state, "before_cursor_execute", note)
        wait = await store.take_slot("acme", limits, message_id="more", lane=Priority.NORMAL)
        assert wait is not None  # the minute's 500 are taken
    finally:
        await store.close()
    reads = [s for s in seen if s.startswith("SELECT") and "rate_events" in s]
    # One count per window, the message's own booking (one row at most) and the one time
    # that frees the next slot (LIMIT 1): never the window's rows.
    assert sum("count(*)" in s for s in reads) == len(limits)
    assert all("count(*)" in s or "LIMIT" in s or "message_id = ?" in s for s in reads), reads
    assert len(reads) == len(limits) + 2
