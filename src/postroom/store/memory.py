"""An in-memory store: the same contract as the SQL stores, for unit tests and trying things
out. Nothing survives the process; one process only."""

from __future__ import annotations

import asyncio
import contextlib
import copy
import heapq
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

from postroom.errors import ConflictError, NotFoundError
from postroom.models import (
    Diagnosis,
    Dispatch,
    DispatchStatus,
    Message,
    NewMessage,
    Status,
)
from postroom.store.base import (
    Activity,
    ActivityCount,
    Completion,
    FailureCount,
    MessageFilter,
    StoredOAuthToken,
    StoredTenant,
    activity_edges,
    new_id,
)
from postroom.store.dkim_keys import MemoryDkimKeys
from postroom.store.sql import slot_free_at, utcnow


class MemoryStore(MemoryDkimKeys):
    """A :class:`~postroom.store.base.Store` in a dict. Methods never await anything slow, so
    each one is atomic with respect to the others on the event loop."""

    def __init__(self) -> None:
        self._messages: dict[str, Message] = {}
        self._dispatches: dict[str, list[Dispatch]] = {}
        self._tenants: dict[str, StoredTenant] = {}
        self._oauth_tokens: dict[str, StoredOAuthToken] = {}
        self._sessions: dict[str, datetime] = {}  # dashboard session -> its expiry
        self._tenant_changes = 0
        # Per tenant: (time, message id until its hand-off), as the SQL store keeps them.
        self._rate: dict[str, list[tuple[datetime, str | None]]] = {}
        self._last = datetime.min.replace(tzinfo=UTC)
        self._wake = asyncio.Event()
        # (next attempt, created, id) of queued messages; stale entries are skipped at claim.
        self._due: list[tuple[datetime, datetime, str]] = []
        self._leased: set[str] = set()  # ids of messages in processing

    async def migrate(self) -> None:
        """Nothing to create."""

    async def enqueue(
        self, messages: Sequence[NewMessage], *, max_attempts: int, ttl: float
    ) -> list[tuple[Message, bool]]:
        """Store messages; an existing (tenant, idempotency key) returns the earlier one."""
        start = utcnow()
        out: list[tuple[Message, bool]] = []
        for new in messages:
            if new.idempotency_key is not None:
                found = next(
                    (
                        m
                        for m in self._messages.values()
                        if m.tenant == new.tenant and m.idempotency_key == new.idempotency_key
                    ),
                    None,
                )
                if found is not None:
                    out.append((found, False))
                    continue
            # Strictly increasing, so newest-first keeps the order of arrival.
            now = max(start, self._last + timedelta(microseconds=1))
            self._last = now
            message = Message(
                id=new_id(),
                tenant=new.tenant,
                status=Status.QUEUED,
                recipient=new.recipient,
                template_type=new.template_type,
                template_data=copy.deepcopy(new.template_data),
                subject=new.subject,
                body=new.body,
                html_body=new.html_body,
                mime=new.mime,
                send_count=0,
                max_attempts=max_attempts,
                idempotency_key=new.idempotency_key,
                created_at=now,
                updated_at=now,
                next_attempt_at=start,
                expires_at=start + timedelta(seconds=ttl) if ttl > 0 else None,
                waiting_for=None,
                last_error=None,
                request_hash=new.request_hash,
            )
            self._put(message)
            self._dispatches[message.id] = []
            out.append((message, True))
        self._wake.set()
        return out

    def _put(self, message: Message) -> None:
        """Keep ``message``; index it as due or as leased."""
        self._messages[message.id] = message
        if message.status is Status.PROCESSING:
            self._leased.add(message.id)
        else:
            self._leased.discard(message.id)
        if message.status is Status.QUEUED and message.next_attempt_at is not None:
            heapq.heappush(self._due, (message.next_attempt_at, message.created_at, message.id))

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
        now = utcnow()
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
        until = utcnow() + timedelta(seconds=lease)
        for message_id in message_ids:
            if (message := self._held(message_id, worker)) is not None:
                self._put(replace(message, lease_until=until))

    async def release(self, message_ids: Sequence[str], *, worker: str) -> None:
        """Give back leased messages, due now."""
        now = utcnow()
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
        now = utcnow()
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
            and (query.recipient is None or m.recipient == query.recipient)
            and (query.tenant is None or m.tenant == query.tenant)
            and (query.template_type is None or m.template_type.value == query.template_type)
            and (query.before is None or (m.created_at, m.id) < query.before)
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
        now = utcnow()
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
        self._wake.set()
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
            updated_at=utcnow(),
        )
        self._put(cancelled)
        return cancelled

    async def count_by_status(self) -> dict[str, int]:
        """Messages per status, zeros included."""
        out = {s.value: 0 for s in Status}
        for message in self._messages.values():
            out[message.status.value] += 1
        return out

    async def activity(self, *, since: datetime, step: timedelta) -> Activity:
        """Messages created since ``since`` by tenant, status and time slice; failure codes."""
        edges = activity_edges(since, step, utcnow())
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

    async def list_tenants(self) -> list[StoredTenant]:
        """Saved tenants by id."""
        return [self._tenants[k] for k in sorted(self._tenants)]

    async def get_tenant(self, tenant_id: str) -> StoredTenant | None:
        """One saved tenant."""
        return self._tenants.get(tenant_id)

    async def put_tenant(self, tenant_id: str, courier: dict[str, Any]) -> StoredTenant:
        """Create or replace a saved tenant."""
        now = utcnow()
        old = self._tenants.get(tenant_id)
        tenant = StoredTenant(
            tenant_id, copy.deepcopy(courier), old.created_at if old else now, now
        )
        self._tenants[tenant_id] = tenant
        self._tenant_changes += 1
        return tenant

    async def delete_tenant(self, tenant_id: str) -> bool:
        """Delete a saved tenant and its kept OAuth2 refresh token."""
        self._tenant_changes += 1
        self._oauth_tokens.pop(tenant_id, None)
        return self._tenants.pop(tenant_id, None) is not None

    async def tenants_version(self) -> str:
        """A counter of tenant changes."""
        return str(self._tenant_changes)

    async def get_oauth_token(self, tenant: str) -> StoredOAuthToken | None:
        """The kept OAuth2 refresh token of ``tenant``."""
        return self._oauth_tokens.get(tenant)

    async def put_oauth_token(
        self, tenant: str, *, refresh_token: str, origin: str | None
    ) -> StoredOAuthToken:
        """Keep ``refresh_token`` for ``tenant``."""
        kept = StoredOAuthToken(tenant, refresh_token, origin, utcnow())
        self._oauth_tokens[tenant] = kept
        return kept

    async def start_session(self, session_id: str, *, expires_at: datetime) -> None:
        """Record a dashboard session; forget the expired ones."""
        now = utcnow()
        self._sessions = {k: v for k, v in self._sessions.items() if v > now}
        self._sessions[session_id] = expires_at

    async def session_active(self, session_id: str) -> bool:
        """True while the session is recorded and not expired."""
        expires_at = self._sessions.get(session_id)
        return expires_at is not None and expires_at > utcnow()

    async def end_session(self, session_id: str) -> None:
        """Forget the session."""
        self._sessions.pop(session_id, None)

    async def take_slot(
        self, tenant: str, limits: Sequence[tuple[int, float]], *, message_id: str
    ) -> datetime | None:
        """Take a hand-off slot of ``tenant`` under ``limits``."""
        if not limits:
            return None
        now = utcnow()
        longest = max(per for _count, per in limits)
        events = self._rate.setdefault(tenant, [])
        events[:] = [e for e in events if e[0] > now - timedelta(seconds=longest)]
        free_at = slot_free_at(sorted((e[0] for e in events), reverse=True), limits, now)
        if free_at is None:
            events.append((now, message_id))
        return free_at

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

    async def wait(self, timeout: float) -> None:
        """Return on an enqueue or requeue, or after ``timeout``."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), timeout=max(timeout, 0))
        self._wake.clear()

    async def ping(self) -> None:
        """Always reachable."""

    async def close(self) -> None:
        """Nothing to release."""


_NAMED: dict[str, MemoryStore] = {}


def memory_store(name: str) -> MemoryStore:
    """The process's memory store called ``name`` (a new one for an empty name)."""
    if not name:
        return MemoryStore()
    return _NAMED.setdefault(name, MemoryStore())
