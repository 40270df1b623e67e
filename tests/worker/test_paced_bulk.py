"""Bulk mail under a rate limit is claimed a few messages at a time, not a batch at every free
slot: the limit hands out bulk slots one at a time at its share's pace, and all but one of a
batch went straight back to the queue. With 100,000 bulk messages held under 600 a minute,
that was ~800 rows written a second and 40% of a core, for 8 messages a second."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from test_postgres_fleet import eventually, new_message

from postroom.config import Settings
from postroom.models import Message, Priority
from postroom.store import Store
from postroom.worker import Worker

from smtp_servers import smtp_server


class CountingClaims:
    """The store, counting the bulk messages its claims take."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self.bulk_claimed = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    async def claim(self, **how: Any) -> list[Message]:
        claimed = list(await self._store.claim(**how))
        self.bulk_claimed += sum(m.priority is Priority.BULK for m in claimed)
        return claimed


async def test_bulk_under_a_limit_is_claimed_as_it_is_sent(
    store: Store, make_settings: Callable[..., Settings]
) -> None:
    bulk = [replace(new_message(n), priority=Priority.BULK) for n in range(2000)]
    await store.enqueue(bulk, max_attempts=1, ttl=0)
    counting = CountingClaims(store)
    with smtp_server() as srv:
        settings = make_settings(
            smtp={"connection_uri": f"smtp://127.0.0.1:{srv.port}/?disable_starttls=true"},
            rate_limits=[{"count": 600, "per": "1m"}],  # bulk: 8 a second, one every 125 ms
        )
        stop = asyncio.Event()
        worker = Worker(counting, settings, concurrency=8)
        running = asyncio.create_task(worker.run(stop))
        try:
            await eventually(lambda: len(srv.rec.messages) >= 24, timeout=30)
        finally:
            stop.set()
            await running
        sent = len(srv.rec.messages)
    # About one or two claimed per send (a claim may come just before the next paced slot).
    # A full batch at every free slot took ~25 per send, and 96 at the start.
    assert counting.bulk_claimed <= 3 * sent + 8, (counting.bulk_claimed, sent)
