"""A worker and the tenants saved through the API: it re-reads them beside its loop (never in
front of a claim), and a message of a tenant saved a moment ago in another process (the
API's) is delivered, not given up as belonging to a tenant the configuration lacks."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from test_postgres_fleet import eventually

from postroom.config import Settings
from postroom.config.tenants import TenantRegistry
from postroom.intake import SendRequest, enqueue
from postroom.models import Status
from postroom.store import open_store
from postroom.worker import Worker

from smtp_servers import smtp_server


async def test_a_worker_delivers_for_a_tenant_another_process_saved_a_moment_ago(
    settings_with: Callable[..., Settings],
) -> None:
    settings = settings_with(serve={"allow_private_targets": True})
    store = open_store(settings.dsn)
    await store.migrate()
    with smtp_server() as srv:
        # The worker's process read the tenants before acme existed, and would not look
        # again for an hour on its own.
        own = TenantRegistry(settings, store, refresh=3600)
        stop = asyncio.Event()
        running = asyncio.create_task(Worker(store, settings, tenants=own).run(stop))
        try:
            await eventually(lambda: not own.invalidated, timeout=10)
            # The API's process saves acme and takes its first message at once.
            api = TenantRegistry(settings, store)
            uri = f"smtp://127.0.0.1:{srv.port}/?disable_starttls=true"
            await api.save("acme", {"smtp": {"connection_uri": uri}})
            request = SendRequest(to="a@example.org", template_type="test", tenant="acme")
            [(message, _)] = await enqueue(store, await api.settings(), [request])
            done = await store.get(message.id)
            for _ in range(200):  # until the worker has been at it (10 s at most)
                if done.status is not Status.QUEUED and done.status is not Status.PROCESSING:
                    break
                await asyncio.sleep(0.05)
                done = await store.get(message.id)
        finally:
            stop.set()
            await running
            await store.close()
    assert done.status is Status.SENT, done.last_error
    assert len(srv.rec.messages) == 1
