"""The memory store's queue role (see :class:`~postroom.store.Queue`)."""

from __future__ import annotations

import copy
import heapq
from collections.abc import Collection, Mapping, Sequence
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

from postroom import clock
from postroom.errors import RecipientLimitError
from postroom.models import (
    Dispatch,
    DispatchStatus,
    Message,
    NewMessage,
    Priority,
    Status,
    TemplateType,
    WaitingFor,
)
from postroom.store.base import (
    Budget,
    Completion,
    SlotWait,
    budgets_of,
    check_unchanged,
    new_id,
    queued_message,
)
from postroom.store.evidence import handoff_values
from postroom.store.lane_rules import (
    BOOKING_EARLY,
    SLOT_LEASE,
    LaneClaim,
    cooldown_error,
    counted,
    per_hour_error,
    pick_lanes,
    slot_wait,
)
from postroom.store.memory.state import MemoryState
from postroom.store.wakeup import carries_urgent


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
        stored: list[Message] = []
        folds: list[Message] = []  # as they were before a duplicate folded into them
        try:
            for index, (new, budget) in enumerate(zip(messages, each, strict=True)):
                if index in found:
                    out.append((found[index], False))
                    continue
                into = self._fold_into(new, budget, start)
                if into is not None:
                    folds.append(into)
                    into = replace(into, folded_duplicates=into.folded_duplicates + 1)
                    self._messages[into.id] = into
                    out.append((into, False))
                    continue
                self._check_limits(new, budget, start)
                # Strictly increasing, so newest-first keeps the order of arrival.
                now = max(start, self._last + timedelta(microseconds=1))
                self._last = now
                copied = replace(new, template_data=copy.deepcopy(new.template_data))
                message = queued_message(
                    copied,
                    created_at=now,
                    due_at=start,
                    max_attempts=budget.max_attempts,
                    ttl=budget.ttl_of(new.priority),
                )
                self._put(message)
                self._dispatches[message.id] = []
                stored.append(message)
                out.append((message, True))
        except RecipientLimitError:  # all or nothing
            for message in stored:
                del self._messages[message.id]
                del self._dispatches[message.id]
            for before in reversed(folds):
                self._messages[before.id] = before
            raise
        # What folded into a message of this batch after it was returned: the final count.
        out = [(self._messages[m.id], False) if not made else (m, made) for m, made in out]
        self._wake.ring(urgent=carries_urgent(messages))
        return out

    def _fold_into(self, new: NewMessage, budget: Budget, now: datetime) -> Message | None:
        if budget.dedupe_window <= 0 or new.content_hash is None or new.idempotency_key:
            return None
        since = now - timedelta(seconds=budget.dedupe_window)
        found = [
            m
            for m in self._messages.values()
            if m.content_hash == new.content_hash
            and m.created_at > since
            and m.status is not Status.ABANDONED
        ]
        return max(found, key=lambda m: m.created_at) if found else None

    def _check_limits(self, new: NewMessage, budget: Budget, now: datetime) -> None:
        if not counted(new, budget):
            return
        who = new.recipient.lower()
        mine = [
            m
            for m in self._messages.values()
            if m.tenant == new.tenant
            and m.recipient.lower() == who
            and m.priority is not Priority.BULK
            and m.template_type is not TemplateType.TEST
            and m.created_at > now - timedelta(hours=1)
        ]
        same = [
            m.created_at
            for m in mine
            if m.template_type is new.template_type
            and m.created_at > now - timedelta(seconds=budget.cooldown)
        ]
        if budget.cooldown > 0 and same:
            raise cooldown_error(new, budget, max(same) + timedelta(seconds=budget.cooldown) - now)
        if budget.per_hour > 0 and len(mine) >= budget.per_hour:
            times = sorted((m.created_at for m in mine), reverse=True)
            oldest = times[budget.per_hour - 1]
            raise per_hour_error(new, budget, oldest + timedelta(hours=1) - now)

    async def claim(
        self,
        *,
        worker: str,
        limit: int,
        lease: float,
        completions: Sequence[Completion] = (),
        tenants: Mapping[str, float] | None = None,
        urgent_only: bool = False,
        hold_bulk: Collection[str] = (),
        skip_urgent: bool = False,
        bulk_caps: Mapping[str, int] | None = None,
    ) -> list[Message]:
        """Record ``completions``; then lease up to ``limit`` messages whose lease ran out,
        then due ones lane by lane, shared between tenants (see ``Queue.claim``)."""
        await self.complete(completions, worker=worker)
        now = clock.utcnow()
        expired = [
            m
            for mid in self._leased
            if (m := self._messages[mid]).lease_until is not None and m.lease_until < now
        ]
        chosen = sorted(expired, key=lambda m: m.lease_until or now)[:limit]
        self._slots_handed_off({m.id for m in chosen}, now)  # the dead holder may have sent
        due: list[Message] = []
        while self._due and self._due[0][0] <= now:
            due_at, _created, mid = heapq.heappop(self._due)
            found = self._messages.get(mid)
            # Entries go stale when a message is claimed, cancelled, deleted or rescheduled.
            if found and found.status is Status.QUEUED and found.next_attempt_at == due_at:
                due.append(found)
        how = LaneClaim(
            tenants or {}, urgent_only, frozenset(hold_bulk), skip_urgent, bulk_caps or {}
        )
        picked = pick_lanes(due, limit - len(chosen), how, now)
        chosen += picked
        taken = {m.id for m in picked}
        for message in due:  # back in the index, for a later claim
            if message.id not in taken and message.next_attempt_at is not None:
                heapq.heappush(self._due, (message.next_attempt_at, message.created_at, message.id))
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
        return sorted(claimed, key=lambda m: (m.priority.rank, m.created_at))

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
        given_back = set()
        for message_id in message_ids:
            if (message := self._held(message_id, worker)) is not None:
                given_back.add(message_id)
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
        self._forget_slots_of(given_back)
        self._wake.ring()

    async def complete(self, completions: Sequence[Completion], *, worker: str) -> None:
        """Record attempts and new statuses."""
        now = clock.utcnow()
        # A hand-off counts from when it was written; a booking given up is nobody's.
        self._slots_handed_off({c.message_id for c in completions if c.attempted}, now)
        self._forget_slots_of({c.message_id for c in completions if c.ends_unsent})
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
                        **handoff_values(c.handoff),
                    )
                )
            self._put(replace(message, **changes))
        if any(c.status is Status.QUEUED for c in completions):
            self._wake.ring()

    async def take_slot(
        self,
        tenant: str,
        limits: Sequence[tuple[int, float]],
        *,
        message_id: str,
        lane: Priority = Priority.URGENT,
        bulk_share: float = 1.0,
        lease: float = SLOT_LEASE,
    ) -> SlotWait | None:
        """Take (or book) a hand-off slot of ``tenant``; see ``Queue.take_slot``."""
        if not limits:
            return None
        now = clock.utcnow()
        seen = now - timedelta(seconds=max(per for _count, per in limits))
        unfinished = now - timedelta(seconds=lease)
        events = self._rate.setdefault(tenant, [])
        events[:] = [e for e in events if e[0] > seen or (e[1] is not None and e[0] > unfinished)]
        wait = slot_wait(
            events, limits, message_id=message_id, lane=lane, share=bulk_share, lease=lease, now=now
        )
        own = next((e for e in events if e[1] == message_id), None)
        if own is not None and own[0] > now + BOOKING_EARLY:
            return wait  # booked, and not due yet: kept as it is
        events[:] = [e for e in events if e[1] != message_id]
        if wait is None:  # taken, or the slot it booked
            events.append(own or (now, message_id, lane))
        elif lane is Priority.URGENT and wait.waiting_for is WaitingFor.RATE_LIMIT:
            events.append((wait.free_at, message_id, lane))  # booked, or booked again
        return wait

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
