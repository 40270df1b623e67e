"""The store's roles. Every consumer is typed against the one role it uses: intake and the
worker against :class:`Queue`, retention and the message views against :class:`Records`, the
tenant registry and the OAuth2 token adapter against :class:`Tenants`, the dashboard's sign-in
against :class:`Sessions`. :class:`Store` is all of them plus the lifecycle (migrate, ping,
close); :func:`postroom.store.open_store` returns one. The only place with SQL is below this
package."""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any, Protocol

from postroom.models import Diagnosis, Message, NewMessage, Priority
from postroom.store.base import (
    Activity,
    Budget,
    Completion,
    MessageFilter,
    SlotWait,
    StoredDkimKey,
    StoredOAuthToken,
    StoredTenant,
)
from postroom.store.lane_rules import SLOT_LEASE
from postroom.store.listener import ListenerRecords


class Queue(Protocol):
    """The queue: intake puts messages in, workers lease, send and record them. Every method is
    a coroutine; writes are atomic."""

    async def enqueue(
        self,
        messages: Sequence[NewMessage],
        *,
        max_attempts: int,
        ttl: float,
        budgets: Mapping[str, Budget] | None = None,
        refuse_changed: bool = False,
    ) -> list[tuple[Message, bool]]:
        """Store messages durably in one transaction (all or nothing); return each with
        ``created``.

        A message whose (tenant, idempotency key) already exists is not stored again: the
        existing one is returned with ``created`` False; with ``refuse_changed``, an existing
        one stored for a different request (``request_hash``) raises
        :class:`~postroom.errors.DuplicateRequestError` and nothing of ``messages`` is
        stored. Each message gets its tenant's entry of ``budgets``, else ``max_attempts``
        sends and ``ttl`` seconds to go out (0 means never expires; ``bulk`` messages get the
        budget's ``bulk_ttl``).

        Without a key, a message whose ``content_hash`` matches one created within its
        budget's ``dedupe_window`` that is not abandoned is folded: that one is returned with
        ``created`` False and its ``folded_duplicates`` counted up; two concurrent enqueues
        never both store. Then the budget's per-recipient limits are checked: over one,
        :class:`~postroom.errors.RecipientLimitError` is raised and nothing is stored.
        """

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
        """Atomically lease up to ``limit`` due messages (or ones whose lease expired).

        ``completions`` are recorded first, as :meth:`complete` would, in the same
        transaction: a busy worker writes the results of one batch as it takes the next.
        ``tenants`` maps each tenant to its ``priority_aging`` in seconds: their due
        messages are taken lane by lane (normal ones due longer than their aging first, then
        urgent, normal, bulk), each in due order, and within a lane the room is shared
        evenly between the tenants, so that one tenant's flood cannot starve another. Due
        messages of tenants not named follow, in due order. Returned most urgent first.
        ``urgent_only`` takes urgent messages and aged normal ones of the named tenants only
        (what a worker busy with bulk mail looks for now and then). The bulk mail of the
        tenants in ``hold_bulk`` is not taken (its rate limit has no room for it yet), and of
        a tenant in ``bulk_caps`` at most that many bulk messages are taken (its rate limit
        is handing out bulk slots one at a time: the rest would only be written back).
        ``skip_urgent`` reads every lane but urgent (a worker that has just taken it in a
        claim of its own: a code enqueued meanwhile is left to a short claim beside this one,
        rather than held until this one's writes are done).
        """

    async def renew(self, message_ids: Sequence[str], *, worker: str, lease: float) -> None:
        """Extend the lease of messages this worker still holds."""

    async def release(self, message_ids: Sequence[str], *, worker: str) -> None:
        """Give back leased messages that were not attempted, due again now."""

    async def complete(self, completions: Sequence[Completion], *, worker: str) -> None:
        """Record attempts and new statuses of claimed messages in one transaction."""

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
        """Take one hand-off slot of ``tenant`` under ``limits`` ((count, per seconds) pairs),
        shared by every worker of every process. Return None when taken, else when the next
        slot may free up and why (nothing is taken then); one SQL count per window.

        ``urgent`` and ``normal`` take any free slot; when none is free, an ``urgent``
        message books the next one, which no other message can take, and its next call gets
        it (a ``normal`` message past its aging is passed as ``urgent``). ``bulk`` takes a
        slot only while the window is below ``bulk_share`` of each count (always one bulk
        slot per window), and at most a sixtieth of that per sixtieth of the window, so that
        slots keep freeing up for urgent mail.

        A slot counts from its hand-off, written by :meth:`complete`; until then (for at most
        ``lease`` seconds, the time a worker holds the message) it counts as being handed off
        now: the provider counts the message when it arrives, which for a send slower than
        the window, or a status write held up, is long after the slot was taken."""

    async def next_due(self) -> datetime | None:
        """When the next queued message falls due (None when the queue is empty)."""

    async def count_pending(self) -> int:
        """How many messages are queued or processing."""

    async def wait(self, timeout: float) -> None:
        """Return when work may have arrived (an enqueue in this process) or after timeout."""

    def on_urgent(self, call: Callable[[], None]) -> Callable[[], None]:
        """Call ``call`` (in the event loop, without waiting) whenever urgent mail is
        enqueued: in this process, and on PostgreSQL in any process; stop when the function
        returned is called."""


