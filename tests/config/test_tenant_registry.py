"""The API's tenants as one process sees them: its first read goes to the store whatever the
refresh interval, and a save in the process makes the next read go to the store again."""

from __future__ import annotations

import time
from collections.abc import Callable

from postroom.config import Settings
from postroom.config.tenants import TenantRegistry
from postroom.store import Store

URI = "smtp://mail.example.org:587/"


async def test_the_first_read_goes_to_the_store_on_a_machine_booted_a_moment_ago(
    store: Store, settings_with: Callable[..., Settings]
) -> None:
    """The monotonic clock starts near zero at boot. A worker started then, with a refresh
    longer than the machine's uptime, must still read the tenants saved through the API."""
    await TenantRegistry(settings_with(), store).save("acme", {"smtp": {"connection_uri": URI}})
    booted_a_moment_ago = time.monotonic() + 3600  # a refresh longer than the uptime
    worker = TenantRegistry(settings_with(), store, refresh=booted_a_moment_ago)
    assert worker.invalidated
    assert "acme" in (await worker.settings()).tenant_names()
    assert not worker.invalidated


async def test_a_save_in_the_process_makes_the_next_read_go_to_the_store(
    store: Store, settings_with: Callable[..., Settings]
) -> None:
    registry = TenantRegistry(settings_with(), store, refresh=3600)
    assert "acme" not in (await registry.settings()).tenant_names()
    await registry.save("acme", {"smtp": {"connection_uri": URI}})
    assert registry.invalidated
    assert "acme" in (await registry.settings()).tenant_names()
