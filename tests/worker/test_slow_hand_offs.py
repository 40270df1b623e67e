"""A rate limit against a provider whose answers take longer than the limit's window: the
provider counts a message when it arrives, so a slot is not free again until the message it
was taken for has been handed over, however long that takes."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from test_postgres_fleet import eventually

from postroom.config import Settings
from postroom.intake import SendRequest, enqueue
from postroom.models import Status
from postroom.store import MessageFilter, open_store
from postroom.worker import Worker

from smtp_servers import smtp_server


async def test_a_slot_is_not_free_until_its_slow_hand_off_arrives(
    sql_dsn: str, settings_with: Callable[..., Settings]
) -> None:
    # 2 a second; the provider takes 1.5 s over the first two messages, then answers at once.
    # Were the first two slots free after a window, the next two would overtake them and
    # four would arrive within one second.
    slow_first_two = {"DATA": lambda _rec, n: "DELAY 1.5" if n <= 2 else None}
    with smtp_server(faults=slow_first_two) as srv:
        settings = settings_with(
            dsn=sql_dsn,
            courier={
                "smtp": {
                    "connection_uri": f"smtp://127.0.0.1:{srv.port}/?disable_starttls=true",
                    "from_address": "no-reply@example.org",
                },
                "rate_limits": [{"count": 2, "per": "1s"}],
            },
        )
        store = open_store(settings.dsn)
        await store.migrate()
        try:
            requests = [SendRequest(to=f"u{n}@example.org", template_type="test") for n in range(6)]
            await enqueue(store, settings, requests)
            stop = asyncio.Event()
            running = asyncio.create_task(Worker(store, settings).run(stop))
            try:
                await eventually(lambda: len(srv.rec.messages) == 6, timeout=30)
            finally:
                stop.set()
                await running
            done = await store.list_messages(MessageFilter(limit=10))
        finally:
            await store.close()
    assert [m.status for m in done] == [Status.SENT] * 6
    arrivals = sorted(m.received_at for m in srv.rec.messages)
    assert len(arrivals) == 6
    for i, start in enumerate(arrivals):
        within = [t for t in arrivals[i:] if t < start + 1.0]
        assert len(within) <= 2, f"{len(within)} arrived within one second: {arrivals}"