class Records(Protocol):
    """The record of every message: what the API, the dashboard, the CLI and retention read,
    retry, cancel and delete."""

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

    async def lane_summary(self) -> dict[str, tuple[int, float]]:
        """Per priority lane (every lane present): how many messages are queued, and how many
        seconds the oldest due one has been due (0 when none is due)."""

    async def activity(self, *, since: datetime, step: timedelta) -> Activity:
        """What became of the messages created since ``since`` (for the dashboard's overview).

        ``counts``: per tenant, current status and time slice, where slice ``n`` holds the
        messages created from ``since + n * step`` up to the next slice (up to now; at most
        ``MAX_ACTIVITY_SLOTS`` slices, else ``ValueError``). ``failures``: per tenant, latest
        diagnosis code and status, the messages that are abandoned or queued again after a
        failed attempt. Reads an index range of the creation time, never the whole table.
        """

    async def delete_finished(
        self, *, before: datetime, tenant: str | None, keep_keyed_since: datetime, batch: int
    ) -> int:
        """Delete up to ``batch`` sent or abandoned messages (with their dispatches) last
        updated before ``before``, of ``tenant`` (None: every tenant); messages with an
        idempotency key created after ``keep_keyed_since`` stay. Return how many went."""


class Tenants(ListenerRecords, Protocol):
    """Tenants saved through the API and the OAuth2 refresh tokens kept for tenants; with the
    SMTP listener's logins of API tenants and its refusal log (``ListenerRecords``)."""

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


class Sessions(Protocol):
    """Signed-in dashboard sessions, shared by every process on the store."""

    async def start_session(self, session_id: str, *, expires_at: datetime) -> None:
        """Record a signed-in dashboard session (``session_id`` is already a hash, unique)
        until ``expires_at``, for every process sharing the store; sessions past their expiry
        are deleted at the same time."""

    async def session_active(self, session_id: str) -> bool:
        """True while the session is started, not ended and not past its expiry."""

    async def end_session(self, session_id: str) -> None:
        """End a session at once, for every process sharing the store (no error when there is
        no such session)."""


class DkimKeys(Protocol):
    """DKIM keys made by ``postroom dkim generate``, per tenant and selector: the private key
    encrypted, at most one ``active`` per tenant (the one mail is signed with)."""

    async def add_dkim_key(self, key: StoredDkimKey) -> None:
        """Keep a new key; ``ConflictError`` when the tenant already has that selector."""

    async def list_dkim_keys(self, tenant: str | None = None) -> list[StoredDkimKey]:
        """The keys of ``tenant`` (None: every tenant), by tenant then newest first."""

    async def activate_dkim_key(self, tenant: str, selector: str) -> StoredDkimKey:
        """Make this key the tenant's active one (the one before is ``retired``), at once for
        this process; raise ``NotFoundError`` when there is no such key."""

    async def active_dkim_key(self, tenant: str) -> StoredDkimKey | None:
        """The tenant's active key, or None (may be up to ``ACTIVE_CACHE_SECONDS`` old)."""


class Intake(Queue, DkimKeys, Protocol):
    """What intake uses: the queue, and the DKIM key each tenant signs with."""


class Store(Queue, Records, Tenants, Sessions, DkimKeys, Protocol):
    """Durable storage and queue: every role, plus the lifecycle."""

    async def migrate(self) -> None:
        """Create or upgrade the schema to the newest version."""

    async def ping(self) -> None:
        """Raise if the database cannot be reached."""

    async def close(self) -> None:
        """Release connections."""
