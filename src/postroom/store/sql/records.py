"""The SQL store's records role: one message with its attempts, newest-first pages (with
SQLite's planner hints), retry, cancel, counts, the overview's activity and retention's
deletes (see :class:`~postroom.store.Records`)."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta

from sqlalchemy import Connection, case, func, or_, select, update

from postroom import clock
from postroom.errors import ConflictError, NotFoundError
from postroom.models import Diagnosis, Message, Status
from postroom.store.base import (
    Activity,
    ActivityCount,
    FailureCount,
    MessageFilter,
    activity_edges,
)
from postroom.store.evidence_sql import with_provider_message_id
from postroom.store.lane_rules import summarise
from postroom.store.lanes import LANE_SUMMARY
from postroom.store.listener_sql import drop_unused_bodies, fill_bodies
from postroom.store.schema import dispatches, messages
from postroom.store.search_sql import id_condition, recipient_condition
from postroom.store.slots import forget_slots_of
from postroom.store.sql.engine import SqlEngine
from postroom.store.sql.rows import dispatch_from_row, message_from_row


class SqlRecords(SqlEngine):
    """The records verbs over SQLAlchemy Core."""

    def _get_sync(self, message_id: str) -> Message:
        with self._reader.connect() as conn:
            row = conn.execute(select(messages).where(messages.c.id == message_id)).first()
            if row is None:
                raise NotFoundError(f"no message with id {message_id}")
            attempts = conn.execute(
                select(dispatches)
                .where(dispatches.c.message_id == message_id)
                .order_by(dispatches.c.created_at.desc(), dispatches.c.id)
            ).all()
            message = message_from_row(row, tuple(dispatch_from_row(d) for d in attempts))
            [found] = fill_bodies(conn, [message])
        return found

    async def get(self, message_id: str) -> Message:
        """One message with its dispatches, newest first; raise ``NotFoundError``."""
        return await self._run(lambda: self._get_sync(message_id))

    def _list_sync(self, query: MessageFilter) -> list[Message]:
        filters = {
            name: value
            for name, value in (
                ("tenant", query.tenant),
                ("status", query.status.value if query.status is not None else None),
                ("template_type", query.template_type),
                ("priority", query.priority.value if query.priority is not None else None),
            )
            if value is not None
        }
        exact_recipient = query.recipient is not None and not query.recipient.startswith("@")
        with self._reader.connect() as conn:
            # One recipient is a handful of rows: on SQLite, read them along its index.
            if exact_recipient and not self.postgres:
                driving: frozenset[str] = frozenset()
            else:
                driving = self._driving_columns(conn, filters)
            stmt = select(messages)
            for name, value in filters.items():
                column = messages.c[name]
                # ``column || ''`` keeps the planner off that column's indexes, so that the
                # page is read along the index of the driving columns (see _driving_columns).
                stmt = stmt.where((column if name in driving else column + "") == value)
            if query.provider_message_id is not None:
                stmt = stmt.where(with_provider_message_id(query.provider_message_id))
            if query.recipient is not None:
                stmt = stmt.where(recipient_condition(query.recipient))
            if query.id_fragment is not None:
                stmt = stmt.where(id_condition(query.id_fragment))
            if query.before is not None:
                created, last_id = query.before
                # (created_at, id) < (created, last_id), written so that the first condition
                # bounds the index range and the page starts there instead of at the newest.
                stmt = stmt.where(
                    messages.c.created_at <= created,
                    or_(messages.c.created_at < created, messages.c.id < last_id),
                )
            stmt = stmt.order_by(messages.c.created_at.desc(), messages.c.id.desc()).limit(
                query.limit
            )
            return [message_from_row(r) for r in conn.execute(stmt)]

    def _driving_columns(self, conn: Connection, filters: dict[str, str]) -> frozenset[str]:
        """The filter columns whose index a newest-first page is read along.

        PostgreSQL's planner knows how common each value is and chooses itself (every column
        stays indexable). SQLite keeps no such statistics, and a poor choice reads a whole
        status or tenant to find a handful of rows, so we choose (the caller reads one
        recipient along its own index): whichever of tenant+status, tenant, status or template
        type matches the fewest rows, counted up to a small bound along its index
        (``ix_messages_*_created`` of migration 0005).
        """
        if self.postgres or len(filters) < 2:
            return frozenset(filters)
        candidates: list[tuple[str, ...]] = []
        if "tenant" in filters and "status" in filters:
            candidates.append(("tenant", "status"))
        else:
            candidates += [(name,) for name in ("tenant", "status") if name in filters]
        if "template_type" in filters:
            candidates.append(("template_type",))
        if len(candidates) == 1:
            return frozenset(candidates[0])
        bound = 5000

        def matching(columns: tuple[str, ...]) -> int:
            probe = select(messages.c.id).where(
                *(messages.c[name] == filters[name] for name in columns)
            )
            count = select(func.count()).select_from(probe.limit(bound).subquery())
            return int(conn.execute(count).scalar() or 0)

        best: tuple[str, ...] = min(candidates, key=matching)
        return frozenset(best)

    async def list_messages(self, query: MessageFilter) -> list[Message]:
        """Messages newest first (without dispatches)."""
        return await self._run(lambda: self._list_sync(query))

    def _retry_sync(self, message_id: str, attempts: int, ttl: float) -> Message:
        now = clock.utcnow()
        with self._writer.begin() as conn:
            row = conn.execute(select(messages).where(messages.c.id == message_id)).first()
            if row is None:
                raise NotFoundError(f"no message with id {message_id}")
            current = message_from_row(row)
            if current.status is not Status.ABANDONED:
                raise ConflictError(
                    f"message {message_id} is {current.status.value}; only abandoned messages "
                    "can be retried"
                )
            fresh = replace(
                current,
                status=Status.QUEUED,
                max_attempts=current.send_count + attempts,
                expires_at=now + timedelta(seconds=ttl) if ttl > 0 else None,
                next_attempt_at=now,
                waiting_for=None,
                updated_at=now,
            )
            conn.execute(
                update(messages)
                .where(messages.c.id == message_id)
                .values(
                    status=fresh.status.value,
                    max_attempts=fresh.max_attempts,
                    expires_at=fresh.expires_at,
                    next_attempt_at=now,
                    waiting_for=None,
                    updated_at=now,
                )
            )
        return fresh

    async def retry(self, message_id: str, *, attempts: int, ttl: float) -> Message:
        """Queue an abandoned message again; see :class:`Store`."""
        message = await self._run(lambda: self._retry_sync(message_id, attempts, ttl))
        self._announce()
        return message

    def _cancel_sync(self, message_id: str, error: Diagnosis) -> Message:
        now = clock.utcnow()
        with self._writer.begin() as conn:
            result = conn.execute(
                update(messages)
                .where(messages.c.id == message_id, messages.c.status == Status.QUEUED.value)
                .values(
                    status=Status.ABANDONED.value,
                    last_error=error.to_json(),
                    waiting_for=None,
                    next_attempt_at=None,
                    updated_at=now,
                )
                .returning(*messages.c)
            ).first()
            if result is not None:
                forget_slots_of(conn, [message_id])  # a code's booking is nobody's now
                return message_from_row(result)
            row = conn.execute(select(messages.c.status).where(messages.c.id == message_id)).first()
        if row is None:
            raise NotFoundError(f"no message with id {message_id}")
        raise ConflictError(
            f"message {message_id} is {row.status}; only queued messages can be cancelled"
        )

    async def cancel(self, message_id: str, *, error: Diagnosis) -> Message:
        """Abandon a queued message; see :class:`Store`."""
        return await self._run(lambda: self._cancel_sync(message_id, error))

    def _delete_finished_sync(
        self, before: datetime, tenant: str | None, keep_keyed_since: datetime, batch: int
    ) -> int:
        doomed = select(messages.c.id).where(
            messages.c.status.in_([Status.SENT.value, Status.ABANDONED.value]),
            messages.c.updated_at < before,
            or_(
                messages.c.idempotency_key.is_(None),
                messages.c.created_at < keep_keyed_since,
            ),
        )
        if tenant is not None:
            doomed = doomed.where(messages.c.tenant == tenant)
        doomed = doomed.add_columns(messages.c.mime_ref)
        with self._writer.begin() as conn:
            found = conn.execute(doomed.limit(batch)).all()
            ids = [row.id for row in found]
            if not ids:
                return 0
            conn.execute(dispatches.delete().where(dispatches.c.message_id.in_(ids)))
            conn.execute(messages.delete().where(messages.c.id.in_(ids)))
            drop_unused_bodies(conn, {row.mime_ref for row in found if row.mime_ref})
        return len(ids)

    async def delete_finished(
        self, *, before: datetime, tenant: str | None, keep_keyed_since: datetime, batch: int
    ) -> int:
        """Delete one batch of finished messages; see :class:`Store`."""
        return await self._run(
            lambda: self._delete_finished_sync(before, tenant, keep_keyed_since, batch)
        )

    def _count_by_status_sync(self) -> dict[str, int]:
        with self._reader.connect() as conn:
            rows = conn.execute(
                select(messages.c.status, func.count()).group_by(messages.c.status)
            ).all()
        out = {s.value: 0 for s in Status}
        out.update({status: int(n) for status, n in rows})
        return out

    async def lane_summary(self) -> dict[str, tuple[int, float]]:
        """Queued messages and how long the oldest due one has waited, per lane; see
        :class:`~postroom.store.Records`."""

        def summary() -> dict[str, tuple[int, float]]:
            with self._reader.connect() as conn:
                rows = conn.execute(LANE_SUMMARY).all()
            return summarise(rows, clock.utcnow())

        return await self._run(summary)

    async def count_by_status(self) -> dict[str, int]:
        """How many messages are in each status (every status present, zeros included)."""
        return await self._run(self._count_by_status_sync)

    def _activity_sync(self, since: datetime, step: timedelta) -> Activity:
        edges = activity_edges(since, step, clock.utcnow())
        created = messages.c.created_at
        # The slice of each message, newest edge first: the first edge it is not older than.
        slot = case(
            *((created >= edge, n) for n, edge in reversed(list(enumerate(edges)))), else_=0
        ).label("slot")
        counts = (
            select(slot, messages.c.tenant, messages.c.status, func.count())
            .where(created >= since)
            .group_by(slot, messages.c.tenant, messages.c.status)
        )
        code = messages.c.last_error["code"].as_string().label("code")
        failures = (
            select(messages.c.tenant, code, messages.c.status, func.count())
            .where(
                messages.c.status.in_([Status.ABANDONED.value, Status.QUEUED.value]),
                created >= since,
                messages.c.last_error.is_not(None),
            )
            .group_by(messages.c.tenant, code, messages.c.status)
        )
        with self._reader.connect() as conn:
            count_rows = conn.execute(counts).all()
            failure_rows = conn.execute(failures).all()
        return Activity(
            counts=[
                ActivityCount(tenant, Status(status), int(n), int(count))
                for n, tenant, status, count in count_rows
            ],
            failures=[
                FailureCount(tenant, str(code), Status(status), int(count))
                for tenant, code, status, count in failure_rows
                if code is not None
            ],
        )

    async def activity(self, *, since: datetime, step: timedelta) -> Activity:
        """What became of the messages created since ``since``; see :class:`Store`."""
        return await self._run(lambda: self._activity_sync(since, step))
