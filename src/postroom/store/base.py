"""The Store protocol: the queue and the record of every message. The only place with SQL
is below this package; everything else talks to a :class:`Store`."""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

from postroom.models import Diagnosis, Message, NewMessage, Status, WaitingFor
from postroom.store.dkim_keys import DkimKeys


@dataclass(frozen=True, slots=True)
class Completion:
    """What happened to one claimed message, written by :meth:`Store.complete`.

    ``status`` is the message's new status: ``sent``, ``queued`` (retry at
    ``next_attempt_at``) or ``abandoned``. ``attempted`` says whether a dispatch row is written
    (False for a message abandoned without a send, e.g. expired).
    """

    message_id: str
    status: Status
    error: Diagnosis | None = None
    attempted: bool = True
    next_attempt_at: datetime | None = None
    waiting_for: WaitingFor | None = None
    reclaimed_from: str | None = None


@dataclass(frozen=True, slots=True)
class StoredTenant:
    """A tenant saved through the admin API: its ``courier`` section, credentials encrypted."""

    id: str
    courier: dict[str, Any]
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class StoredOAuthToken:
    """The refresh token of a tenant's OAuth2 device-code sign-in, encrypted (``enc:v1:``).

    ``origin`` identifies the configured refresh token this one descends from (a hash, None
    when the tenant's settings hold none): when the settings change to another one, this row
    is out of date and the settings win.
    """

    tenant: str
    refresh_token: str
    origin: str | None
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class MessageFilter:
    """Filters for :meth:`Store.list_messages`; every field is optional."""

    status: Status | None = None
    recipient: str | None = None
    tenant: str | None = None
    template_type: str | None = None
    limit: int = 50
    before: tuple[datetime, str] | None = None  # keyset: (created_at, id) of the last row seen


@dataclass(frozen=True, slots=True)
class ActivityCount:
    """How many messages of ``tenant`` created in time slice ``slot`` are now in ``status``."""

    tenant: str
    status: Status
    slot: int
    count: int


@dataclass(frozen=True, slots=True)
class FailureCount:
    """How many messages of ``tenant`` whose latest diagnosis is ``code`` are now in
    ``status`` (``abandoned``, or ``queued`` for another attempt)."""

    tenant: str
    code: str
    status: Status
    count: int


@dataclass(frozen=True, slots=True)
class Activity:
    """What :meth:`Store.activity` found: counts per time slice and the failure codes."""

    counts: list[ActivityCount]
    failures: list[FailureCount]


MAX_ACTIVITY_SLOTS = 500


def new_id() -> str:
    """A new message or dispatch id: a UUID version 7 (RFC 9562), whose first 48 bits are
    the time in milliseconds and the rest random.

    Ids made one after another sort together, so a batch of inserts or status writes touches
    a few index pages at the end of each id index instead of one random page per row (with
    random version 4 ids, most of a commit's pages were such scattered index pages).
    """
    millis = time.time_ns() // 1_000_000
    rand = int.from_bytes(os.urandom(10), "big")  # 80 random bits; 74 are used
    value = (
        (millis & 0xFFFF_FFFF_FFFF) << 80
        | 0x7 << 76  # version 7
        | (rand >> 62 & 0xFFF) << 64
        | 0b10 << 62  # the RFC 4122/9562 variant
        | rand & 0x3FFF_FFFF_FFFF_FFFF
    )
    return str(uuid.UUID(int=value))


