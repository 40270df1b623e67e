"""Webhook deliveries in the SQL database; the base of
:class:`~postroom.store.events_sql.SqlEventRecords`."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Any, TypeVar

from sqlalchemy import Connection, select, update
from sqlalchemy.engine import Row

from postroom.store.events_base import WebhookDelivery
from postroom.store.schema import webhook_deliveries
from postroom.store.sql import SqlStore

T = TypeVar("T")


class SqlDeliveries:
    """The webhook-delivery verbs, on the engines and the thread of a ``SqlStore``."""

    def __init__(self, store: SqlStore) -> None:
        self._store = store

    async def _write(self, fn: Callable[[Connection], T]) -> T:
        engine = self._store._writer

        def run() -> T:
            with engine.begin() as conn:
                return fn(conn)

        result: T = await self._store._run(run)
        return result

    async def _read(self, fn: Callable[[Connection], T]) -> T:
        engine = self._store._reader

        def run() -> T:
            with engine.connect() as conn:
                return fn(conn)

        result: T = await self._store._run(run)
        return result

    # -- webhook deliveries ----------------------------------------------------------

    async def add_deliveries(self, deliveries: Sequence[WebhookDelivery]) -> None:
        """Store deliveries."""
        if not deliveries:
            return

        def run(conn: Connection) -> None:
            conn.execute(
                webhook_deliveries.insert(),
                [delivery_row(d) for d in deliveries],
            )

        await self._write(run)

    async def claim_deliveries(
        self, *, now: datetime, lease: float, limit: int
    ) -> list[WebhookDelivery]:
        """Due pending deliveries, leased (their next attempt moved ``lease`` ahead)."""

        def run(conn: Connection) -> list[WebhookDelivery]:
            query = (
                select(webhook_deliveries)
                .where(
                    webhook_deliveries.c.status == "pending",
                    webhook_deliveries.c.next_attempt_at <= now,
                )
                .order_by(webhook_deliveries.c.next_attempt_at)
                .limit(limit)
            )
            if self._store.postgres:
                query = query.with_for_update(skip_locked=True)
            rows = [_delivery(r) for r in conn.execute(query)]
            if rows:
                conn.execute(
                    update(webhook_deliveries)
                    .where(webhook_deliveries.c.id.in_([d.id for d in rows]))
                    .values(next_attempt_at=now + timedelta(seconds=lease))
                )
            return rows

        return await self._write(run)

    async def finish_delivery(
        self,
        delivery_id: str,
        *,
        status: str,
        next_attempt_at: datetime | None,
        last_status: int | None,
        last_answer: str | None,
        now: datetime,
    ) -> None:
        """Record one attempt."""

        def run(conn: Connection) -> None:
            conn.execute(
                update(webhook_deliveries)
                .where(webhook_deliveries.c.id == delivery_id)
                .values(
                    status=status,
                    attempts=webhook_deliveries.c.attempts + 1,
                    next_attempt_at=next_attempt_at,
                    last_status=last_status,
                    last_answer=last_answer,
                    updated_at=now,
                )
            )

        await self._write(run)

    async def list_deliveries(
        self, *, tenant: str | None, message_id: str | None, limit: int
    ) -> list[WebhookDelivery]:
        """Deliveries newest first."""

        def run(conn: Connection) -> list[WebhookDelivery]:
            query = select(webhook_deliveries)
            if tenant is not None:
                query = query.where(webhook_deliveries.c.tenant == tenant)
            if message_id is not None:
                query = query.where(webhook_deliveries.c.message_id == message_id)
            query = query.order_by(webhook_deliveries.c.created_at.desc()).limit(limit)
            return [_delivery(r) for r in conn.execute(query)]

        return await self._read(run)


def delivery_row(delivery: WebhookDelivery) -> dict[str, Any]:
    """The table row of a delivery."""
    return {f: getattr(delivery, f) for f in WebhookDelivery.__dataclass_fields__}


def _delivery(row: Row[Any]) -> WebhookDelivery:
    return WebhookDelivery(**dict(row._mapping))
