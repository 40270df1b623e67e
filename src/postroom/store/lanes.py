"""Priority lanes in SQL: claims lane by lane and tenant by tenant, rate-limit slots that go
to the most urgent mail first, folded duplicates and per-recipient limits.

Every statement is built once and run with bind parameters (they run for every claim, slot
and enqueue). Each claim statement reads one index range (``ix_messages_lane_due``: status,
tenant, lane, due time) and stops at its limit, so a claim costs the same with a million
messages queued as with ten.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Integer, String, bindparam, func, select, text, update
from sqlalchemy.engine import Row

from postroom.errors import RecipientLimitError
from postroom.models import Message, NewMessage, Priority, Status, TemplateType, WaitingFor
from postroom.store.base import EnqueueRules, SlotWait
from postroom.store.schema import UtcDateTime, messages, rate_events

# -- claims ------------------------------------------------------------------------------

_LEASE_VALUES = {
    "status": Status.PROCESSING.value,
    "reclaimed_from": messages.c.lease_owner,  # the old holder, if it died
    "lease_owner": bindparam("worker", type_=String),
    "lease_until": bindparam("until", type_=UtcDateTime),
    "waiting_for": None,
    "updated_at": bindparam("now", type_=UtcDateTime),
}


def _lease(chosen: Any) -> Any:
    return (
        update(messages)
        .where(messages.c.id.in_(chosen.scalar_subquery()))
        .values(_LEASE_VALUES)
        .returning(*messages.c)
    )


_TAKE_LANE = _lease(
    select(messages.c.id)
    .where(
        messages.c.status == Status.QUEUED.value,
        messages.c.tenant == bindparam("b_tenant", type_=String),
        messages.c.priority == bindparam("b_lane", type_=String),
        messages.c.next_attempt_at < bindparam("cutoff", type_=UtcDateTime),
    )
    .order_by(messages.c.next_attempt_at)
    .limit(bindparam("n", type_=Integer))
    .with_for_update(skip_locked=True)
)

# Tenants the worker did not name (removed from the configuration): due order, any lane.
_TAKE_OTHERS = _lease(
    select(messages.c.id)
    .where(
        messages.c.status == Status.QUEUED.value,
        messages.c.next_attempt_at < bindparam("cutoff", type_=UtcDateTime),
        messages.c.tenant.not_in(bindparam("named", expanding=True)),
    )
    .order_by(messages.c.next_attempt_at)
    .limit(bindparam("n", type_=Integer))
    .with_for_update(skip_locked=True)
)

_turn = itertools.count()


def _lanes(now: datetime, aging: float) -> list[tuple[Priority, datetime]]:
    """Each lane with the due-time cutoff it is read up to: normal messages that have waited
    longer than their aging first (they count as urgent), then urgent, normal, bulk."""
    return [
        (Priority.NORMAL, now - timedelta(seconds=aging)),
        (Priority.URGENT, now),
        (Priority.NORMAL, now),
        (Priority.BULK, now),
    ]


def claim_lanes(
    conn: Connection,
    params: dict[str, Any],
    *,
    room: int,
    tenants: Mapping[str, float] | None,
) -> list[Row[Any]]:
    """Lease up to ``room`` due messages, lane by lane; see ``Store.claim``."""
    now: datetime = params["now"]
    rows: list[Row[Any]] = []
    tenants = tenants or {}
    named = list(tenants)
    if named:
        first = next(_turn) % len(named)  # who goes first turns, so ties even out
        order = named[first:] + named[:first]
        plans = {tenant: _lanes(now, tenants[tenant]) for tenant in order}
        for rank in range(4):
            if room <= 0:
                break
            taken = _share(conn, params, [(t, *plans[t][rank]) for t in order], room)
            rows += taken
            room -= len(taken)
    if room > 0:
        rows += conn.execute(
            _TAKE_OTHERS, {**params, "cutoff": now, "named": named, "n": room}
        ).all()
    return rows


def _share(
    conn: Connection,
    params: dict[str, Any],
    steps: list[tuple[str, Priority, datetime]],
    room: int,
) -> list[Row[Any]]:
    """Take one lane of every tenant, the room shared evenly: each tenant gets an equal part
    of what is left, and what the others left unused goes to those that had more."""
    rows: list[Row[Any]] = []
    hungry: list[tuple[str, Priority, datetime]] = []
    for index, step in enumerate(steps):
        part = math.ceil((room - len(rows)) / (len(steps) - index))
        if part <= 0:
            break
        got = _take(conn, params, *step, part)
        rows += got
        if len(got) == part:
            hungry.append(step)
    for step in hungry if len(steps) > 1 else []:
        if len(rows) >= room:
            break
        rows += _take(conn, params, *step, room - len(rows))
    return rows


def _take(
    conn: Connection,
    params: dict[str, Any],
    tenant: str,
    lane: Priority,
    cutoff: datetime,
    n: int,
) -> list[Row[Any]]:
    values = {**params, "b_tenant": tenant, "b_lane": lane.value, "cutoff": cutoff, "n": n}
    return list(conn.execute(_TAKE_LANE, values).all())


def claimed_order(lane: str, due: datetime | None) -> tuple[int, datetime]:
    """How claimed messages are handed to the senders: most urgent lane first, then due."""
    return Priority(lane).rank, due or datetime.min


# -- rate-limit slots --------------------------------------------------------------------

_TENANT = bindparam("tenant", type_=String)
_SINCE = bindparam("since", type_=UtcDateTime)

_COUNT = select(func.count()).where(
    rate_events.c.tenant == _TENANT, rate_events.c.taken_at > _SINCE
)
_COUNT_BULK = _COUNT.where(rate_events.c.lane == Priority.BULK.value)
# The k-th newest hand-off (bookings included): when it leaves the window, a slot frees.
_KTH_NEWEST = (
    select(rate_events.c.taken_at)
    .where(rate_events.c.tenant == _TENANT)
    .order_by(rate_events.c.taken_at.desc())
    .limit(1)
    .offset(bindparam("k", type_=Integer))
)
_BOOKING = select(rate_events.c.taken_at).where(
    rate_events.c.message_id == bindparam("message_id", type_=String)
)

PACING_PARTS = 60
"""Bulk mail takes at most 1/60 of its share in each 1/60 of a window (at least one)."""


def bulk_cap(count: int, share: float) -> int:
    """How many of a window's ``count`` slots bulk mail may fill: ``share`` of them, and
    always at least one."""
    return max(1, math.floor(count * share))


def take_slot(
    conn: Connection,
    tenant: str,
    limits: Sequence[tuple[int, float]],
    *,
    message_id: str,
    lane: Priority,
    bulk_share: float,
    now: datetime,
) -> SlotWait | None:
    """Take (or book) a slot; see ``Store.take_slot``. One count per window, no rows read."""
    booked = conn.execute(_BOOKING, {"message_id": message_id}).scalar()
    if booked is not None:
        booked = _aware(booked)
        if booked <= now + timedelta(milliseconds=50):
            return None  # the slot this message booked (or took before a retry)
        return SlotWait(booked, WaitingFor.RATE_LIMIT)
    waits: list[SlotWait] = []
    for count, per in limits:
        since = now - timedelta(seconds=per)
        total = int(conn.execute(_COUNT, {"tenant": tenant, "since": since}).scalar() or 0)
        if total >= count:
            waits.append(SlotWait(_kth(conn, tenant, count, per, now), WaitingFor.RATE_LIMIT))
            continue
        if lane is not Priority.BULK:
            continue
        cap = bulk_cap(count, bulk_share)
        if total >= cap:
            bulk = int(conn.execute(_COUNT_BULK, {"tenant": tenant, "since": since}).scalar() or 0)
            if bulk > 0:  # bulk has had its one slot of this window
                waits.append(SlotWait(_kth(conn, tenant, cap, per, now), WaitingFor.PRIORITY))
                continue
        part = per / PACING_PARTS
        recent = conn.execute(
            _COUNT_BULK, {"tenant": tenant, "since": now - timedelta(seconds=part)}
        ).scalar()
        if int(recent or 0) >= max(1, math.ceil(cap / PACING_PARTS)):
            waits.append(SlotWait(now + timedelta(seconds=part), WaitingFor.PRIORITY))
    if not waits:
        conn.execute(
            rate_events.insert().values(
                tenant=tenant, taken_at=now, message_id=message_id, lane=lane.value
            )
        )
        return None
    wait = max(waits, key=lambda w: w.free_at)
    if lane is Priority.URGENT and wait.waiting_for is WaitingFor.RATE_LIMIT:
        # Book the next free slot: counted from now on, so nothing else takes it.
        free_at = max(wait.free_at, now)
        conn.execute(
            rate_events.insert().values(
                tenant=tenant, taken_at=free_at, message_id=message_id, lane=lane.value
            )
        )
        return SlotWait(free_at, WaitingFor.RATE_LIMIT)
    return wait


def _kth(conn: Connection, tenant: str, k: int, per: float, now: datetime) -> datetime:
    """When the ``k``-th newest slot (bookings included) leaves the window of ``per``."""
    newest = conn.execute(_KTH_NEWEST, {"tenant": tenant, "k": k - 1}).scalar()
    if newest is None:
        return now
    return max(now, _aware(newest) + timedelta(seconds=per))


def forget_old_slots(conn: Connection, tenant: str, *, longest: float, now: datetime) -> None:
    """Delete the hand-offs no window can see any more."""
    conn.execute(
        rate_events.delete().where(
            rate_events.c.tenant == tenant,
            rate_events.c.taken_at <= now - timedelta(seconds=longest),
        )
    )


def _aware(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


# -- enqueue: folded duplicates and per-recipient limits ---------------------------------

_FOLD_INTO = (
    select(messages.c.id)
    .where(
        messages.c.content_hash == bindparam("hash", type_=String),
        messages.c.created_at > bindparam("since", type_=UtcDateTime),
        messages.c.status != Status.ABANDONED.value,
    )
    .order_by(messages.c.created_at.desc())
    .limit(1)
)
_FOLD = (
    update(messages)
    .where(messages.c.id == bindparam("target", type_=String))
    .values(folded_duplicates=messages.c.folded_duplicates + 1)
    .returning(*messages.c)
)

_RECIPIENT = bindparam("recipient", type_=String)
_RECENT = (
    messages.c.tenant == _TENANT,
    func.lower(messages.c.recipient) == _RECIPIENT,
    messages.c.created_at > _SINCE,
    messages.c.priority != Priority.BULK.value,
    messages.c.template_type != TemplateType.TEST.value,
)
_LAST_OF_TYPE = select(func.max(messages.c.created_at)).where(
    *_RECENT, messages.c.template_type == bindparam("template_type", type_=String)
)
_HOUR_COUNT = select(func.count()).where(*_RECENT)
_HOUR_KTH = (
    select(messages.c.created_at)
    .where(*_RECENT)
    .order_by(messages.c.created_at.desc())
    .limit(1)
    .offset(bindparam("k", type_=Integer))
)


@dataclass
class Pending:
    """The rows of one enqueue transaction not yet written, so that duplicates and limits
    see them too."""

    by_hash: dict[str, dict[str, Any]]
    rows: list[dict[str, Any]]


def fold(
    conn: Connection, new: NewMessage, rules: EnqueueRules, now: datetime, pending: Pending
) -> dict[str, Any] | Row[Any] | None:
    """The message ``new`` folds into (its ``folded_duplicates`` counted up), or None."""
    if rules.dedupe_window <= 0 or new.content_hash is None or new.idempotency_key is not None:
        return None
    row = pending.by_hash.get(new.content_hash)
    if row is not None:
        row["folded_duplicates"] += 1
        return row
    since = now - timedelta(seconds=rules.dedupe_window)
    target = conn.execute(_FOLD_INTO, {"hash": new.content_hash, "since": since}).scalar()
    if target is None:
        return None
    return conn.execute(_FOLD, {"target": target}).first()


def counted(new: NewMessage, rules: EnqueueRules) -> bool:
    """Whether the per-recipient limits apply to ``new``."""
    return (
        (rules.cooldown > 0 or rules.per_hour > 0)
        and new.priority is not Priority.BULK
        and new.template_type is not TemplateType.TEST
    )


def check_recipient_limits(
    conn: Connection, new: NewMessage, rules: EnqueueRules, now: datetime, pending: Pending
) -> None:
    """Raise :class:`RecipientLimitError` when ``new`` would go past a per-recipient limit."""
    if not counted(new, rules):
        return
    who = new.recipient.lower()
    mine = [r for r in pending.rows if r["tenant"] == new.tenant and r["recipient"].lower() == who]
    mine = [r for r in mine if counted(_as_new(r), rules)]
    params = {"tenant": new.tenant, "recipient": who}
    if rules.cooldown > 0:
        since = now - timedelta(seconds=rules.cooldown)
        kind = new.template_type.value
        last = conn.execute(
            _LAST_OF_TYPE, {**params, "since": since, "template_type": kind}
        ).scalar()
        times = [_aware(last)] if last is not None else []
        times += [r["created_at"] for r in mine if r["template_type"] == kind]
        if times:
            raise cooldown_error(new, rules, max(times) + timedelta(seconds=rules.cooldown) - now)
    if rules.per_hour > 0:
        since = now - timedelta(hours=1)
        stored = int(conn.execute(_HOUR_COUNT, {**params, "since": since}).scalar() or 0)
        if stored + len(mine) >= rules.per_hour:
            times = sorted([r["created_at"] for r in mine], reverse=True)
            k = rules.per_hour - 1 - len(times)
            if k >= 0:
                kth = conn.execute(_HOUR_KTH, {**params, "since": since, "k": k}).scalar()
                oldest = _aware(kth) if kth is not None else now
            else:
                oldest = times[rules.per_hour - 1]
            raise per_hour_error(new, rules, oldest + timedelta(hours=1) - now)


def cooldown_error(new: NewMessage, rules: EnqueueRules, wait: timedelta) -> RecipientLimitError:
    """The refusal of a message that comes within the cooldown of the last one."""
    return RecipientLimitError(
        f"courier.recipient_limits.cooldown: {new.recipient} was sent a "
        f"{new.template_type.value} message less than {_secs(rules.cooldown)} ago; try again "
        f"in {_secs(wait)}",
        limit="cooldown",
        retry_after=whole_seconds(wait),
    )


def per_hour_error(new: NewMessage, rules: EnqueueRules, wait: timedelta) -> RecipientLimitError:
    """The refusal of a message past a recipient's hourly cap."""
    return RecipientLimitError(
        f"courier.recipient_limits.per_hour: {new.recipient} has had {rules.per_hour} "
        f"messages in the past hour, the limit; try again in {_secs(wait)}",
        limit="per_hour",
        retry_after=whole_seconds(wait),
    )


