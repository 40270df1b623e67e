"""The SQL store's queue role (see :class:`~postroom.store.Queue`): group-committed enqueues,
with idempotency keys, folded duplicates and recipient limits checked in the same transaction.
The worker's verbs (claims with leases, renewals, completions, rate slots) are :mod:`.leases`."""

from __future__ import annotations

import asyncio
import functools
import itertools
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, select, text
from sqlalchemy.exc import IntegrityError

from postroom import clock
from postroom.errors import DuplicateRequestError, RecipientLimitError
from postroom.models import Message, NewMessage
from postroom.store import dedupe
from postroom.store.base import (
    Budget,
    budgets_of,
    check_unchanged,
    queued_message,
)
from postroom.store.lane_rules import counted
from postroom.store.listener_sql import keep_bodies
from postroom.store.schema import messages
from postroom.store.sql.engine import NOTIFY_CHANNEL
from postroom.store.sql.leases import SqlLeases
from postroom.store.sql.rows import message_from_row, message_row
from postroom.store.wakeup import URGENT_PAYLOAD, carries_urgent


@dataclass(slots=True)
class _EnqueueGroup:
    """One caller's messages (each with its budget) waiting for the next group commit."""

    messages: Sequence[NewMessage]
    budgets: Sequence[Budget]
    refuse_changed: bool
    result: asyncio.Future[list[tuple[Message, bool]]]


# What one group's part of a group commit gives its caller: the stored messages, or the
# refusal that left nothing of that group written.
_Outcome = list[tuple[Message, bool]] | DuplicateRequestError | RecipientLimitError


class SqlQueue(SqlLeases):
    """The queue verbs over SQLAlchemy Core: enqueue here, the worker's in :class:`SqlLeases`."""

    def __init__(self, dsn: str) -> None:
        super().__init__(dsn)
        self._enqueue_waiting: list[_EnqueueGroup] = []
        self._enqueue_task: asyncio.Task[None] | None = None

    def _enqueue_sync(self, groups: Sequence[_EnqueueGroup]) -> list[_Outcome]:
        """Store several callers' messages in one transaction (one fsync for all of them)."""
        # One microsecond apart, so that newest-first lists keep the order of arrival.
        start, tick = clock.utcnow(), itertools.count()
        results: list[_Outcome] = []
        with self._writer.begin() as conn:
            if self.postgres:  # duplicates and recipient limits: one enqueue at a time
                batch = [
                    new
                    for group in groups
                    for new, budget in zip(group.messages, group.budgets, strict=True)
                    if counted(new, budget) or budget.dedupe_window > 0
                ]
                dedupe.lock(conn, dedupe.advisory_keys(batch))
            for group in groups:
                try:
                    results.append(self._insert_group(conn, group, start, tick))
                except (DuplicateRequestError, RecipientLimitError) as refused:
                    results.append(refused)  # nothing of this group was written
            if self.postgres:  # wakes idle workers in every process, at commit
                urgent = carries_urgent(new for group in groups for new in group.messages)
                payload = f", '{URGENT_PAYLOAD}'" if urgent else ""
                conn.execute(text(f"NOTIFY {NOTIFY_CHANNEL}{payload}"))
        return results

    def _insert_group(
        self, conn: Connection, group: _EnqueueGroup, start: datetime, tick: Iterator[int]
    ) -> list[tuple[Message, bool]]:
        """Insert one caller's messages; the idempotency keys, duplicates and recipient limits
        are all checked first, so a refused group writes nothing."""
        found: dict[int, Message] = {}
        for index, new in enumerate(group.messages):
            if new.idempotency_key is not None:
                existing = conn.execute(
                    select(messages).where(
                        messages.c.tenant == new.tenant,
                        messages.c.idempotency_key == new.idempotency_key,
                    )
                ).first()
                if existing is not None:
                    found[index] = message_from_row(existing)
                    if group.refuse_changed:
                        check_unchanged(new, found[index])
        out: list[tuple[Message, bool]] = []
        pending = dedupe.pending_for(conn, group.messages, group.budgets, start)
        folded: dict[int, Any] = {}
        shared = any(new.mime_ref for new in group.messages)
        for index, (new, budget) in enumerate(zip(group.messages, group.budgets, strict=True)):
            if index in found:
                out.append((found[index], False))
                continue
            into = dedupe.fold(conn, new, budget, start, pending)
            if into is not None:  # a duplicate: the first message answers for it
                folded[index] = into
                out.append((message_from_row(into), False))
                continue
            dedupe.check_recipient_limits(conn, new, budget, start, pending)
            message = queued_message(
                new,
                created_at=start + timedelta(microseconds=next(tick)),
                due_at=start,
                max_attempts=budget.max_attempts,
                ttl=budget.ttl_of(new.priority),
            )
            row = message_row(message)
            if shared:  # only then: a batch without it is written as before migration 0010
                row["mime_ref"] = new.mime_ref
            pending.rows.append(row)
            if new.content_hash is not None:
                pending.by_hash.setdefault(new.content_hash, row)
            out.append((message, True))
        if pending.rows:
            keep_bodies(conn, group.messages)
            conn.execute(messages.insert(), pending.rows)
        for index, into in folded.items():  # with the count of what folded in after it
            out[index] = (message_from_row(into), False)
        return out

    async def enqueue(
        self,
        messages_: Sequence[NewMessage],
        *,
        max_attempts: int,
        ttl: float,
        budgets: Mapping[str, Budget] | None = None,
        refuse_changed: bool = False,
    ) -> list[tuple[Message, bool]]:
        """Store messages durably in one transaction; see :class:`~postroom.store.Queue`.

        Concurrent callers are committed together (group commit): each waits for the one
        transaction that carries its messages, so nobody is answered before the disk has them.
        """
        group = _EnqueueGroup(
            messages_,
            budgets_of(messages_, max_attempts=max_attempts, ttl=ttl, budgets=budgets),
            refuse_changed,
            asyncio.get_running_loop().create_future(),
        )
        self._enqueue_waiting.append(group)
        if self._enqueue_task is None or self._enqueue_task.done():
            self._enqueue_task = asyncio.create_task(self._commit_groups())
        return await group.result

    async def _commit_groups(self) -> None:
        while self._enqueue_waiting:
            groups, self._enqueue_waiting = self._enqueue_waiting, []
            try:
                results = await self._run(functools.partial(self._enqueue_sync, groups))
            except IntegrityError:
                # Some idempotency key was stored by another caller between the check and the
                # insert: commit each group alone; the check then finds the stored message.
                for group in groups:
                    await self._commit_alone(group)
                continue
            except BaseException as exc:
                for group in groups:
                    if not group.result.done():
                        group.result.set_exception(exc)
                if not isinstance(exc, Exception):
                    raise
                continue
            for group, result in zip(groups, results, strict=True):
                _answer(group, result)
            self._announce(urgent=carries_urgent(m for group in groups for m in group.messages))

    async def _commit_alone(self, group: _EnqueueGroup) -> None:
        for attempt in range(2):
            try:
                [result] = await self._run(lambda: self._enqueue_sync([group]))
            except IntegrityError as exc:
                if attempt == 1:
                    group.result.set_exception(exc)
                continue
            except Exception as exc:
                group.result.set_exception(exc)
                return
            _answer(group, result)
            self._announce(urgent=carries_urgent(group.messages))
            return


def _answer(group: _EnqueueGroup, outcome: _Outcome) -> None:
    """Hand ``outcome`` to the caller waiting on ``group``."""
    if isinstance(outcome, DuplicateRequestError | RecipientLimitError):
        group.result.set_exception(outcome)
    else:
        group.result.set_result(outcome)
