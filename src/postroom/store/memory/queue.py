"""The memory store's queue role (see :class:`~postroom.store.Queue`)."""

from __future__ import annotations

import copy
import heapq
from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

from postroom import clock
from postroom.models import Dispatch, DispatchStatus, Message, NewMessage, Status
from postroom.store.base import (
    Budget,
    Completion,
    budgets_of,
    check_unchanged,
    new_id,
    queued_message,
    slot_free_at,
)
from postroom.store.memory.state import MemoryState


class MemoryQueue(MemoryState):
    """The queue verbs in a dict."""

    async def enqueue(
        self,
        messages: Sequence[NewMessage],
        *,
        max_attempts: int,
        ttl: float,
        budgets: Mapping[str, Budget] | None = None,
        refuse_changed: bool = False,
    ) -> list[tuple[Message, bool]]:
        """Store messages (all or nothing); an existing (tenant, idempotency key) returns the
        earlier one, or with ``refuse_changed`` refuses a changed request before storing any."""
        found: dict[int, Message] = {}
        for index, new in enumerate(messages):
            if new.idempotency_key is not None:
                key = (new.tenant, new.idempotency_key)
                existing = next(
                    (m for m in self._messages.values() if (m.tenant, m.idempotency_key) == key),
                    None,
                )
                if existing is not None:
                    if refuse_changed:
                        check_unchanged(new, existing)
                    found[index] = existing
        start = clock.utcnow()
        each = budgets_of(messages, max_attempts=max_attempts, ttl=ttl, budgets=budgets)
        out: list[tuple[Message, bool]] = []
        for index, (new, budget) in enumerate(zip(messages, each, strict=True)):
            if index in found:
                out.append((found[index], False))
                continue
            # Strictly increasing, so newest-first keeps the order of arrival.
            now = max(start, self._last + timedelta(microseconds=1))
            self._last = now
            copied = replace(new, template_data=copy.deepcopy(new.template_data))
            message = queued_message(
                copied,
                created_at=now,
                due_at=start,
                max_attempts=budget.max_attempts,
                ttl=budget.ttl,
            )
            self._put(message)
            self._dispatches[message.id] = []
            out.append((message, True))
        self._wake.set()
        return out

    async def claim(
        self,
        *,
        worker: str,
        limit: int,
        lease: float,
        completions: Sequence[Completion] = (),
    ) -> list[Message]:
        """Record ``completions``; then lease up to ``limit`` messages whose lease ran out,
        then due ones, oldest first."""
        await self.complete(completions, worker=worker)
        now = clock.utcnow()
        expired = [
            m
            for mid in self._leased
            if (m := self._messages[mid]).lease_until is not None and m.lease_until < now
        ]
        chosen = sorted(expired, key=lambda m: m.lease_until or now)[:limit]
        while self._due and len(chosen) < limit and self._due[0][0] <= now:
            due_at, _created, mid = heapq.heappop(self._due)
            found = self._messages.get(mid)
            # Entries go stale when a message is claimed, cancelled, deleted or rescheduled.
            if found and found.status is Status.QUEUED and found.next_attempt_at == due_at:
                chosen.append(found)
        claimed = []
        for message in chosen:
            leased = replace(
                message,
                reclaimed_from=message.lease_owner,
                status=Status.PROCESSING,
                lease_owner=worker,
                lease_until=now + timedelta(seconds=lease),
                waiting_for=None,
                updated_at=now,
            )
            self._put(leased)
            claimed.append(leased)
        return sorted(claimed, key=lambda m: m.created_at)

    def _held(self, message_id: str, worker: str) -> Message | None:
        message = self._messages.get(message_id)
        if message and message.status is Status.PROCESSING and message.lease_owner == worker:
            return message
        return None

    async def renew(self, message_ids: Sequence[str], *, worker: str, lease: float) -> None:
        """Extend the leases this worker holds."""
        until = clock.utcnow() + timedelta(seconds=lease)
        for message_id in message_ids:
            if (message := self._held(message_id, worker)) is not None:
                self._put(replace(message, lease_until=until))

    async def release(self, message_ids: Sequence[str], *, worker: str) -> None:
        """Give back leased messages, due now."""
        now = clock.utcnow()
        for message_id in message_ids:
            if (message := self._held(message_id, worker)) is not None:
                self._put(
                    replace(
                        message,
                        status=Status.QUEUED,
                        lease_owner=None,
                        lease_until=None,
                        next_attempt_at=now,
                        updated_at=now,
                    )
                )
        self._wake.set()

    async def complete(self, completions: Sequence[Completion], *, worker: str) -> None:
        """Record attempts and new statuses."""
        now = clock.utcnow()
        attempted = {c.message_id for c in completions if c.attempted}
        if attempted:  # a hand-off counts from when it happened, not from its slot
            for events in self._rate.values():
                events[:] = [(now, None) if mid in attempted else (t, mid) for t, mid in events]
        for c in completions:
            message = self._messages[c.message_id]
            changes: dict[str, Any] = {
                "status": c.status,
                "updated_at": now,
                "lease_owner": None,
                "lease_until": None,
                "next_attempt_at": c.next_attempt_at,
                "waiting_for": c.waiting_for,
                "reclaimed_from": None,
            }
            if c.error is not None:
                changes["last_error"] = c.error
            if c.attempted:
                changes["send_count"] = message.send_count + 1
                status = DispatchStatus.FAILED if c.error else DispatchStatus.SUCCESS
                self._dispatches[c.message_id].append(
                    Dispatch(
                        new_id(),
                        c.message_id,
                        status,
                        c.error,
                        now,
                        now,
                        reclaimed_from=c.reclaimed_from,
                    )
                )
            self._put(replace(message, **changes))
        if any(c.status is Status.QUEUED for c in completions):
            self._wake.set()

    async def take_slot(
        self, tenant: str, limits: Sequence[tuple[int, float]], *, message_id: str
    ) -> datetime | None:
        """Take a hand-off slot of ``tenant`` under ``limits``."""
        if not limits:
            return None
        now = clock.utcnow()
        longest = max(per for _count, per in limits)
        events = self._rate.setdefault(tenant, [])
        events[:] = [e for e in events if e[0] > now - timedelta(seconds=longest)]
        free_at = slot_free_at(sorted((e[0] for e in events), reverse=True), limits, now)
        if free_at is None:
            events.append((now, message_id))
        return free_at

    async def next_due(self) -> datetime | None:
        """The earliest next attempt or lease expiry."""
        times = [
            m.next_attempt_at
            for m in self._messages.values()
            if m.status is Status.QUEUED and m.next_attempt_at
        ] + [
            m.lease_until
            for m in self._messages.values()
            if m.status is Status.PROCESSING and m.lease_until
        ]
        return min(times) if times else None

    async def count_pending(self) -> int:
        """Queued or processing."""
        return sum(m.status in (Status.QUEUED, Status.PROCESSING) for m in self._messages.values())
