"""The worker: claim -> send -> record, with up to ``concurrency`` sends in flight.

Status writes are batched: completions queue up while the previous write runs, and go to the
store together. Leases are renewed while messages are in flight, so a slow send is not taken
over by another worker; a worker that dies stops renewing, and its messages come back.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import uuid
from collections.abc import Callable

from postroom.clock import utcnow
from postroom.config import Settings
from postroom.config.settings import CourierSettings
from postroom.config.tenants import TenantRegistry
from postroom.metrics import Metrics
from postroom.models import Message, Priority
from postroom.store import Completion, StoreUnavailable
from postroom.transports import Transport
from postroom.worker.attempt import Attempts, WorkerStore
from postroom.worker.lanes import URGENT_PEEK, CodesFirst, Ready, lanes_of
from postroom.worker.outcomes import Outcomes, WorkerStats

log = logging.getLogger("postroom.worker")

POLL_INTERVAL = 1.0  # seconds between polls when nothing wakes us (other processes' enqueues)
PREFETCH = 6  # claimed messages per connection at most: one sending, the others ready
# How long a status update waits for the next claim to carry it before it is written alone.
# Short: a worker that dies before writing makes its unwritten messages go out once more.
WRITE_DELAY = 0.02


class Worker:
    """Delivers due messages from ``store`` through each tenant's transport."""

    def __init__(
        self,
        store: WorkerStore,
        settings: Settings,
        *,
        concurrency: int | None = None,
        transport_factory: Callable[[CourierSettings, int], Transport] | None = None,
        worker_id: str | None = None,
        tenants: TenantRegistry | None = None,
        metrics: Metrics | None = None,
    ) -> None:
        self.store = store
        self.tenants = tenants
        self.metrics = metrics
        self.concurrency = concurrency or settings.courier.worker.concurrency
        self.lease = settings.courier.worker.lease
        self.worker_id = worker_id or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self.attempts = Attempts(
            store,
            settings,
            concurrency=self.concurrency,
            lease=self.lease,
            transport_factory=transport_factory,
            tenants=tenants,
        )
        self.outcomes = Outcomes(store, self.worker_id, metrics)
        self._ready = Ready()  # claimed, not yet started: most urgent first
        self._held: set[str] = set()  # claimed and not finished: ready or being sent
        self._senders: list[asyncio.Task[None]] = []
        self._claims = 0  # claims so far: the writer leaves to a claim what it can carry
        self._nudge = asyncio.Event()  # a send finished, urgent mail came, or a stop
        self._urgent_came = False  # urgent mail was enqueued since the last urgent claim
        self._codes_first = CodesFirst()  # bulk sends and writes pause for a code under way
        self._claiming = False  # the loop's claim is under way
        self._urgent_claim: asyncio.Task[None] | None = None  # one beside the loop's
        self._mixed = False  # the last full claim took less urgent mail too
        self._refresher: asyncio.Task[None] | None = None  # re-reads the API's tenants

    @property
    def settings(self) -> Settings:
        """The settings in use: the tenants as they were at the last refresh."""
        return self.attempts.settings

    @property
    def stats(self) -> WorkerStats:
        """What this run did so far."""
        return self.outcomes.stats

    async def _sender(self, *, bulk: bool) -> None:
        """One of ``concurrency`` loops, each sending one message at a time; without
        ``bulk``, the loop kept free of bulk mail, so that a code never waits for a slow
        provider to take a newsletter first."""
        while True:
            message = await self._ready.get(bulk=bulk)
            try:
                if message.priority is Priority.BULK:
                    await self._codes_first.wait()
                self._finish(await self.attempts.attempt(message), message)
            except Exception:  # an attempt records failures itself; keep the loop alive
                log.exception("message %s: unexpected error", message.id)
            finally:
                self._codes_first.finished(message)
                self._held.discard(message.id)
                self._nudge.set()

    def _finish(self, completion: Completion, message: Message) -> None:
        try:
            courier = self.attempts.route(message.tenant).courier
        except KeyError:  # the tenant is gone
            courier = None
        self.outcomes.finish(completion, message, courier)

    async def _refresh_settings(self) -> None:
        """Pick up tenants changed through the API; reopen the transports of changed ones."""
        if self.tenants is None:
            return
        await self.attempts.use_settings(await self.tenants.settings())

    async def _keep_settings_fresh(self, registry: TenantRegistry) -> None:
        """Re-read the API's tenants beside the loop, not in front of a claim: that read (a
        round trip, two on a busy database) held up every other login code."""
        while True:
            await asyncio.sleep(registry.refresh)
            try:
                await self._refresh_settings()
            except StoreUnavailable as exc:
                log.warning("re-reading the tenants failed, retrying: %s", exc)
            except Exception:
                log.exception("re-reading the tenants failed; retrying")

    async def _writer(self, stop: asyncio.Event) -> None:
        """Write status updates that no claim has carried within ``WRITE_DELAY``."""
        while True:
            await self.outcomes.waiting.wait()
            self.outcomes.waiting.clear()
            if not stop.is_set():
                claims = self._claims
                await self._sleep(stop, WRITE_DELAY)
                await self._codes_first.wait()
                if self._claims != claims and not stop.is_set():
                    # A claim carried what was waiting; wait again for what came since.
                    if self.outcomes.pending:
                        self.outcomes.waiting.set()
                    continue
            try:
                await self.outcomes.flush()
            except Exception:  # the database is busy or gone: keep the batch and try again
                waiting = len(self.outcomes.pending)
                log.exception("writing %d status updates failed; retrying", waiting)
                await asyncio.sleep(0.5)
                self.outcomes.waiting.set()
                continue
            if stop.is_set() and not self._held and not self.outcomes.pending:
                return

    async def _renewer(self) -> None:
        while True:
            await asyncio.sleep(self.lease / 3)
            ids = list(self._held)
            with contextlib.suppress(Exception):
                await self.store.renew(ids, worker=self.worker_id, lease=self.lease)

    def _stocked(self) -> bool:
        """More claimed messages than connections: no claim until a send finishes."""
        return len(self._held) > self.concurrency

    async def _claim_and_start(self) -> int:
        """Keep claimed messages ready so the connections never wait for a claim: once no
        more than ``concurrency`` are left, claim up to ``PREFETCH * concurrency``. The
        claim carries the status writes that are waiting (one transaction for both)."""
        # Stocked: look for urgent mail now and then, not to send a code after the bulk held.
        # Urgent mail enqueued: claim only that first, a short claim (the rest comes next).
        urgent_only = self._stocked() or self._urgent_came
        if urgent_only and not (self._urgent_came or self._ready.time_to_peek()):
            return 0
        self._urgent_came = False
        room = self.concurrency if urgent_only else PREFETCH * self.concurrency - len(self._held)
        done: list[Completion] = []
        if not urgent_only:  # a look for urgent mail stays short: the writer writes these
            await self.outcomes.store_owed()
            done, self.outcomes.pending = self.outcomes.pending, []
            self._claims += 1
        self._claiming = True
        try:
            if urgent_only or not self._mixed:
                return await self._claim(room, urgent_only=urgent_only, completions=done)
            # Less urgent mail is flowing, and a code may come at any time: take the codes in a
            # short claim first, then the rest with the status writes (~10-20 ms on a busy
            # database) without the urgent lane, so that a code enqueued meanwhile is not held
            # by this claim but taken by a short one beside it (_urgent_arrived).
            urgent = await self._claim(room, urgent_only=True, completions=[])
            if urgent >= room and not done:
                return urgent
            return urgent + await self._claim(room - urgent, skip_urgent=True, completions=done)
        except BaseException:
            self.outcomes.pending[:0] = done  # the writer tries them again
            self.outcomes.waiting.set()
            raise
        finally:
            self._claiming = False

    async def _claim(
        self,
        room: int,
        *,
        completions: list[Completion],
        urgent_only: bool = False,
        skip_urgent: bool = False,
    ) -> int:
        """One claim; what it takes is made ready for the senders."""
        begun = self._codes_first.claim_begins()
        claimed = await self.store.claim(
            worker=self.worker_id,
            limit=room,
            lease=self.lease,
            completions=completions,
            tenants=lanes_of(self.settings),
            urgent_only=urgent_only,
            hold_bulk=self.attempts.holds.holding(),
            bulk_caps=self.attempts.bulk_caps(),
            skip_urgent=skip_urgent,
        )
        if not urgent_only:
            self._mixed = any(m.priority is not Priority.URGENT for m in claimed)
        self._codes_first.claimed(claimed, begun)
        for message in claimed:
            self._held.add(message.id)
            self._ready.put(message)
        return len(claimed)

    async def _claim_urgent_now(self) -> None:
        """Urgent mail came while the loop's claim (of a full batch, carrying status
        writes: ~10 ms on a busy database) is under way: claim the code beside it."""
        self._urgent_came = False
        try:
            await self._claim(self.concurrency, urgent_only=True, completions=[])
        except Exception:  # the loop's next round looks again
            log.warning("claiming urgent mail failed; the next round tries again", exc_info=True)
            self._urgent_came = True
            self._nudge.set()
        finally:
            self._urgent_claim = None

    async def _step(self, stop: asyncio.Event, *, drain: bool, deadline: float) -> bool:
        """One round of claiming and waiting; False when a drain is done."""
        loop = asyncio.get_running_loop()
        if self.tenants is not None and self.tenants.invalidated:
            # Before the first claim, and after a tenant was saved in this process (serve).
            await self._refresh_settings()
        if self._refresher is None and self.tenants is not None:
            self._refresher = asyncio.create_task(self._keep_settings_fresh(self.tenants))
        claimed = await self._claim_and_start()
        if self._stocked() or (self._held and not claimed):
            await self._wait_for_room(stop)
            return True
        if claimed:
            return True
        # Nothing due and nothing in flight.
        await self.outcomes.flush()
        due = await self.store.next_due()
        if drain:
            if due is None:
                return False
            wait = (due - utcnow()).total_seconds()
            if loop.time() + max(wait, 0) > deadline:
                return False
            await self._sleep(stop, max(wait, 0.01))
        else:
            wait = POLL_INTERVAL
            if due is not None:
                wait = min(wait, max((due - utcnow()).total_seconds(), 0.01))
            await self._idle(stop, self.attempts.holds.idle_wait(wait))
        return True

    async def run(
        self,
        stop: asyncio.Event | None = None,
        *,
        drain: bool = False,
        max_wait: float = 0.0,
        shutdown_deadline: float = 30.0,
    ) -> WorkerStats:
        """Deliver until ``stop`` is set (or, with ``drain``, until nothing is due).

        With ``drain``, messages whose retry falls due within ``max_wait`` seconds from the
        start are waited for. On stop, no new message is claimed; in-flight sends get
        ``shutdown_deadline`` seconds to finish, and the status of each is written.
        """
        stop = stop or asyncio.Event()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + max_wait
        writer = asyncio.create_task(self._writer(stop))
        renewer = asyncio.create_task(self._renewer())
        stopping = asyncio.create_task(self._nudge_on(stop))
        # With two connections or more, one never takes bulk mail.
        self._senders = [
            asyncio.create_task(self._sender(bulk=index > 0 or self.concurrency == 1))
            for index in range(self.concurrency)
        ]
        unwatch = self.store.on_urgent(self._urgent_arrived)
        try:
            while not stop.is_set():
                try:
                    if not await self._step(stop, drain=drain, deadline=deadline):
                        break
                except StoreUnavailable as exc:
                    # The database went away (restart, failover): keep what is in flight,
                    # and try again shortly; nothing is lost, leases cover the rest.
                    log.warning("the store is unavailable, retrying in 1s: %s", exc)
                    await self._sleep(stop, 1.0)
                except Exception:
                    # Anything else (a bug, one tenant's settings) must not end the worker
                    # while intake keeps accepting messages: log it and carry on.
                    log.exception("the worker's loop failed; retrying in 1s")
                    await self._sleep(stop, 1.0)
        finally:
            unwatch()
            if self._refresher is not None:
                self._refresher.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self._refresher
                self._refresher = None
            if self._urgent_claim is not None:  # what it claims is released below
                await asyncio.gather(self._urgent_claim, return_exceptions=True)
            await self._shutdown(shutdown_deadline)
            stop.set()
            self.outcomes.waiting.set()
            with contextlib.suppress(Exception):
                await writer
            for task in (renewer, stopping):
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            await self.outcomes.flush()
            await self.close()
        return self.stats

    async def _wait_for_room(self, stop: asyncio.Event) -> None:
        """Wait until a send finishes, a stop is asked for, or new work may have arrived."""
        self._nudge.clear()
        if stop.is_set() or self._urgent_came:
            return
        if self._stocked():
            # Only urgent mail is claimed before a send finishes: one event, no task per wait.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._nudge.wait(), URGENT_PEEK)
            return
        stopper = asyncio.create_task(self._nudge.wait())
        waker = asyncio.create_task(self.store.wait(POLL_INTERVAL))
        try:
            await asyncio.wait([stopper, waker], return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopper.cancel()
            waker.cancel()

    def _urgent_arrived(self) -> None:
        """Urgent mail was enqueued: a worker busy with less urgent mail claims it now."""
        self._urgent_came = True
        self._codes_first.noticed()
        self._nudge.set()
        if self._claiming and self._urgent_claim is None:
            self._urgent_claim = asyncio.create_task(self._claim_urgent_now())

    async def _nudge_on(self, stop: asyncio.Event) -> None:
        await stop.wait()
        self._nudge.set()

    async def _idle(self, stop: asyncio.Event, timeout: float) -> None:
        stopper = asyncio.create_task(stop.wait())
        waker = asyncio.create_task(self.store.wait(timeout))
        try:
            await asyncio.wait([stopper, waker], return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopper.cancel()
            waker.cancel()

    async def _sleep(self, stop: asyncio.Event, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), seconds)

    async def _shutdown(self, deadline: float) -> None:
        """Let the sends under way finish within ``deadline``; release everything else."""
        unstarted = []
        for message in self._ready.take_all():
            self._held.discard(message.id)
            unstarted.append(message.id)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(deadline):
                while self._held:  # with the queue emptied, what is held is being sent
                    self._nudge.clear()
                    await self._nudge.wait()
        unstarted += self._held  # still under way at the deadline: cancelled below
        for sender in self._senders:
            sender.cancel()
        await asyncio.gather(*self._senders, return_exceptions=True)
        self._senders = []
        if unstarted:
            with contextlib.suppress(Exception):
                await self.store.release(unstarted, worker=self.worker_id)

    async def close(self) -> None:
        """Close every transport the worker opened."""
        await self.attempts.close()
