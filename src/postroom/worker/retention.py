"""Retention: sent and abandoned messages older than ``courier.retention`` are deleted, so
login codes do not live in the database forever. Deleted in small batches, each its own
transaction, so the worker's claims and status writes get their turn in between."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta

from postroom.clock import utcnow
from postroom.config import Settings
from postroom.store import Records

log = logging.getLogger("postroom.retention")

IDEMPOTENCY_WINDOW = timedelta(hours=24)  # a key keeps answering with its message this long
BATCH = 500


async def cleanup(store: Records, settings: Settings, *, older_than: float | None = None) -> int:
    """Delete finished messages past each tenant's retention (or ``older_than`` seconds for
    all); return how many went. Messages with an idempotency key stay at least 24 hours."""
    now = utcnow()
    keep_keyed_since = now - IDEMPOTENCY_WINDOW
    total = 0
    plan: list[tuple[str | None, float]]
    if older_than is not None:
        plan = [(None, older_than)]
    else:
        plan = [(name, settings.tenant(name).retention) for name in settings.tenant_names()]
    for tenant, retention in plan:
        before = now - timedelta(seconds=retention)
        total += await _delete_all(store, tenant, before, keep_keyed_since)
    if older_than is None:
        # Tenants no longer configured: gone once older than the longest retention.
        longest = max(retention for _tenant, retention in plan)
        total += await _delete_all(store, None, now - timedelta(seconds=longest), keep_keyed_since)
    return total


async def _delete_all(
    store: Records, tenant: str | None, before: datetime, keep_keyed_since: datetime
) -> int:
    total = 0
    while True:
        deleted = await store.delete_finished(
            before=before, tenant=tenant, keep_keyed_since=keep_keyed_since, batch=BATCH
        )
        total += deleted
        if deleted < BATCH:
            return total
        await asyncio.sleep(0)  # let the worker in between batches


async def run_daily(
    store: Records, settings: Callable[[], Awaitable[Settings]], stop: asyncio.Event
) -> None:
    """Clean up at start and then every 24 hours until ``stop``, with the settings (file and
    API tenants) of the day."""
    while not stop.is_set():
        try:
            deleted = await cleanup(store, await settings())
            if deleted:
                log.info("retention: deleted %d finished messages", deleted)
        except Exception:
            log.exception("retention cleanup failed; it runs again tomorrow")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=24 * 3600)
