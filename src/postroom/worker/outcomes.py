"""What finished attempts leave behind: the completions waiting to be written, the
``message.sent`` / ``message.abandoned`` webhooks owed (stored before the statuses, so a crash
between the two never loses one), the run's counts and the metrics."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, replace

from postroom.clock import utcnow
from postroom.config.settings import CourierSettings
from postroom.events.webhooks import finished_webhooks
from postroom.metrics import Metrics
from postroom.models import Message, Status
from postroom.store import Completion
from postroom.store.events_base import WebhookDelivery
from postroom.store.records import events_of
from postroom.worker.attempt import WorkerStore


@dataclass(slots=True)
class WorkerStats:
    """What a run did; printed by ``worker --drain``."""

    sent: int = 0
    retried: int = 0
    abandoned: int = 0


class Outcomes:
    """The completions and webhooks of finished attempts, until the store has them."""

    def __init__(self, store: WorkerStore, worker_id: str, metrics: Metrics | None) -> None:
        self.store = store
        self.worker_id = worker_id
        self.metrics = metrics
        self.pending: list[Completion] = []
        self.owed: list[WebhookDelivery] = []  # webhooks of finished messages, unstored
        self.waiting = asyncio.Event()  # set when a completion waits to be written
        self.stats = WorkerStats()

    def finish(
        self, completion: Completion, message: Message, courier: CourierSettings | None
    ) -> None:
        """Count ``completion`` and queue it (and its webhooks) for the store; ``courier`` is
        the message's tenant's settings, None when the tenant is gone."""
        if message.reclaimed_from and completion.attempted:
            completion = replace(completion, reclaimed_from=message.reclaimed_from)
        if courier is not None and completion.status in (Status.SENT, Status.ABANDONED):
            self.owed += finished_webhooks(courier, message, completion, now=utcnow())
        if self.metrics is not None:
            self._observe(completion, message, courier)
        if completion.status is Status.SENT:
            self.stats.sent += 1
        elif completion.status is Status.QUEUED:
            self.stats.retried += 1
        else:
            self.stats.abandoned += 1
        self.pending.append(completion)
        self.waiting.set()

    def _observe(
        self, completion: Completion, message: Message, courier: CourierSettings | None
    ) -> None:
        assert self.metrics is not None
        if not completion.attempted and completion.error is None:
            return  # held back by a rate limit: not an attempt
        transport = courier.strategy if courier is not None else "none"
        result = {Status.SENT: "sent", Status.QUEUED: "retry"}.get(completion.status, "abandoned")
        code = completion.error.code if completion.error else "ok"
        self.metrics.dispatches.labels(message.tenant, transport, result, code).inc()
        if completion.status is Status.SENT:
            waited = (utcnow() - message.created_at).total_seconds()
            self.metrics.handoff.labels(message.tenant).observe(waited)

    async def store_owed(self) -> None:
        """Store the webhooks owed for finished messages before their statuses are written,
        so that a crash between the two never loses a webhook."""
        if self.owed:
            owed_now, self.owed = self.owed, []
            try:
                await events_of(self.store).add_deliveries(owed_now)
            except BaseException:
                self.owed[:0] = owed_now
                raise

    async def flush(self) -> None:
        """Write the owed webhooks, then every waiting completion; kept on failure."""
        await self.store_owed()
        while self.pending:
            batch, self.pending = self.pending, []
            try:
                await self.store.complete(batch, worker=self.worker_id)
            except BaseException:
                self.pending[:0] = batch
                raise
