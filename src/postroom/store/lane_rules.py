"""The rules of priority lanes, free of SQL: which lane a claim reads first, how a rate-limit
window is shared between lanes, which messages the per-recipient limits count and how a refusal
reads. The SQL store runs them as statements (``lanes``, ``slots``, ``dedupe``); the memory
store runs them here, over its dicts.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from postroom.errors import RecipientLimitError
from postroom.models import Message, NewMessage, Priority, TemplateType, WaitingFor
from postroom.store.base import Budget, SlotWait

BOOKING_EARLY = timedelta(milliseconds=50)
"""How early a message may use the slot it booked (a claim falls due a little early)."""

SLOT_LEASE = 60.0
"""How long (seconds) a rate-limit slot whose hand-off is not yet written counts as being
handed off now, unless the worker says otherwise: the default lease of a claimed message."""


@dataclass(frozen=True, slots=True)
class LaneClaim:
    """How a claim reads the lanes: ``tenants`` with their ``priority_aging`` (seconds),
    ``urgent_only`` (aged normal and urgent mail only) or ``skip_urgent`` (all but urgent),
    the tenants whose bulk mail is held back (``hold_bulk``), and at most how many bulk
    messages of a tenant a claim takes (``bulk_caps``). See ``Queue.claim``."""

    tenants: Mapping[str, float]
    urgent_only: bool = False
    hold_bulk: frozenset[str] = frozenset()
    skip_urgent: bool = False
    bulk_caps: Mapping[str, int] = field(default_factory=dict)

    def cap(self, tenant: str, lane: Priority) -> int | None:
        """At most how many messages of ``tenant``'s ``lane`` a claim takes (None: no cap)."""
        return self.bulk_caps.get(tenant) if lane is Priority.BULK else None

    @property
    def ranks(self) -> range:
        """The ranks of :func:`lane_cutoffs` this claim reads."""
        return range(2 if self.skip_urgent else 0, 2 if self.urgent_only else 4)


def lane_cutoffs(now: datetime, aging: float) -> list[tuple[Priority, datetime]]:
    """Each lane with the due-time cutoff it is read up to: normal messages that have waited
    longer than their aging first (they count as urgent), then urgent, normal, bulk."""
    return [
        (Priority.NORMAL, now - timedelta(seconds=aging)),
        (Priority.URGENT, now),
        (Priority.NORMAL, now),
        (Priority.BULK, now),
    ]


def pick_lanes(due: Sequence[Message], room: int, how: LaneClaim, now: datetime) -> list[Message]:
    """The messages a claim of ``room`` takes from ``due``, by the rules of ``claim_lanes``."""
    tenants, urgent_only, hold_bulk = how.tenants, how.urgent_only, how.hold_bulk
    picked: list[Message] = []
    taken: set[str] = set()
    order = sorted(due, key=lambda m: m.next_attempt_at or now)
    # A look for urgent mail reads each tenant's aged normal mail and codes as one list (as
    # the SQL statement does); a full claim shares each lane between the tenants in turn.
    groups = [list(how.ranks)] if urgent_only else [[rank] for rank in how.ranks]
    for group in groups:
        steps = []
        for tenant in tenants:
            cutoffs = lane_cutoffs(now, tenants[tenant])
            cap = how.cap(tenant, cutoffs[group[0]][0]) if len(group) == 1 else None
            steps.append(
                [
                    m
                    for lane, cutoff in (cutoffs[rank] for rank in group)
                    for m in order
                    if m.tenant == tenant
                    and m.priority is lane
                    and not (lane is Priority.BULK and tenant in hold_bulk)
                    and m.id not in taken
                    and (m.next_attempt_at or now) < cutoff
                ][:cap]
            )
        for index, found in enumerate(steps):
            part = math.ceil((room - len(picked)) / (len(steps) - index))
            for message in found[: max(part, 0)]:
                picked.append(message)
                taken.add(message.id)
        for found in steps:
            for message in found:
                if len(picked) < room and message.id not in taken:
                    picked.append(message)
                    taken.add(message.id)
    if urgent_only:
        return picked
    others = [m for m in order if m.tenant not in tenants and m.id not in taken]
    return picked + others[: room - len(picked)]


def summarise(rows: Sequence[Any], now: datetime) -> dict[str, tuple[int, float]]:
    """(queued, seconds the oldest has been due) per lane, every lane present."""
    out = {lane.value: (0, 0.0) for lane in Priority}
    for lane, count, oldest in rows:
        overdue = (now - aware(oldest)).total_seconds() if oldest is not None else 0.0
        out[str(lane)] = (int(count), max(0.0, overdue))
    return out


def aware(value: datetime) -> datetime:
    """``value`` as UTC-aware (SQLite hands back naive times)."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


PACING_PARTS = 60
"""Bulk mail's pace is checked over about 1/60 of a window (longer when its share is small)."""


def bulk_cap(count: int, share: float) -> int:
    """How many of a window's ``count`` slots bulk mail may fill: ``share`` of them, and
    always at least one."""
    return max(1, math.floor(count * share))


def bulk_pace(cap: int, per: float) -> tuple[int, float]:
    """How bulk mail with ``cap`` slots of a window of ``per`` seconds is paced: at most ``k``
    slots in any ``part`` seconds, which is its share's rate and no faster (a sixtieth of
    the share per sixtieth of the window, rounded up to one, ran up to 25% ahead of it and
    filled its share early, leaving the rest of the window to the codes alone)."""
    k = max(1, math.ceil(cap / PACING_PARTS))
    return k, per * k / cap


