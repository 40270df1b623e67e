"""Rate-limit slots that go to the most urgent mail first: counts over index ranges (no rows
read), bulk kept to its share of each window and paced, and urgent mail booking the next free
slot so that nothing else takes it. :func:`slot_wait` is the same rule in Python, for the
memory store.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta

from sqlalchemy import (
    ColumnElement,
    Connection,
    Integer,
    String,
    and_,
    bindparam,
    case,
    false,
    func,
    or_,
    select,
    true,
)

from postroom.models import Priority, Status, WaitingFor
from postroom.store.base import SlotWait
from postroom.store.lane_rules import BOOKING_EARLY, aware, bulk_cap, bulk_grows_at, bulk_pace
from postroom.store.schema import UtcDateTime, messages, rate_events

# -- rate-limit slots --------------------------------------------------------------------

_TENANT = bindparam("tenant", type_=String)
_SINCE = bindparam("since", type_=UtcDateTime)
_NOW = bindparam("now", type_=UtcDateTime)
_UNFINISHED_SINCE = bindparam("unfinished_since", type_=UtcDateTime)

# A slot whose hand-off is not written yet (its message id is still on it) may be arriving at
# the provider right now, however long ago it was taken: a send slower than the window, or a
# status write held up. It counts as taken now until its outcome moves it to the hand-off's
# time, for at most a lease (a worker that died never writes it).
_UNFINISHED = and_(
    rate_events.c.message_id.is_not(None),
    rate_events.c.taken_at > _UNFINISHED_SINCE,
    rate_events.c.taken_at < _NOW,
)
_AT = case((_UNFINISHED, _NOW), else_=rate_events.c.taken_at)  # when the slot counts from
_MESSAGE = bindparam("message_id", type_=String)
_BOOKED = bindparam("booked", type_=UtcDateTime)  # this message's booking (or the far future)
# The slots that count against this message: written hand-offs, and the other messages'
# slots taken or booked before its own booking (those after it were given out counting it:
# a message checking the slot it booked again does not wait for those booked behind it).
# (A CASE, not an OR: SQLite would read each OR term from an index of its own, the first one
# every written slot of every tenant; a CASE is a filter on the window's range.)
_AHEAD = case(
    (rate_events.c.message_id.is_(None), true()),
    (rate_events.c.taken_at < _BOOKED, true()),
    (and_(rate_events.c.taken_at == _BOOKED, rate_events.c.message_id < _MESSAGE), true()),
    else_=false(),
)
_IN_WINDOW = and_(  # the other messages' slots in the window
    rate_events.c.tenant == _TENANT,
    # Two index ranges: the window's slots, and a lease's worth for those not yet written.
    or_(rate_events.c.taken_at > _SINCE, _UNFINISHED),
    _AHEAD,
)

_COUNT = select(func.count()).where(_IN_WINDOW)
_COUNT_BULK = _COUNT.where(rate_events.c.lane == Priority.BULK.value)
# The k-th newest hand-off (bookings included): when it leaves the window, a slot frees.
_KTH_NEWEST = (
    select(_AT)
    .where(_IN_WINDOW)
    .order_by(_AT.desc())
    .limit(1)
    .offset(bindparam("k", type_=Integer))
)
# The oldest slot in the window (by when it was taken): one index probe.
_OLDEST = (
    select(rate_events.c.taken_at)
    .where(rate_events.c.tenant == _TENANT, rate_events.c.taken_at > _SINCE)
    .order_by(rate_events.c.taken_at)
    .limit(1)
)
_OWN = rate_events.c.message_id == _MESSAGE
_BOOKING = select(rate_events.c.taken_at).where(_OWN)


_NEVER = datetime(9999, 1, 1, tzinfo=UTC)


def _window(
    tenant: str, message_id: str, booked: datetime | None, per: float, now: datetime, lease: float
) -> dict[str, object]:
    """The parameters of a count of the slots ahead of ``message_id``'s in the last ``per``
    seconds (``booked``: when the slot it holds counts from; None: it holds none)."""
    since = now - timedelta(seconds=per)
    unfinished_since = now - timedelta(seconds=lease)
    return {
        "tenant": tenant,
        "message_id": message_id,
        "booked": _NEVER if booked is None else booked,
        "since": since,
        "now": now,
        "unfinished_since": unfinished_since,
    }


def take_slot(
    conn: Connection,
    tenant: str,
    limits: Sequence[tuple[int, float]],
    *,
    message_id: str,
    lane: Priority,
    bulk_share: float,
    lease: float,
    now: datetime,
) -> SlotWait | None:
    """Take (or book) a slot; see ``Store.take_slot``. Counts and index probes, no rows read."""
    held = conn.execute(_BOOKING, {"message_id": message_id}).scalar()
    booked = None if held is None else aware(held)
    if booked is not None and booked > now + BOOKING_EARLY:
        return SlotWait(booked, WaitingFor.RATE_LIMIT)  # its booked slot is not due
    # A slot it booked is checked again, at its time, like a new one: what filled the window
    # may have arrived later than it was counted when it booked.
    at = now if booked is None else max(now, booked)
    waits: list[SlotWait] = []
    for count, per in limits:
        window = _window(tenant, message_id, booked, per, at, lease)
        total = int(conn.execute(_COUNT, window).scalar() or 0)
        if total >= count:
            waits.append(SlotWait(_kth(conn, window, count, per, now), WaitingFor.RATE_LIMIT))
            continue
        if lane is not Priority.BULK:
            continue
        cap = bulk_cap(count, bulk_share)
        grows = None  # None: room for bulk now (or the window is full for it)
        if 0 < total < cap:
            oldest = conn.execute(_OLDEST, window).scalar()
            grows = bulk_grows_at(cap, per, total, None if oldest is None else aware(oldest), at)
        full = total >= cap or grows is not None
        if full and int(conn.execute(_COUNT_BULK, window).scalar() or 0) > 0:
            # No room for bulk, and it has had its one slot of this window.
            free_at = grows or _kth(conn, window, cap, per, now)
            waits.append(SlotWait(max(now, free_at), WaitingFor.PRIORITY))
            continue
        k, part = bulk_pace(cap, per)
        paced = _window(tenant, message_id, booked, part, at, lease)
        recent = int(conn.execute(_COUNT_BULK, paced).scalar() or 0)
        if recent >= k:
            waits.append(SlotWait(now + timedelta(seconds=part), WaitingFor.PRIORITY))
    if not waits:
        if booked is None:
            _hold(conn, tenant, message_id, lane, now)
        return None  # a slot it booked or held already is its own
    wait = max(waits, key=lambda w: w.free_at)
    if lane is Priority.BULK:  # spread over the window: a big send is not claimed at once
        wait = replace(wait, spread=max(per for _count, per in limits))
    if booked is not None:  # what it held is no longer a slot of its own
        conn.execute(rate_events.delete().where(_OWN), {"message_id": message_id})
    if lane is Priority.URGENT and wait.waiting_for is WaitingFor.RATE_LIMIT:
        # Book the next free slot: counted from now on, so nothing else takes it.
        free_at = max(wait.free_at, now)
        _hold(conn, tenant, message_id, lane, free_at)
        return SlotWait(free_at, WaitingFor.RATE_LIMIT)
    return wait


def _hold(conn: Connection, tenant: str, message_id: str, lane: Priority, at: datetime) -> None:
    """Hold a slot at ``at`` for ``message_id``: taken now, or booked for later."""
    conn.execute(
        rate_events.insert().values(
            tenant=tenant, taken_at=at, message_id=message_id, lane=lane.value
        )
    )


def _kth(
    conn: Connection, window: dict[str, object], k: int, per: float, now: datetime
) -> datetime:
    """When the ``k``-th newest slot (bookings included) leaves the window of ``per``."""
    newest = conn.execute(_KTH_NEWEST, {**window, "k": k - 1}).scalar()
    if newest is None:
        return now
    return max(now, aware(newest) + timedelta(seconds=per))


def forget_old_slots(
    conn: Connection, tenant: str, *, longest: float, lease: float, now: datetime
) -> None:
    """Delete the hand-offs no window can see any more (unfinished ones after a lease)."""
    conn.execute(
        rate_events.delete().where(
            rate_events.c.tenant == tenant,
            rate_events.c.taken_at <= now - timedelta(seconds=longest),
            or_(
                rate_events.c.message_id.is_(None),
                rate_events.c.taken_at <= now - timedelta(seconds=lease),
            ),
        )
    )


def forget_slots_of(conn: Connection, ids: Sequence[str], *, released: bool = False) -> None:
    """Delete the slots (bookings, in practice) of messages given up or given back without
    a send; ``released``: only of those that are queued again (another worker may hold one
    whose lease this worker lost, with a slot of its own)."""
    doomed: ColumnElement[bool] = rate_events.c.message_id.in_(list(ids))
    if released:
        queued = select(messages.c.id).where(
            messages.c.id.in_(list(ids)), messages.c.status == Status.QUEUED.value
        )
        doomed = and_(doomed, rate_events.c.message_id.in_(queued))
    conn.execute(rate_events.delete().where(doomed))