def _as_new(row: dict[str, Any]) -> NewMessage:
    return NewMessage(
        tenant=row["tenant"],
        recipient=row["recipient"],
        template_type=TemplateType(row["template_type"]),
        template_data={},
        subject="",
        body="",
        html_body=None,
        mime=b"",
        priority=Priority(row["priority"]),
    )


def whole_seconds(wait: timedelta | float) -> int:
    """A wait as whole seconds, rounded up, at least 1 (what ``Retry-After`` says)."""
    seconds = wait.total_seconds() if isinstance(wait, timedelta) else wait
    return max(1, math.ceil(seconds))


def _secs(wait: timedelta | float) -> str:
    return f"{whole_seconds(wait)}s"


def advisory_keys(batch: Sequence[NewMessage]) -> list[str]:
    """The PostgreSQL advisory locks an enqueue takes, sorted (so two never deadlock): one
    per content hash and one per recipient, so concurrent enqueues of duplicates, or past a
    recipient's limit, queue behind each other instead of both winning."""
    keys = {f"postroom-fold:{n.content_hash}" for n in batch if n.content_hash}
    keys |= {f"postroom-rcpt:{n.tenant}:{n.recipient.lower()}" for n in batch}
    return sorted(keys)


LOCK = text("SELECT pg_advisory_xact_lock(hashtext(:key))")


