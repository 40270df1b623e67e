"""A code is not held up by the worker's own bulk work: it is claimed beside a batch claim
that is slow (a busy database), a batch claim under way does not take it, and bulk sends wait
while it is on its way."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from typing import Any

import pytest
from test_postgres_fleet import eventually, new_message

from postroom.config import Settings
from postroom.config.tenants import TenantRegistry
from postroom.models import Message, Priority
from postroom.store import Store, open_store
from postroom.worker import Worker
from postroom.worker.lanes import URGENT_PAUSE, CodesFirst

from smtp_servers import smtp_server


class SlowBatchClaims:
    """The store, with every claim of a full batch taking ``delay`` seconds longer (as on a
    database busy with the bulk stream's status writes); looks for urgent mail do not."""

    def __init__(self, store: Store, delay: float) -> None:
        self._store = store
        self.delay = delay
        self.in_batch_claim = asyncio.Event()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    async def claim(self, **how: Any) -> list[Message]:
        if not how.get("urgent_only"):
            self.in_batch_claim.set()
            try:
                await asyncio.sleep(self.delay)  # the busy database this store stands for
            finally:
                self.in_batch_claim.clear()
        return list(await self._store.claim(**how))


@contextlib.asynccontextmanager
async def bulk_worker(
    store: Store, wrapped: Any, make_settings: Callable[..., Settings]
) -> AsyncIterator[Any]:
    """100 bulk messages queued in ``store``; a worker of two connections claims through
    ``wrapped`` and sends to a test server, which is yielded."""
    bulk = [replace(new_message(n), priority=Priority.BULK) for n in range(100)]
    await store.enqueue(bulk, max_attempts=1, ttl=0)
    with smtp_server() as srv:
        uri = f"smtp://127.0.0.1:{srv.port}/?disable_starttls=true"
        stop = asyncio.Event()
        worker = Worker(wrapped, make_settings(smtp={"connection_uri": uri}), concurrency=2)
        running = asyncio.create_task(worker.run(stop))
        try:
            yield srv
        finally:
            stop.set()
            await running


async def code_wait(srv: Any, enqueued: float) -> float:
    """Seconds from ``enqueued`` until the code (message 1,000,000) reached the server."""
    await eventually(
        lambda: any(b"code 1000000" in m.content for m in srv.rec.messages), timeout=10
    )
    [arrived] = [m.received_at for m in srv.rec.messages if b"code 1000000" in m.content]
    return float(arrived - enqueued)


async def test_a_code_is_claimed_beside_a_slow_batch_claim(
    store: Store, make_settings: Callable[..., Settings]
) -> None:
    slow = SlowBatchClaims(store, delay=2.0)
    async with bulk_worker(store, slow, make_settings) as srv:
        # The first batch is out; the worker is inside its next batch claim.
        await eventually(lambda: len(srv.rec.messages) >= 12, timeout=30)
        await eventually(slow.in_batch_claim.is_set, timeout=30)
        code = replace(new_message(1_000_000), priority=Priority.URGENT)
        await store.enqueue([code], max_attempts=1, ttl=0)
        waited = await code_wait(srv, time.monotonic())
        # Claimed beside the batch claim, not after its two seconds.
        assert waited < 1.0, f"the code waited {waited:.2f}s"
        assert slow.in_batch_claim.is_set(), "the batch claim ended before the code went"


class CodeDuringSlowBatchWrites:
    """The store, where a code is enqueued while the worker's second batch claim reads the
    lanes, and that claim's writes then take ``delay`` seconds (a busy database)."""

    def __init__(self, store: Store, delay: float) -> None:
        self._store = store
        self.delay = delay
        self.batch_claims = 0
        self.code = replace(new_message(1_000_000), priority=Priority.URGENT)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    async def claim(self, **how: Any) -> list[Message]:
        if how.get("urgent_only"):
            return list(await self._store.claim(**how))
        self.batch_claims += 1
        if self.batch_claims == 2:
            await self._store.enqueue([self.code], max_attempts=1, ttl=0)
        claimed = list(await self._store.claim(**how))
        if self.batch_claims == 2:
            await asyncio.sleep(self.delay)  # the writes of a busy database
        return claimed


async def test_a_code_enqueued_during_a_batch_claim_does_not_wait_for_its_writes(
    store: Store, make_settings: Callable[..., Settings]
) -> None:
    slow = CodeDuringSlowBatchWrites(store, delay=2.0)
    async with bulk_worker(store, slow, make_settings) as srv:
        await eventually(lambda: slow.batch_claims >= 2, timeout=30)
        waited = await code_wait(srv, time.monotonic())
        # Left to a short claim beside the batch claim, not taken by it and held 2 s.
        assert waited < 1.0, f"the code waited {waited:.2f}s"


class SlowTenantsRead:
    """The store, where reading the API tenants' version takes ``delay`` seconds (a busy
    database); ``reading`` is set while a read is under way."""

    def __init__(self, store: Store, delay: float) -> None:
        self._store = store
        self.delay = delay
        self.reads = 0
        self.reading = asyncio.Event()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    async def tenants_version(self) -> Any:
        self.reads += 1
        self.reading.set()
        try:
            await asyncio.sleep(self.delay)
        finally:
            self.reading.clear()
        return await self._store.tenants_version()


async def test_a_code_does_not_wait_for_the_workers_read_of_the_tenants(
    store: Store, make_settings: Callable[..., Settings], caplog: pytest.LogCaptureFixture
) -> None:
    slow = SlowTenantsRead(store, delay=1.0)
    with smtp_server() as srv:
        settings = make_settings(
            smtp={"connection_uri": f"smtp://127.0.0.1:{srv.port}/?disable_starttls=true"}
        )
        tenants = TenantRegistry(settings, slow, refresh=0.1)
        stop = asyncio.Event()
        worker = Worker(slow, settings, concurrency=2, tenants=tenants)
        running = asyncio.create_task(worker.run(stop))
        try:
            # The first read is done before the first claim; a later one is under way.
            await eventually(lambda: slow.reads >= 2 and slow.reading.is_set(), timeout=10)
            code = replace(new_message(1_000_000), priority=Priority.URGENT)
            await store.enqueue([code], max_attempts=1, ttl=0)
            waited = await code_wait(srv, time.monotonic())
            # (The worker's log says why, should it ever wait: it failed once in CI, 1.15 s.)
            assert waited < 0.5, f"the code waited {waited:.2f}s; log: {caplog.text[-3000:]}"
            assert slow.reading.is_set(), "the read ended before the code went"
        finally:
            stop.set()
            await running


async def urgent_message() -> Message:
    store = open_store(f"memory://{uuid.uuid4().hex}")
    await store.enqueue([replace(new_message(1), priority=Priority.URGENT)], max_attempts=1, ttl=0)
    [message] = await store.claim(worker="w", limit=1, lease=60)
    await store.close()
    return message


async def test_bulk_waits_until_a_noticed_code_is_claimed_and_sent() -> None:
    code = await urgent_message()
    gate = CodesFirst()
    early = gate.claim_begins()  # a claim under way before the code was enqueued
    gate.noticed()
    bulk = asyncio.create_task(gate.wait())
    gate.claimed([], early)  # it could not have seen the code: still waiting
    await asyncio.sleep(0)
    assert not bulk.done()
    gate.claimed([code], gate.claim_begins())  # claimed, being sent: still waiting
    await asyncio.sleep(0)
    assert not bulk.done()
    gate.finished(code)
    await asyncio.wait_for(bulk, 0.05)


async def test_bulk_waits_no_longer_than_the_pause_for_a_slow_code() -> None:
    code = await urgent_message()
    gate = CodesFirst()
    gate.noticed()
    gate.claimed([code], gate.claim_begins())  # and its provider never answers
    start = time.monotonic()
    await asyncio.wait_for(gate.wait(), 1.0)
    assert URGENT_PAUSE * 0.9 <= time.monotonic() - start < URGENT_PAUSE + 0.3
    start = time.monotonic()
    await gate.wait()  # the pause is over: the next bulk send does not wait again
    assert time.monotonic() - start < URGENT_PAUSE / 2