def bulk_grows_at(
    cap: int, per: float, total: int, oldest: datetime | None, at: datetime
) -> datetime | None:
    """When bulk mail has room in a window of ``per`` seconds that holds ``total`` slots
    (fewer than ``cap``, bulk's share of it), the oldest taken at ``oldest``: None if now.

    The room grows with the window's age: a window in use for a quarter of ``per`` has room
    for a quarter of ``cap``. Without this, a send starting on a quiet tenant took its whole
    share in the window's first part; codes arriving later in that window, with nothing yet
    leaving it, took the rest and then met a full one (a code every 2 s under 60 a minute)."""
    if oldest is None:
        return None
    age = (at - oldest).total_seconds()
    if total < max(1, math.floor(cap * min(1.0, age / per))):
        return None
    return oldest + timedelta(seconds=(total + 1) * per / cap)


def slot_wait(
    events: Sequence[tuple[datetime, str | None, Priority]],
    limits: Sequence[tuple[int, float]],
    *,
    message_id: str,
    lane: Priority,
    share: float,
    lease: float,
    now: datetime,
) -> SlotWait | None:
    """:func:`take_slot` over a list of (time, message id, lane) slots, taking nothing."""
    booked = next((t for t, mid, _lane in events if mid == message_id), None)
    if booked is not None and booked > now + BOOKING_EARLY:
        return SlotWait(booked, WaitingFor.RATE_LIMIT)  # its booked slot is not due yet
    at = now if booked is None else max(now, booked)  # a booking is counted at its time
    # The slots ahead of its own (a booking is checked again: what held the window may have
    # arrived later than it was counted); one still carrying its message id has no hand-off
    # written yet, and counts as now.
    unfinished_since = at - timedelta(seconds=lease)
    raw = [t for t, _mid, _ln in events]
    events = [
        (at if mid is not None and unfinished_since < t < at else t, mid, ln)
        for t, mid, ln in events
        if mid is None or booked is None or (t, mid) < (booked, message_id)
    ]
    newest = sorted((e[0] for e in events), reverse=True)
    waits: list[SlotWait] = []
    for count, per in limits:
        since = at - timedelta(seconds=per)
        total = sum(1 for t in newest if t > since)
        if total >= count:
            waits.append(
                SlotWait(
                    max(now, newest[count - 1] + timedelta(seconds=per)), WaitingFor.RATE_LIMIT
                )
            )
            continue
        if lane is not Priority.BULK:
            continue
        cap = bulk_cap(count, share)
        bulk = [t for t, _m, ln in events if ln is Priority.BULK]
        grows = None  # None: room for bulk now (or the window is full for it)
        if total < cap:
            oldest = min((t for t in raw if t > since), default=None)
            grows = bulk_grows_at(cap, per, total, oldest, at)
        if (total >= cap or grows is not None) and any(t > since for t in bulk):
            # No room for bulk, and it has had its one slot of this window.
            free_at = grows or newest[cap - 1] + timedelta(seconds=per)
            waits.append(SlotWait(max(now, free_at), WaitingFor.PRIORITY))
            continue
        k, part = bulk_pace(cap, per)
        recent = sum(1 for t in bulk if t > at - timedelta(seconds=part))
        if recent >= k:
            waits.append(SlotWait(now + timedelta(seconds=part), WaitingFor.PRIORITY))
    if not waits:
        return None
    wait = max(waits, key=lambda w: w.free_at)
    if lane is Priority.BULK:  # spread over the window: a big send is not claimed at once
        wait = replace(wait, spread=max(per for _count, per in limits))
    if lane is Priority.URGENT and wait.waiting_for is WaitingFor.RATE_LIMIT:
        return SlotWait(max(wait.free_at, now), WaitingFor.RATE_LIMIT)
    return wait


def counted(new: NewMessage, rules: Budget) -> bool:
    """Whether the per-recipient limits apply to ``new``."""
    return (
        (rules.cooldown > 0 or rules.per_hour > 0)
        and new.priority is not Priority.BULK
        and new.template_type is not TemplateType.TEST
    )


def cooldown_error(new: NewMessage, rules: Budget, wait: timedelta) -> RecipientLimitError:
    """The refusal of a message that comes within the cooldown of the last one."""
    return RecipientLimitError(
        f"courier.recipient_limits.cooldown: {new.recipient} was sent a "
        f"{new.template_type.value} message less than {_secs(rules.cooldown)} ago; try again "
        f"in {_secs(wait)}",
        limit="cooldown",
        retry_after=whole_seconds(wait),
    )


def per_hour_error(new: NewMessage, rules: Budget, wait: timedelta) -> RecipientLimitError:
    """The refusal of a message past a recipient's hourly cap."""
    return RecipientLimitError(
        f"courier.recipient_limits.per_hour: {new.recipient} has had {rules.per_hour} "
        f"messages in the past hour, the limit; try again in {_secs(wait)}",
        limit="per_hour",
        retry_after=whole_seconds(wait),
    )


def whole_seconds(wait: timedelta | float) -> int:
    """A wait as whole seconds, rounded up, at least 1 (what ``Retry-After`` says)."""
    seconds = wait.total_seconds() if isinstance(wait, timedelta) else wait
    return max(1, math.ceil(seconds))


def _secs(wait: timedelta | float) -> str:
    return f"{whole_seconds(wait)}s"
