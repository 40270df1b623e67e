"""The memory store's records role (see :class:`~postroom.store.Records`)."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta

from postroom import clock
from postroom.errors import ConflictError, NotFoundError
from postroom.models import Diagnosis, Message, Status
from postroom.store.base import (
    Activity,
    ActivityCount,
    FailureCount,
    MessageFilter,
    activity_edges,
)
from postroom.store.lane_rules import summarise
from postroom.store.memory.state import MemoryState
from postroom.store.search import id_matches, recipient_matches


class MemoryRecords(MemoryState):
    """The records verbs in a dict."""

    async def get(self, message_id: str) -> Message:
        """One message with its dispatches, newest first."""
        message = self._messages.get(message_id)
        if message is None:
            raise NotFoundError(f"no message with id {message_id}")
        return replace(message, dispatches=tuple(reversed(self._dispatches[message_id])))

    async def list_messages(self, query: MessageFilter) -> list[Message]:
        """Newest first, filtered, keyset-paged."""
        rows = [
            m
            for m in self._messages.values()
            if (query.status is None or m.status is query.status)
            and (query.recipient is None or recipient_matches(m.recipient, query.recipient))
            and (query.id_fragment is None or id_matches(m.id, query.id_fragment))
            and (query.tenant is None or m.tenant == query.tenant)
            and (query.template_type is None or m.template_type.value == query.template_type)
            and (query.priority is None or m.priority is query.priority)
            and (query.before is None or (m.created_at, m.id) < query.before)
            and (
                query.provider_message_id is None
                or any(
                    d.provider_message_id == query.provider_message_id
                    for d in self._dispatches[m.id]
                )
            )
        ]
        rows.sort(key=lambda m: (m.created_at, m.id), reverse=True)
        return rows[: query.limit]

    async def retry(self, message_id: str, *, attempts: int, ttl: float) -> Message:
        """Queue an abandoned message again with a fresh budget and TTL."""
        message = await self.get(message_id)
        if message.status is not Status.ABANDONED:
            raise ConflictError(
                f"message {message_id} is {message.status.value}; only abandoned messages "
                "can be retried"
            )
        now = clock.utcnow()
        fresh = replace(
            self._messages[message_id],
            status=Status.QUEUED,
            max_attempts=message.send_count + attempts,
            expires_at=now + timedelta(seconds=ttl) if ttl > 0 else None,
            next_attempt_at=now,
            waiting_for=None,
            updated_at=now,
        )
        self._put(fresh)
        self._wake.ring()
        return fresh

    async def cancel(self, message_id: str, *, error: Diagnosis) -> Message:
        """Abandon a queued message."""
        message = await self.get(message_id)
        if message.status is not Status.QUEUED:
            raise ConflictError(
                f"message {message_id} is {message.status.value}; only queued messages can be "
                "cancelled"
            )
        cancelled = replace(
            self._messages[message_id],
            status=Status.ABANDONED,
            last_error=error,
            waiting_for=None,
            next_attempt_at=None,
            updated_at=clock.utcnow(),
        )
        self._put(cancelled)
        self._forget_slots_of({message_id})  # a code's booking is nobody's now
        return cancelled

    async def lane_summary(self) -> dict[str, tuple[int, float]]:
        """Queued messages and how long the oldest due one has waited, per lane."""
        rows: dict[str, tuple[int, datetime | None]] = {}
        for m in self._messages.values():
            if m.status is Status.QUEUED:
                count, oldest = rows.get(m.priority.value, (0, None))
                due = m.next_attempt_at
                if due is not None and (oldest is None or due < oldest):
                    oldest = due
                rows[m.priority.value] = (count + 1, oldest)
        return summarise([(lane, n, t) for lane, (n, t) in rows.items()], clock.utcnow())

    async def count_by_status(self) -> dict[str, int]:
        """Messages per status, zeros included."""
        out = {s.value: 0 for s in Status}
        for message in self._messages.values():
            out[message.status.value] += 1
        return out

    async def activity(self, *, since: datetime, step: timedelta) -> Activity:
        """Messages created since ``since`` by tenant, status and time slice; failure codes."""
        edges = activity_edges(since, step, clock.utcnow())
        counts: dict[tuple[str, Status, int], int] = {}
        failures: dict[tuple[str, str, Status], int] = {}
        for m in self._messages.values():
            if m.created_at < since:
                continue
            slot = next(n for n in range(len(edges) - 1, -1, -1) if m.created_at >= edges[n])
            key = (m.tenant, m.status, slot)
            counts[key] = counts.get(key, 0) + 1
            if m.last_error is not None and m.status in (Status.ABANDONED, Status.QUEUED):
                failure = (m.tenant, m.last_error.code, m.status)
                failures[failure] = failures.get(failure, 0) + 1
        return Activity(
            counts=[ActivityCount(t, s, n, c) for (t, s, n), c in counts.items()],
            failures=[FailureCount(t, code, s, c) for (t, code, s), c in failures.items()],
        )

    async def delete_finished(
        self, *, before: datetime, tenant: str | None, keep_keyed_since: datetime, batch: int
    ) -> int:
        """Delete one batch of finished messages."""
        doomed = [
            m.id
            for m in self._messages.values()
            if m.status in (Status.SENT, Status.ABANDONED)
            and m.updated_at < before
            and (tenant is None or m.tenant == tenant)
            and (m.idempotency_key is None or m.created_at < keep_keyed_since)
        ][:batch]
        for message_id in doomed:
            del self._messages[message_id]
            self._leased.discard(message_id)
            del self._dispatches[message_id]
        return len(doomed)