# -- the same rules in Python, for the memory store ---------------------------------------


def pick_lanes(
    due: Sequence[Message], room: int, tenants: Mapping[str, float], now: datetime
) -> list[Message]:
    """The messages a claim of ``room`` takes from ``due``, by the rules of ``claim_lanes``."""
    picked: list[Message] = []
    taken: set[str] = set()
    order = sorted(due, key=lambda m: m.next_attempt_at or now)
    for rank in range(4):
        steps = []
        for tenant in tenants:
            lane, cutoff = _lanes(now, tenants[tenant])[rank]
            steps.append(
                [
                    m
                    for m in order
                    if m.tenant == tenant
                    and m.priority is lane
                    and m.id not in taken
                    and (m.next_attempt_at or now) < cutoff
                ]
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
    others = [m for m in order if m.tenant not in tenants and m.id not in taken]
    return picked + others[: room - len(picked)]


def slot_wait(
    events: Sequence[tuple[datetime, str | None, Priority]],
    limits: Sequence[tuple[int, float]],
    *,
    message_id: str,
    lane: Priority,
    share: float,
    now: datetime,
) -> SlotWait | None:
    """:func:`take_slot` over a list of (time, message id, lane) slots, taking nothing."""
    for taken_at, mid, _lane in events:
        if mid == message_id:
            if taken_at <= now + timedelta(milliseconds=50):
                return None
            return SlotWait(taken_at, WaitingFor.RATE_LIMIT)
    newest = sorted((e[0] for e in events), reverse=True)
    waits: list[SlotWait] = []
    for count, per in limits:
        since = now - timedelta(seconds=per)
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
        if total >= cap and any(t > since for t in bulk):
            waits.append(
                SlotWait(max(now, newest[cap - 1] + timedelta(seconds=per)), WaitingFor.PRIORITY)
            )
            continue
        part = per / PACING_PARTS
        recent = sum(1 for t in bulk if t > now - timedelta(seconds=part))
        if recent >= max(1, math.ceil(cap / PACING_PARTS)):
            waits.append(SlotWait(now + timedelta(seconds=part), WaitingFor.PRIORITY))
    if not waits:
        return None
    wait = max(waits, key=lambda w: w.free_at)
    if lane is Priority.URGENT and wait.waiting_for is WaitingFor.RATE_LIMIT:
        return SlotWait(max(wait.free_at, now), WaitingFor.RATE_LIMIT)
    return wait
