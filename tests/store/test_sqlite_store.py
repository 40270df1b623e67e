"""The SQLite store: durable enqueue, atomic claiming with leases, idempotency, listing."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path

from postroom.models import Diagnosis, NewMessage, Status, TemplateType, WaitingFor
from postroom.store import Completion, MessageFilter, Store, open_store, utcnow


def new(n: int = 0, *, key: str | None = None, tenant: str = "default") -> NewMessage:
    return NewMessage(
        tenant=tenant,
        recipient=f"user{n}@example.org",
        template_type=TemplateType.TEST,
        template_data={"to": f"user{n}@example.org"},
        subject=f"subject {n}",
        body="body",
        html_body=None,
        mime=b"Subject: x\r\n\r\nbody\r\n",
        idempotency_key=key,
        request_hash=f"hash{n}",
    )


async def test_claim_leases_due_messages_once(store: Store) -> None:
    await store.enqueue([new(n) for n in range(5)], max_attempts=3, ttl=0)
    first = await store.claim(worker="a", limit=3, lease=60)
    second = await store.claim(worker="b", limit=10, lease=60)
    assert len(first) == 3 and len(second) == 2
    assert {m.id for m in first}.isdisjoint({m.id for m in second})
    assert all(m.status is Status.PROCESSING and m.lease_owner == "a" for m in first)
    assert await store.claim(worker="c", limit=10, lease=60) == []


async def test_an_expired_lease_makes_a_message_claimable_again(store: Store) -> None:
    [(message, _)] = await store.enqueue([new()], max_attempts=3, ttl=0)
    [claimed] = await store.claim(worker="dead", limit=1, lease=0.2)
    assert claimed.id == message.id
    assert await store.claim(worker="b", limit=1, lease=60) == []
    await asyncio.sleep(0.3)
    [again] = await store.claim(worker="b", limit=1, lease=60)
    assert again.id == message.id and again.lease_owner == "b"


async def test_renew_keeps_the_lease_alive(store: Store) -> None:
    await store.enqueue([new()], max_attempts=3, ttl=0)
    [claimed] = await store.claim(worker="a", limit=1, lease=0.3)
    for _ in range(3):
        await asyncio.sleep(0.15)
        await store.renew([claimed.id], worker="a", lease=0.3)
    assert await store.claim(worker="b", limit=1, lease=60) == []


async def test_release_returns_unstarted_messages(store: Store) -> None:
    await store.enqueue([new()], max_attempts=3, ttl=0)
    [claimed] = await store.claim(worker="a", limit=1, lease=60)
    await store.release([claimed.id], worker="a")
    [again] = await store.claim(worker="b", limit=1, lease=60)
    assert again.id == claimed.id


async def test_two_stores_on_one_file_never_claim_the_same_message(tmp_path: Path) -> None:
    dsn = f"sqlite:///{tmp_path / 'shared.db'}"
    one, two = open_store(dsn), open_store(dsn)
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


async def test_complete_records_a_dispatch_per_attempt(store: Store) -> None:
    [(message, _)] = await store.enqueue([new()], max_attempts=3, ttl=0)
    await store.claim(worker="w", limit=1, lease=60)
    error = Diagnosis("server_unavailable", True, "cause", "fix", stage="connect", reply="421 x")
    later = utcnow() + timedelta(minutes=5)
    await store.complete(
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
    waiting = await store.get(message.id)
    assert waiting.status is Status.QUEUED and waiting.send_count == 1
    assert waiting.waiting_for is WaitingFor.BACKOFF and waiting.last_error == error
    assert await store.claim(worker="w", limit=1, lease=60) == []  # not due yet
    assert await store.next_due() == later
    # An expiry abandons without an attempt: no dispatch row, send_count unchanged.
    expired = Diagnosis("expired", False, "c", "f")
    await store.complete(
        [Completion(message.id, Status.ABANDONED, expired, attempted=False)], worker="w"
    )
    done = await store.get(message.id)
    assert done.status is Status.ABANDONED and done.send_count == 1
    assert len(done.dispatches) == 1 and done.last_error == expired


async def test_idempotency_key_is_scoped_to_the_tenant(store: Store) -> None:
    [(a, created_a)] = await store.enqueue([new(1, key="k")], max_attempts=3, ttl=0)
    [(b, created_b)] = await store.enqueue([new(2, key="k")], max_attempts=3, ttl=0)
    [(c, created_c)] = await store.enqueue([new(3, key="k", tenant="acme")], max_attempts=3, ttl=0)
    assert created_a and not created_b and created_c
    assert a.id == b.id != c.id


async def test_list_is_newest_first_with_filters_and_keyset_pages(store: Store) -> None:
    for n in range(7):
        await store.enqueue([new(n, tenant="acme" if n % 2 else "default")], max_attempts=1, ttl=0)
    everything = await store.list_messages(MessageFilter(limit=100))
    assert [m.recipient for m in everything] == [f"user{n}@example.org" for n in reversed(range(7))]
    acme = await store.list_messages(MessageFilter(tenant="acme"))
    assert {m.tenant for m in acme} == {"acme"} and len(acme) == 3
    page1 = await store.list_messages(MessageFilter(limit=3))
    last = page1[-1]
    page2 = await store.list_messages(MessageFilter(limit=3, before=(last.created_at, last.id)))
    assert [m.id for m in page1 + page2] == [m.id for m in everything[:6]]


async def test_ttl_sets_the_expiry(store: Store) -> None:
    [(message, _)] = await store.enqueue([new()], max_attempts=1, ttl=3600)
    assert message.expires_at is not None
    assert abs((message.expires_at - message.created_at).total_seconds() - 3600) < 1
    [(forever, _)] = await store.enqueue([new(1)], max_attempts=1, ttl=0)
    assert forever.expires_at is None
