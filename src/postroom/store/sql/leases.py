"""The SQL queue's verbs for workers: atomic claims with leases (expired leases first, then
lane by lane), renewals, releases, completions with their dispatch rows, rate-limit slots, and
what falls due next (see :class:`~postroom.store.Queue`). Enqueueing is :mod:`.queue`."""

from __future__ import annotations

import random
from collections.abc import Collection, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Integer, String, bindparam, func, select, text, update

from postroom import clock
from postroom.models import Message, Priority, Status
from postroom.store import lanes, slots
from postroom.store.base import Completion, SlotWait
from postroom.store.lane_rules import SLOT_LEASE, LaneClaim
from postroom.store.listener_sql import fill_bodies
from postroom.store.schema import UtcDateTime, dispatches, messages, rate_events
from postroom.store.sql.engine import SqlEngine
from postroom.store.sql.rows import aware, dispatch_row, message_from_row


class SqlLeases(SqlEngine):
    """The worker's verbs over SQLAlchemy Core."""

    def _claim_sync(
        self,
        worker: str,
        limit: int,
        lease: float,
        completions: Sequence[Completion],
        lanes_: LaneClaim,
    ) -> list[Message]:
        # A look for urgent mail, in front of a login code, is one statement per tenant in a
        # transaction of its own (each statement leases what it takes atomically); messages
        # of dead workers wait for the next full claim.
        quick = lanes_.urgent_only and not completions and self.postgres
        with self._autocommit.connect() if quick else self._state.begin() as conn:
            if completions:
                self._record(conn, completions, worker)
            now = clock.utcnow()
            params = {"now": now, "worker": worker, "until": now + timedelta(seconds=lease)}
            # A full claim: messages of dead workers first (rare), then the due ones lane by
            # lane, in one transaction.
            rows = [] if quick else list(conn.execute(_TAKE_EXPIRED, {**params, "n": limit}))
            if rows:  # the dead holder may have handed them off: count its slots from now
                conn.execute(_MOVE_SLOTS, {"ids": [r.id for r in rows], "now": now})
            if len(rows) < limit:
                rows += lanes.claim_lanes(conn, params, room=limit - len(rows), how=lanes_)
            claimed = fill_bodies(conn, [message_from_row(r) for r in rows])
        return sorted(claimed, key=lambda m: (m.priority.rank, m.created_at))

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
        """Record ``completions``, then lease up to ``limit`` due messages lane by lane; see
        :class:`~postroom.store.Queue`."""
        how = LaneClaim(
            tenants or {}, urgent_only, frozenset(hold_bulk), skip_urgent, bulk_caps or {}
        )
        claimed = await self._run_state(
            lambda: self._claim_sync(worker, limit, lease, completions, how)
        )
        self._wake_for(completions)
        return claimed

    def _renew_sync(self, ids: Sequence[str], worker: str, lease: float) -> None:
        now = clock.utcnow()
        with self._state.begin() as conn:
            conn.execute(_held(ids, worker).values(lease_until=now + timedelta(seconds=lease)))

    async def renew(self, message_ids: Sequence[str], *, worker: str, lease: float) -> None:
        """Extend the lease of messages this worker still holds."""
        if message_ids:
            await self._run_state(lambda: self._renew_sync(message_ids, worker, lease))

    def _release_sync(self, ids: Sequence[str], worker: str) -> None:
        now = clock.utcnow()
        with self._state.begin() as conn:
            conn.execute(
                _held(ids, worker).values(
                    status=Status.QUEUED.value,
                    lease_owner=None,
                    lease_until=None,
                    next_attempt_at=now,
                    updated_at=now,
                )
            )
            slots.forget_slots_of(conn, ids, released=True)

    async def release(self, message_ids: Sequence[str], *, worker: str) -> None:
        """Give back leased messages that were not attempted, due again now."""
        if message_ids:
            await self._run_state(lambda: self._release_sync(message_ids, worker))
            self._wake.ring()

    def _complete_sync(self, completions: Sequence[Completion], worker: str) -> None:
        with self._state.begin() as conn:
            self._record(conn, completions, worker)

    def _record(self, conn: Connection, completions: Sequence[Completion], worker: str) -> None:
        """Write the new status of each message and a dispatch row for each attempt."""
        now = clock.utcnow()
        rows = []
        # The common case, plain successes, in one statement.
        plain = [
            c for c in completions if c.status is Status.SENT and c.attempted and c.error is None
        ]
        if plain:
            conn.execute(_MARK_SENT, {"ids": [c.message_id for c in plain], "now": now})
        plain_ids = {c.message_id for c in plain}
        for c in completions:
            error = c.error.to_json() if c.error else None
            if c.message_id in plain_ids:
                rows.append(dispatch_row(c, None, worker, now))
                continue
            values: dict[str, Any] = {
                "status": c.status.value,
                "updated_at": now,
                "lease_owner": None,
                "lease_until": None,
                "next_attempt_at": c.next_attempt_at,
                "waiting_for": c.waiting_for.value if c.waiting_for else None,
                "reclaimed_from": None,
            }
            if error is not None:
                values["last_error"] = error
            if c.attempted:
                values["send_count"] = messages.c.send_count + 1
                rows.append(dispatch_row(c, error, worker, now))
            conn.execute(update(messages).where(messages.c.id == c.message_id).values(values))
        if rows:
            conn.execute(dispatches.insert(), rows)
            moved = [r["message_id"] for r in rows]
            conn.execute(_MOVE_SLOTS, {"ids": moved, "now": now})
        dropped = [c.message_id for c in completions if c.ends_unsent]
        if dropped:
            slots.forget_slots_of(conn, dropped)

    async def complete(self, completions: Sequence[Completion], *, worker: str) -> None:
        """Record attempts and new statuses in one transaction; see :class:`Store`."""
        if completions:
            await self._run_state(lambda: self._complete_sync(completions, worker))
            self._wake_for(completions)

    def _wake_for(self, completions: Sequence[Completion]) -> None:
        """A message queued again (a retry) may be due before the next poll: wake up."""
        if any(c.status is Status.QUEUED for c in completions):
            self._wake.ring()

    def _take_slot_sync(
        self,
        tenant: str,
        limits: Sequence[tuple[int, float]],
        message_id: str,
        lane: Priority,
        bulk_share: float,
        lease: float,
    ) -> SlotWait | None:
        with self._state.begin() as conn:
            if self.postgres:  # serialise the tenant's check-and-take across processes
                conn.execute(
                    text("SELECT pg_advisory_xact_lock(hashtext(:key))"),
                    {"key": f"postroom-rate:{tenant}"},
                )
            now = clock.utcnow()  # after the lock: the slot is taken now, not when we asked
            wait = slots.take_slot(
                conn,
                tenant,
                limits,
                message_id=message_id,
                lane=lane,
                bulk_share=bulk_share,
                lease=lease,
                now=now,
            )
            if random.random() < 0.01:  # now and then, forget what no window can see
                longest = max(per for _count, per in limits)
                slots.forget_old_slots(conn, tenant, longest=longest, lease=lease, now=now)
        return wait

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
        """Take (or book) a hand-off slot of ``tenant``; see :class:`~postroom.store.Queue`."""
        if not limits:
            return None
        return await self._run_state(
            lambda: self._take_slot_sync(tenant, limits, message_id, lane, bulk_share, lease)
        )

    def _next_due_sync(self) -> datetime | None:
        with self._reader.connect() as conn:
            value = conn.execute(
                select(func.min(messages.c.next_attempt_at)).where(
                    messages.c.status == Status.QUEUED.value
                )
            ).scalar()
            lease = conn.execute(
                select(func.min(messages.c.lease_until)).where(
                    messages.c.status == Status.PROCESSING.value
                )
            ).scalar()
        times = [aware(t) for t in (value, lease) if t is not None]
        return min(times) if times else None

    async def next_due(self) -> datetime | None:
        """When the next queued message (or an expiring lease) falls due."""
        return await self._run(self._next_due_sync)

    def _count_pending_sync(self) -> int:
        with self._reader.connect() as conn:
            value = conn.execute(
                select(func.count()).where(
                    messages.c.status.in_([Status.QUEUED.value, Status.PROCESSING.value])
                )
            ).scalar()
        return int(value or 0)

    async def count_pending(self) -> int:
        """How many messages are queued or processing."""
        return await self._run(self._count_pending_sync)


