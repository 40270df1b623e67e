"""Priority lanes in SQL: claims lane by lane and tenant by tenant, most urgent first.

Every statement is built once and run with bind parameters (they run for every claim). Each
claim statement reads one index range (``ix_messages_lane_due``: status, tenant, lane, due
time) and stops at its limit, so a claim costs the same with a million messages queued as
with ten. :func:`pick_lanes` is the same rule in Python, for the memory store.
"""

from __future__ import annotations

import itertools
import math
from datetime import datetime
from typing import Any

from sqlalchemy import (
    Connection,
    Integer,
    String,
    bindparam,
    func,
    select,
    text,
    union_all,
    update,
)
from sqlalchemy.engine import Row

from postroom.models import Priority, Status
from postroom.store.lane_rules import LaneClaim, lane_cutoffs
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


def _due(lane: Any, cutoff: str) -> Any:
    """The ids of one tenant's ``lane`` due before ``:cutoff``, in due order, up to ``:n``."""
    return (
        select(messages.c.id)
        .where(
            messages.c.status == Status.QUEUED.value,
            messages.c.tenant == bindparam("b_tenant", type_=String),
            messages.c.priority == lane,
            messages.c.next_attempt_at < bindparam(cutoff, type_=UtcDateTime),
        )
        .order_by(messages.c.next_attempt_at)
        .limit(bindparam("n", type_=Integer))
        .with_for_update(skip_locked=True)
    )


_TAKE_LANE = _lease(_due(bindparam("b_lane", type_=String), "cutoff"))

# A look for urgent mail: a tenant's normal mail past its aging, then its urgent mail, in one
# statement (one round trip in front of a login code instead of two).
_AGED = _due(Priority.NORMAL.value, "aged").cte("aged")
_URGENT = _due(Priority.URGENT.value, "cutoff").cte("urgent")
_TAKE_URGENT = _lease(
    union_all(select(_AGED.c.id), select(_URGENT.c.id)).limit(bindparam("n", type_=Integer))
)

# Tenants the worker did not name (removed from the configuration): due order, any lane.
_TAKE_OTHERS = _lease(
    select(messages.c.id)
    .where(
        messages.c.status == Status.QUEUED.value,
        messages.c.next_attempt_at < bindparam("cutoff", type_=UtcDateTime),
        messages.c.tenant.in_(bindparam("others", expanding=True)),
    )
    .order_by(messages.c.next_attempt_at)
    .limit(bindparam("n", type_=Integer))
    .with_for_update(skip_locked=True)
)

# Every tenant with queued mail, one index probe per tenant (a "loose index scan": the next
# tenant after the last, in the (status, tenant, ...) order of ix_messages_lane_due). Asking
# "queued mail of a tenant not named?" directly reads every queued row: 25 ms with 100,000
# queued on PostgreSQL, on every claim that leaves room, in front of a login code.
_QUEUED_TENANTS = text(
    "WITH RECURSIVE queued(tenant) AS ("
    " SELECT (SELECT tenant FROM messages WHERE status = :queued"
    " ORDER BY status, tenant LIMIT 1)"
    " UNION ALL"
    " SELECT (SELECT m.tenant FROM messages m WHERE m.status = :queued AND m.tenant > q.tenant"
    " ORDER BY m.status, m.tenant LIMIT 1)"
    " FROM queued q WHERE q.tenant IS NOT NULL"
    ") SELECT tenant FROM queued WHERE tenant IS NOT NULL"
).bindparams(queued=Status.QUEUED.value)

_turn = itertools.count()

CAP = "_cap"
"""The key of a claim step's cap (not a bind parameter): see :func:`_share`."""


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
        plans = {tenant: lane_cutoffs(now, tenants[tenant]) for tenant in order}
        if urgent_only and not how.skip_urgent:  # both urgent ranks in one statement
            steps = [{"b_tenant": t, "aged": plans[t][0][1], "cutoff": now} for t in order]
            return _share(conn, _TAKE_URGENT, params, steps, room)
        for rank in how.ranks:
            if room <= 0:
                break
            steps = [
                {"b_tenant": t, "b_lane": lane.value, "cutoff": cutoff, CAP: how.cap(t, lane)}
                for t in order
                for lane, cutoff in [plans[t][rank]]
                if not (lane is Priority.BULK and t in hold_bulk)
            ]
            taken = _share(conn, _TAKE_LANE, params, steps, room) if steps else []
            rows += taken
            room -= len(taken)
    if room > 0 and not urgent_only:
        others = [t for t in conn.execute(_QUEUED_TENANTS).scalars() if t not in tenants]
        if others:
            rows += conn.execute(
                _TAKE_OTHERS, {**params, "cutoff": now, "others": others, "n": room}
            ).all()
    return rows


def _share(
    conn: Connection,
    statement: Any,
    params: dict[str, Any],
    steps: list[dict[str, Any]],
    room: int,
) -> list[Row[Any]]:
    """Run ``statement`` for every tenant's ``steps``, the room shared evenly: each tenant
    gets an equal part of what is left, and what the others left unused goes to those that
    had more. A step's ``CAP`` (when not None) bounds what it takes in all."""
    rows: list[Row[Any]] = []
    hungry: list[tuple[dict[str, Any], int | None]] = []
    for index, step in enumerate(steps):
        part = math.ceil((room - len(rows)) / (len(steps) - index))
        if part <= 0:
            break
        cap = step.get(CAP)
        binds = {k: v for k, v in step.items() if k != CAP}
        n = part if cap is None else min(part, cap)
        got = conn.execute(statement, {**params, **binds, "n": n}).all() if n > 0 else []
        rows += got
        if len(got) == n and (cap is None or n < cap):
            hungry.append((binds, None if cap is None else cap - n))
    for binds, left in hungry if len(steps) > 1 else []:
        if len(rows) >= room:
            break
        n = room - len(rows) if left is None else min(room - len(rows), left)
        rows += conn.execute(statement, {**params, **binds, "n": n}).all()
    return rows


LANE_SUMMARY = (
    select(messages.c.priority, func.count(), func.min(messages.c.next_attempt_at))
    .where(messages.c.status == Status.QUEUED.value)
    .group_by(messages.c.priority)
)
