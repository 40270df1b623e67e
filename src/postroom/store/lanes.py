"""Priority lanes in SQL: claims lane by lane and tenant by tenant, most urgent first.

Every statement is built once and run with bind parameters (they run for every claim). Each
claim statement reads one index range (``ix_messages_lane_due``: status, tenant, lane, due
time) and stops at its limit, so a claim costs the same with a million messages queued as
with ten. :func:`pick_lanes` is the same rule in Python, for the memory store.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Integer, String, bindparam, func, select, update
from sqlalchemy.engine import Row

from postroom.models import Message, Priority, Status
from postroom.store.schema import UtcDateTime, messages

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


@dataclass(frozen=True, slots=True)
class LaneClaim:
    """How a claim reads the lanes: ``tenants`` with their ``priority_aging`` (seconds),
    ``urgent_only`` (aged normal and urgent mail only), and the tenants whose bulk mail is
    held back (``hold_bulk``). See ``Queue.claim``."""

    tenants: Mapping[str, float]
    urgent_only: bool = False
    hold_bulk: frozenset[str] = frozenset()


def claim_lanes(
    conn: Connection, params: dict[str, Any], *, room: int, how: LaneClaim
) -> list[Row[Any]]:
    """Lease up to ``room`` due messages, lane by lane; see ``Queue.claim``."""
    now: datetime = params["now"]
    rows: list[Row[Any]] = []
    tenants, urgent_only, hold_bulk = how.tenants, how.urgent_only, how.hold_bulk
    named = list(tenants)
    if named:
        first = next(_turn) % len(named)  # who goes first turns, so ties even out
        order = named[first:] + named[:first]
        plans = {tenant: _lanes(now, tenants[tenant]) for tenant in order}
        for rank in range(2 if urgent_only else 4):
            if room <= 0:
                break
            steps = [(t, *plans[t][rank]) for t in order]
            steps = [s for s in steps if not (s[1] is Priority.BULK and s[0] in hold_bulk)]
            taken = _share(conn, params, steps, room) if steps else []
            rows += taken
            room -= len(taken)
    if room > 0 and not urgent_only:
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


LANE_SUMMARY = (
    select(messages.c.priority, func.count(), func.min(messages.c.next_attempt_at))
    .where(messages.c.status == Status.QUEUED.value)
    .group_by(messages.c.priority)
)


def summarise(rows: Sequence[Any], now: datetime) -> dict[str, tuple[int, float]]:
    """(queued, seconds the oldest has been due) per lane, every lane present."""
    out = {lane.value: (0, 0.0) for lane in Priority}
    for lane, count, oldest in rows:
        overdue = (now - aware(oldest)).total_seconds() if oldest is not None else 0.0
        out[str(lane)] = (int(count), max(0.0, overdue))
    return out


def pick_lanes(due: Sequence[Message], room: int, how: LaneClaim, now: datetime) -> list[Message]:
    """The messages a claim of ``room`` takes from ``due``, by the rules of ``claim_lanes``."""
    tenants, urgent_only, hold_bulk = how.tenants, how.urgent_only, how.hold_bulk
    picked: list[Message] = []
    taken: set[str] = set()
    order = sorted(due, key=lambda m: m.next_attempt_at or now)
    for rank in range(2 if urgent_only else 4):
        steps = []
        for tenant in tenants:
            lane, cutoff = _lanes(now, tenants[tenant])[rank]
            steps.append(
                [
                    m
                    for m in order
                    if m.tenant == tenant
                    and m.priority is lane
                    and not (lane is Priority.BULK and tenant in hold_bulk)
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
    if urgent_only:
        return picked
    others = [m for m in order if m.tenant not in tenants and m.id not in taken]
    return picked + others[: room - len(picked)]


def aware(value: datetime) -> datetime:
    """``value`` as UTC-aware (SQLite hands back naive times)."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value