# -- the worker's hot path: statements built once, run with bind parameters -----------
# Building a Core statement costs more than running it on SQLite; these run for every batch.


def _take(kind: Status, column: Any) -> Any:
    """Lease up to ``:n`` messages of ``kind`` whose ``column`` is before ``:now``.

    One index range scan per status, stopping at the limit: a single OR over both statuses
    would make the database sort every due row, which hurts with a million queued.
    """
    now = bindparam("now", type_=UtcDateTime)
    chosen = (
        select(messages.c.id)
        .where(messages.c.status == kind.value, column < now)
        .order_by(column)
        .limit(bindparam("n", type_=Integer))
        .with_for_update(skip_locked=True)
        .scalar_subquery()
    )
    return (
        update(messages)
        .where(messages.c.id.in_(chosen))
        .values(
            status=Status.PROCESSING.value,
            reclaimed_from=messages.c.lease_owner,  # the old holder, if it died
            lease_owner=bindparam("worker", type_=String),
            lease_until=bindparam("until", type_=UtcDateTime),
            waiting_for=None,
            updated_at=now,
        )
        .returning(*messages.c)
    )


_TAKE_EXPIRED = _take(Status.PROCESSING, messages.c.lease_until)

_MARK_SENT = (
    update(messages)
    .where(messages.c.id.in_(bindparam("ids", expanding=True)))
    .values(
        status=Status.SENT.value,
        updated_at=bindparam("now", type_=UtcDateTime),
        lease_owner=None,
        lease_until=None,
        next_attempt_at=None,
        waiting_for=None,
        reclaimed_from=None,
        send_count=messages.c.send_count + 1,
    )
)

# A rate-limited hand-off counts from when it happened, not from when its slot was taken.
_MOVE_SLOTS = (
    update(rate_events)
    .where(rate_events.c.message_id.in_(bindparam("ids", expanding=True)))
    .values(taken_at=bindparam("now", type_=UtcDateTime), message_id=None)
)


def _held(ids: Sequence[str], worker: str) -> Any:
    """An UPDATE of the messages among ``ids`` that ``worker`` still holds a lease on."""
    return update(messages).where(
        messages.c.id.in_(list(ids)),
        messages.c.lease_owner == worker,
        messages.c.status == Status.PROCESSING.value,
    )
