"""A PostgreSQL restart cuts every connection in the store's pools. The worker's verbs do not
ping a connection before each use (a round trip in front of every claim), so the first
statement on a cut connection fails; the verb then runs once more on a fresh connection, and
the worker never sees the cut."""

from __future__ import annotations

import psycopg
import pytest
from store_support import new

from postroom.models import Priority, Status
from postroom.store import Completion, Store


def cut_connections(dsn: str) -> int:
    """End every other session on ``dsn``'s database, as a server restart does."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        cut = conn.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        ).fetchone()
    return int(cut[0]) if cut else 0


@pytest.mark.parametrize("store_dsn", ["postgres"], indirect=True)
async def test_the_workers_verbs_go_on_after_their_connections_were_cut(
    any_store: Store, store_dsn: str
) -> None:
    await any_store.enqueue([new(n) for n in range(4)], max_attempts=1, ttl=0)
    [first] = await any_store.claim(worker="w", limit=1, lease=60)
    assert cut_connections(store_dsn) >= 1

    [second] = await any_store.claim(worker="w", limit=1, lease=60)
    cut_connections(store_dsn)
    await any_store.renew([second.id], worker="w", lease=60)
    cut_connections(store_dsn)
    await any_store.complete([Completion(first.id, Status.SENT)], worker="w")
    cut_connections(store_dsn)
    assert await any_store.take_slot("default", [(10, 60.0)], message_id=second.id) is None
    cut_connections(store_dsn)
    # A look for urgent mail (its own path: no transaction around its one statement).
    urgent = await any_store.claim(
        worker="w", limit=8, lease=60, tenants={"default": 300}, urgent_only=True
    )
    assert [m.priority for m in urgent] == [Priority.URGENT] * 2  # test mail is urgent
    cut_connections(store_dsn)
    await any_store.release([second.id], worker="w")

    assert (await any_store.get(first.id)).status is Status.SENT
    assert (await any_store.get(second.id)).status is Status.QUEUED
