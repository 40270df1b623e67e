"""What the store's roles (:mod:`postroom.store.roles`) take and give: completions, filters,
saved tenants and tokens, activity counts; and the rules every backend shares (new ids, a new
message's first state, time slices, rate slots), so that no backend imports another."""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

from postroom.errors import DuplicateRequestError, NotFoundError
from postroom.models import (
    Diagnosis,
    Handoff,
    Message,
    NewMessage,
    Priority,
    Status,
    WaitingFor,
)


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
    handoff: Handoff | None = None  # a success: where it went and what the provider answered

    @property
    def ends_unsent(self) -> bool:
        """Given up without a send (expired, its tenant gone): a slot it booked is nobody's."""
        return not self.attempted and self.status is not Status.QUEUED


@dataclass(frozen=True, slots=True)
class Budget:
    """What a tenant's new messages get: ``max_attempts`` sends, and ``ttl`` seconds to go out
    (0: they never expire); and what their enqueue enforces besides idempotency keys.

    ``bulk_ttl``: the time to live of ``bulk`` messages (None: ``ttl``). ``dedupe_window``:
    seconds within which a message with the same ``content_hash`` as a queued, in-flight or
    sent one is folded into it (0: off). ``cooldown`` (seconds, per recipient and template
    type) and ``per_hour`` (per recipient): the per-recipient limits over urgent and normal
    messages, ``test`` messages exempt (0: off).
    """

    max_attempts: int
    ttl: float
    bulk_ttl: float | None = None
    dedupe_window: float = 0.0
    cooldown: float = 0.0
    per_hour: int = 0

    def ttl_of(self, priority: Priority) -> float:
        """The time to live of a new message in lane ``priority``."""
        if priority is Priority.BULK and self.bulk_ttl is not None:
            return self.bulk_ttl
        return self.ttl


@dataclass(frozen=True, slots=True)
class SlotWait:
    """A hand-off slot that ``take_slot`` did not give: when one may be free, and why there
    was none (``rate_limit``: the window is full; ``priority``: what is left is kept for more
    urgent mail)."""

    free_at: datetime
    waiting_for: WaitingFor
    # Seconds over which messages held back like this one may be spread after ``free_at``
    # (the window's length, for bulk mail), so thousands do not all come back at once.
    spread: float = 0.0


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
    recipient: str | None = None  # any case; "@example.org" for a whole domain
    tenant: str | None = None
    template_type: str | None = None
    priority: Priority | None = None
    provider_message_id: str | None = None  # a dispatch of the message carries this id
    id_fragment: str | None = None  # the id starts or ends with this (a short id)
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


def budgets_of(
    messages: Sequence[NewMessage],
    *,
    max_attempts: int,
    ttl: float,
    budgets: Mapping[str, Budget] | None,
) -> list[Budget]:
    """The budget of each message: its tenant's in ``budgets``, else ``max_attempts``/``ttl``."""
    default = Budget(max_attempts, ttl)
    if not budgets:
        return [default] * len(messages)
    return [budgets.get(new.tenant, default) for new in messages]


def check_unchanged(new: NewMessage, existing: Message) -> None:
    """Raise :class:`DuplicateRequestError` when ``existing``, found by ``new``'s idempotency
    key, was stored for a different request."""
    if existing.request_hash != new.request_hash:
        raise DuplicateRequestError()


def queued_message(
    new: NewMessage, *, created_at: datetime, due_at: datetime, max_attempts: int, ttl: float
) -> Message:
    """The stored form of ``new`` as it enters the queue: a new id, due at ``due_at``, expiring
    ``ttl`` seconds after it (never when ``ttl`` is 0). Every backend builds new messages here."""
    return Message(
        id=new_id(),
        tenant=new.tenant,
        status=Status.QUEUED,
        recipient=new.recipient,
        template_type=new.template_type,
        template_data=new.template_data,
        subject=new.subject,
        body=new.body,
        html_body=new.html_body,
        mime=new.mime,
        send_count=0,
        max_attempts=max_attempts,
        idempotency_key=new.idempotency_key,
        created_at=created_at,
        updated_at=created_at,
        next_attempt_at=due_at,
        expires_at=due_at + timedelta(seconds=ttl) if ttl > 0 else None,
        waiting_for=None,
        last_error=None,
        request_hash=new.request_hash,
        priority=new.priority,
        content_hash=new.content_hash,
        locale=new.locale,
        mime_ref=new.mime_ref,
    )


DkimKeyState = Literal["inactive", "active", "retired"]


@dataclass(frozen=True, slots=True)
class StoredDkimKey:
    """One DKIM key of a tenant; ``private_key`` is encrypted (``enc:v1:``)."""

    tenant: str
    selector: str
    domain: str
    algorithm: str
    private_key: str
    public_key: str
    state: DkimKeyState
    created_at: datetime
    activated_at: datetime | None


def dkim_key_not_found(tenant: str, selector: str) -> NotFoundError:
    """The error for a DKIM key that is not stored, saying how to see and make keys."""
    return NotFoundError(
        f"tenant {tenant!r} has no DKIM key with selector {selector!r}; `postroom dkim list` "
        "shows its keys, `postroom dkim generate` makes one"
    )
