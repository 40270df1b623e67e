"""A PostgreSQL restart cuts every connection in the store's pools. The worker's verbs do not
ping a connection before each use (a round trip in front of every claim), so the first
statement on a cut connection fails; the verb then runs once more on a fresh connection, and
the worker never sees the cut."""

from __future__ import annotations

from collections.abc import AsyncIterator

import psycopg
import pytest
from store_support import new

from postroom.models import Priority, Status
from postroom.store import Completion, Store, open_store


@pytest.fixture
async def pg_store(pg_dsn: str) -> AsyncIterator[Store]:
    store = open_store(pg_dsn)
    await store.migrate()
    yield store
    await store.close()


def cut_connections(dsn: str) -> int:
    """End every other session on ``dsn``'s database, as a server restart does."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        cut = conn.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        ).fetchone()
    return int(cut[0]) if cut else 0


async def test_the_workers_verbs_go_on_after_their_connections_were_cut(
    pg_store: Store, pg_dsn: str
) -> None:
    await pg_store.enqueue([new(n) for n in range(4)], max_attempts=1, ttl=0)
    [first] = await pg_store.claim(worker="w", limit=1, lease=60)
    assert cut_connections(pg_dsn) >= 1

    [second] = await pg_store.claim(worker="w", limit=1, lease=60)
    cut_connections(pg_dsn)
    await pg_store.renew([second.id], worker="w", lease=60)
    cut_connections(pg_dsn)
    await pg_store.complete([Completion(first.id, Status.SENT)], worker="w")
    cut_connections(pg_dsn)
    assert await pg_store.take_slot("default", [(10, 60.0)], message_id=second.id) is None
    cut_connections(pg_dsn)
    # A look for urgent mail (its own path: no transaction around its one statement).
    urgent = await pg_store.claim(
        worker="w", limit=8, lease=60, tenants={"default": 300}, urgent_only=True
    )
    assert [m.priority for m in urgent] == [Priority.URGENT] * 2  # test mail is urgent
    cut_connections(pg_dsn)
    await pg_store.release([second.id], worker="w")

    assert (await pg_store.get(first.id)).status is Status.SENT
    assert (await pg_store.get(second.id)).status is Status.QUEUED