def activity_edges(since: datetime, step: timedelta, now: datetime) -> list[datetime]:
    """The start of every time slice of :meth:`Store.activity` from ``since`` up to ``now``."""
    if step <= timedelta(0):
        raise ValueError("the time slice must be longer than 0s")
    slots = max(1, -((since - now) // step))  # ceil((now - since) / step)
    if slots > MAX_ACTIVITY_SLOTS:
        raise ValueError(f"{slots} time slices asked for; at most {MAX_ACTIVITY_SLOTS}")
    return [since + n * step for n in range(slots)]


class Store(DkimKeys, Protocol):
    """Durable storage and queue. Every method is a coroutine; writes are atomic."""

    async def migrate(self) -> None:
        """Create or upgrade the schema to the newest version."""

    async def enqueue(
        self, messages: Sequence[NewMessage], *, max_attempts: int, ttl: float
    ) -> list[tuple[Message, bool]]:
        """Store messages durably in one transaction; return each with ``created``.

        A message whose (tenant, idempotency key) already exists is not stored again: the
        existing one is returned with ``created`` False. ``ttl`` 0 means never expires.
        """

    async def claim(
        self,
        *,
        worker: str,
        limit: int,
        lease: float,
        completions: Sequence[Completion] = (),
    ) -> list[Message]:
        """Atomically lease up to ``limit`` due messages (or ones whose lease expired).

        ``completions`` are recorded first, as :meth:`complete` would, in the same
        transaction: a busy worker writes the results of one batch as it takes the next.
        """

    async def renew(self, message_ids: Sequence[str], *, worker: str, lease: float) -> None:
        """Extend the lease of messages this worker still holds."""

    async def release(self, message_ids: Sequence[str], *, worker: str) -> None:
        """Give back leased messages that were not attempted, due again now."""

    async def complete(self, completions: Sequence[Completion], *, worker: str) -> None:
        """Record attempts and new statuses of claimed messages in one transaction."""

    async def get(self, message_id: str) -> Message:
        """One message with its dispatches, newest first; raise ``NotFoundError``."""

    async def list_messages(self, query: MessageFilter) -> list[Message]:
        """Messages newest first (without dispatches)."""

    async def retry(self, message_id: str, *, attempts: int, ttl: float) -> Message:
        """Queue an abandoned message again now, with ``attempts`` more attempts and a fresh
        TTL; raise ``NotFoundError``, or ``ConflictError`` when it is not abandoned."""

    async def cancel(self, message_id: str, *, error: Diagnosis) -> Message:
        """Abandon a queued message with ``error``; ``ConflictError`` when it is not queued."""

    async def count_by_status(self) -> dict[str, int]:
        """How many messages are in each status."""

    async def activity(self, *, since: datetime, step: timedelta) -> Activity:
        """What became of the messages created since ``since`` (for the dashboard's overview).

        ``counts``: per tenant, current status and time slice, where slice ``n`` holds the
        messages created from ``since + n * step`` up to the next slice (up to now; at most
        ``MAX_ACTIVITY_SLOTS`` slices, else ``ValueError``). ``failures``: per tenant, latest
        diagnosis code and status, the messages that are abandoned or queued again after a
        failed attempt. Reads an index range of the creation time, never the whole table.
        """

    async def list_tenants(self) -> list[StoredTenant]:
        """Every tenant saved through the API."""

    async def get_tenant(self, tenant_id: str) -> StoredTenant | None:
        """One saved tenant, or None."""

    async def put_tenant(self, tenant_id: str, courier: dict[str, Any]) -> StoredTenant:
        """Create or replace a saved tenant."""

    async def delete_tenant(self, tenant_id: str) -> bool:
        """Delete a saved tenant and its kept OAuth2 refresh token; False when there was none."""

    async def tenants_version(self) -> str:
        """Changes whenever a saved tenant is created, changed or deleted."""

    async def get_oauth_token(self, tenant: str) -> StoredOAuthToken | None:
        """The kept OAuth2 refresh token of ``tenant`` (file or API tenant), or None."""

    async def put_oauth_token(
        self, tenant: str, *, refresh_token: str, origin: str | None
    ) -> StoredOAuthToken:
        """Keep ``refresh_token`` (already encrypted) for ``tenant``, replacing any before."""

    async def start_session(self, session_id: str, *, expires_at: datetime) -> None:
        """Record a signed-in dashboard session (``session_id`` is already a hash, unique)
        until ``expires_at``, for every process sharing the store; sessions past their expiry
        are deleted at the same time."""

    async def session_active(self, session_id: str) -> bool:
        """True while the session is started, not ended and not past its expiry."""

    async def end_session(self, session_id: str) -> None:
        """End a session at once, for every process sharing the store (no error when there is
        no such session)."""

    async def take_slot(
        self, tenant: str, limits: Sequence[tuple[int, float]], *, message_id: str
    ) -> datetime | None:
        """Take one hand-off slot of ``tenant`` under ``limits`` ((count, per seconds) pairs),
        shared by every worker of every process. Return None when taken, else the time the
        next slot frees up (nothing is taken then)."""

    async def delete_finished(
        self, *, before: datetime, tenant: str | None, keep_keyed_since: datetime, batch: int
    ) -> int:
        """Delete up to ``batch`` sent or abandoned messages (with their dispatches) last
        updated before ``before``, of ``tenant`` (None: every tenant); messages with an
        idempotency key created after ``keep_keyed_since`` stay. Return how many went."""

    async def next_due(self) -> datetime | None:
        """When the next queued message falls due (None when the queue is empty)."""

    async def count_pending(self) -> int:
        """How many messages are queued or processing."""

    async def wait(self, timeout: float) -> None:
        """Return when work may have arrived (an enqueue in this process) or after timeout."""

    async def ping(self) -> None:
        """Raise if the database cannot be reached."""

    async def close(self) -> None:
        """Release connections."""
