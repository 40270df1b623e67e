"""The SQL store (SQLite now, the same Core statements serve PostgreSQL).

SQLAlchemy's engine is synchronous; every call runs on one dedicated thread so the event
loop never blocks and SQLite sees a single writer per process. Writes open with
``BEGIN IMMEDIATE`` so that concurrent processes queue on SQLite's lock instead of failing.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, create_engine, event, func, or_, select, update
from sqlalchemy.engine import Row, make_url
from sqlalchemy.exc import IntegrityError, OperationalError

from postroom.errors import ConfigError, NotFoundError, PostroomError
from postroom.models import (
    Diagnosis,
    Dispatch,
    DispatchStatus,
    Message,
    NewMessage,
    Status,
    TemplateType,
    WaitingFor,
)
from postroom.store.base import Completion, MessageFilter
from postroom.store.schema import dispatches, messages

T = TypeVar("T")
MIGRATIONS = Path(__file__).parent / "migrations"


def utcnow() -> datetime:
    """The current time, timezone-aware UTC."""
    return datetime.now(UTC)


class StoreUnavailable(PostroomError):
    """The database cannot be reached or opened."""


def _sqlite_engine(url: str, *, immediate: bool) -> Engine:
    engine = create_engine(url)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # we issue BEGIN ourselves
        cursor = dbapi_conn.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

    return engine


class SqlStore:
    """A :class:`~postroom.store.base.Store` over SQLAlchemy Core."""

    def __init__(self, dsn: str) -> None:
        try:
            url = make_url(dsn)
        except Exception:
            raise ConfigError(
                "not a database URL; write sqlite:///./var/postroom.db", path="dsn"
            ) from None
        if url.get_backend_name() != "sqlite":
            raise ConfigError(
                f"the {url.get_backend_name()!r} backend is not supported yet; use sqlite:///...",
                path="dsn",
            )
        if url.database and url.database != ":memory:":
            Path(url.database).parent.mkdir(parents=True, exist_ok=True)
        self.dsn = url.render_as_string(hide_password=True)
        self._writer = _sqlite_engine(dsn, immediate=True)
        self._reader = _sqlite_engine(dsn, immediate=False)
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="postroom-store")
        self._wake = asyncio.Event()

    async def _run(self, fn: Callable[[], T]) -> T:
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._executor, fn)
        except OperationalError as exc:
            raise StoreUnavailable(f"the database {self.dsn} failed: {exc.orig}") from exc

    # -- schema -----------------------------------------------------------------------

    def _migrate_sync(self) -> None:
        cfg = Config()
        cfg.set_main_option("script_location", str(MIGRATIONS))
        head = ScriptDirectory.from_config(cfg).get_current_head()
        with self._writer.begin() as conn:
            if MigrationContext.configure(conn).get_current_revision() == head:
                return
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "head")

    async def migrate(self) -> None:
        """Create or upgrade the schema to the newest version."""
        await self._run(self._migrate_sync)

    # -- intake -----------------------------------------------------------------------

    def _enqueue_sync(
        self, batch: Sequence[NewMessage], max_attempts: int, ttl: float
    ) -> list[tuple[Message, bool]]:
        now = utcnow()
        expires = now + timedelta(seconds=ttl) if ttl > 0 else None
        out: list[tuple[Message, bool]] = []
        rows: list[dict[str, Any]] = []
        with self._writer.begin() as conn:
            for new in batch:
                if new.idempotency_key is not None:
                    existing = conn.execute(
                        select(messages).where(
                            messages.c.tenant == new.tenant,
                            messages.c.idempotency_key == new.idempotency_key,
                        )
                    ).first()
                    if existing is not None:
                        out.append((_message(existing), False))
                        continue
                row = {
                    "id": str(uuid.uuid4()),
                    "tenant": new.tenant,
                    "status": Status.QUEUED.value,
                    "type": "email",
                    "recipient": new.recipient,
                    "template_type": new.template_type.value,
                    "template_data": new.template_data,
                    "subject": new.subject,
                    "body": new.body,
                    "html_body": new.html_body,
                    "mime": new.mime,
                    "send_count": 0,
                    "max_attempts": max_attempts,
                    "idempotency_key": new.idempotency_key,
                    "request_hash": new.request_hash,
                    "created_at": now,
                    "updated_at": now,
                    "next_attempt_at": now,
                    "expires_at": expires,
                    "waiting_for": None,
                    "last_error": None,
                    "lease_owner": None,
                    "lease_until": None,
                }
                rows.append(row)
                out.append((_message(row), True))
            if rows:
                conn.execute(messages.insert(), rows)
        return out

    async def enqueue(
        self, messages_: Sequence[NewMessage], *, max_attempts: int, ttl: float
    ) -> list[tuple[Message, bool]]:
        """Store messages durably in one transaction; see :class:`Store`."""
        try:
            result = await self._run(lambda: self._enqueue_sync(messages_, max_attempts, ttl))
        except IntegrityError:
            # Another process stored the same idempotency key between our check and insert:
            # run again, and the check now finds its message.
            result = await self._run(lambda: self._enqueue_sync(messages_, max_attempts, ttl))
        self._wake.set()
        return result

    # -- the worker's verbs -----------------------------------------------------------

    def _claim_sync(self, worker: str, limit: int, lease: float) -> list[Message]:
        now = utcnow()
        due = (
            select(messages.c.id)
            .where(
                or_(
                    (messages.c.status == Status.QUEUED.value)
                    & (messages.c.next_attempt_at <= now),
                    (messages.c.status == Status.PROCESSING.value) & (messages.c.lease_until < now),
                )
            )
            .order_by(messages.c.next_attempt_at)
            .limit(limit)
            .with_for_update(skip_locked=True)
            .scalar_subquery()
        )
        stmt = (
            update(messages)
            .where(messages.c.id.in_(due))
            .values(
                status=Status.PROCESSING.value,
                lease_owner=worker,
                lease_until=now + timedelta(seconds=lease),
                waiting_for=None,
                updated_at=now,
            )
            .returning(*messages.c)
        )
        with self._writer.begin() as conn:
            rows = conn.execute(stmt).all()
        return sorted((_message(r) for r in rows), key=lambda m: m.created_at)

    async def claim(self, *, worker: str, limit: int, lease: float) -> list[Message]:
        """Atomically lease up to ``limit`` due messages; see :class:`Store`."""
        return await self._run(lambda: self._claim_sync(worker, limit, lease))

    def _renew_sync(self, ids: Sequence[str], worker: str, lease: float) -> None:
        now = utcnow()
        with self._writer.begin() as conn:
            conn.execute(_held(ids, worker).values(lease_until=now + timedelta(seconds=lease)))

    async def renew(self, message_ids: Sequence[str], *, worker: str, lease: float) -> None:
        """Extend the lease of messages this worker still holds."""
        if message_ids:
            await self._run(lambda: self._renew_sync(message_ids, worker, lease))

    def _release_sync(self, ids: Sequence[str], worker: str) -> None:
        now = utcnow()
        with self._writer.begin() as conn:
            conn.execute(
                _held(ids, worker).values(
                    status=Status.QUEUED.value,
                    lease_owner=None,
                    lease_until=None,
                    next_attempt_at=now,
                    updated_at=now,
                )
            )

    async def release(self, message_ids: Sequence[str], *, worker: str) -> None:
        """Give back leased messages that were not attempted, due again now."""
        if message_ids:
            await self._run(lambda: self._release_sync(message_ids, worker))
            self._wake.set()

    def _complete_sync(self, completions: Sequence[Completion], worker: str) -> None:
        now = utcnow()
        with self._writer.begin() as conn:
            rows = []
            for c in completions:
                error = c.error.to_json() if c.error else None
                values: dict[str, Any] = {
                    "status": c.status.value,
                    "updated_at": now,
                    "lease_owner": None,
                    "lease_until": None,
                    "next_attempt_at": c.next_attempt_at,
                    "waiting_for": c.waiting_for.value if c.waiting_for else None,
                }
                if error is not None:
                    values["last_error"] = error
                if c.attempted:
                    values["send_count"] = messages.c.send_count + 1
                    rows.append(
                        {
                            "id": str(uuid.uuid4()),
                            "message_id": c.message_id,
                            "status": (
                                DispatchStatus.FAILED if error else DispatchStatus.SUCCESS
                            ).value,
                            "error": error,
                            "worker": worker,
                            "created_at": now,
                            "updated_at": now,
                        }
                    )
                conn.execute(update(messages).where(messages.c.id == c.message_id).values(values))
            if rows:
                conn.execute(dispatches.insert(), rows)

    async def complete(self, completions: Sequence[Completion], *, worker: str) -> None:
        """Record attempts and new statuses in one transaction; see :class:`Store`."""
        if completions:
            await self._run(lambda: self._complete_sync(completions, worker))
            if any(c.status is Status.QUEUED for c in completions):
                self._wake.set()

    # -- reads ------------------------------------------------------------------------

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
        return _message(row, tuple(_dispatch(d) for d in attempts))

    async def get(self, message_id: str) -> Message:
        """One message with its dispatches, newest first; raise ``NotFoundError``."""
        return await self._run(lambda: self._get_sync(message_id))

    def _list_sync(self, query: MessageFilter) -> list[Message]:
        stmt = select(messages)
        if query.status is not None:
            stmt = stmt.where(messages.c.status == query.status.value)
        if query.recipient is not None:
            stmt = stmt.where(messages.c.recipient == query.recipient)
        if query.tenant is not None:
            stmt = stmt.where(messages.c.tenant == query.tenant)
        if query.template_type is not None:
            stmt = stmt.where(messages.c.template_type == query.template_type)
        if query.before is not None:
            created, last_id = query.before
            stmt = stmt.where(
                or_(
                    messages.c.created_at < created,
                    (messages.c.created_at == created) & (messages.c.id < last_id),
                )
            )
        stmt = stmt.order_by(messages.c.created_at.desc(), messages.c.id.desc()).limit(query.limit)
        with self._reader.connect() as conn:
            return [_message(r) for r in conn.execute(stmt)]

    async def list_messages(self, query: MessageFilter) -> list[Message]:
        """Messages newest first (without dispatches)."""
        return await self._run(lambda: self._list_sync(query))

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
        times = [_aware(t) for t in (value, lease) if t is not None]
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

    async def wait(self, timeout: float) -> None:
        """Return when this process enqueued or requeued something, or after ``timeout``."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), timeout=max(timeout, 0))
        self._wake.clear()

    def _ping_sync(self) -> None:
        with self._reader.connect() as conn:
            conn.execute(select(func.count()).select_from(messages).limit(1))

    async def ping(self) -> None:
        """Raise :class:`StoreUnavailable` if the database cannot be read."""
        await self._run(self._ping_sync)

    async def close(self) -> None:
        """Release connections and the store's thread."""
        await self._run(self._writer.dispose)
        await self._run(self._reader.dispose)
        self._executor.shutdown(wait=True)


def _held(ids: Sequence[str], worker: str) -> Any:
    """An UPDATE of the messages among ``ids`` that ``worker`` still holds a lease on."""
    return update(messages).where(
        messages.c.id.in_(list(ids)),
        messages.c.lease_owner == worker,
        messages.c.status == Status.PROCESSING.value,
    )


def _aware(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


def _message(row: Row[Any] | dict[str, Any], attempts: tuple[Dispatch, ...] = ()) -> Message:
    m = row if isinstance(row, dict) else row._mapping
    last_error = m["last_error"]
    return Message(
        id=m["id"],
        tenant=m["tenant"],
        status=Status(m["status"]),
        recipient=m["recipient"],
        template_type=TemplateType(m["template_type"]),
        template_data=m["template_data"] or {},
        subject=m["subject"],
        body=m["body"],
        html_body=m["html_body"],
        mime=m["mime"],
        send_count=m["send_count"],
        max_attempts=m["max_attempts"],
        idempotency_key=m["idempotency_key"],
        created_at=m["created_at"],
        updated_at=m["updated_at"],
        next_attempt_at=m["next_attempt_at"],
        expires_at=m["expires_at"],
        waiting_for=WaitingFor(m["waiting_for"]) if m["waiting_for"] else None,
        last_error=Diagnosis.from_json(last_error) if last_error else None,
        lease_owner=m["lease_owner"],
        lease_until=m["lease_until"],
        request_hash=m["request_hash"],
        dispatches=attempts,
    )


def _dispatch(row: Row[Any]) -> Dispatch:
    m = row._mapping
    return Dispatch(
        id=m["id"],
        message_id=m["message_id"],
        status=DispatchStatus(m["status"]),
        error=Diagnosis.from_json(m["error"]) if m["error"] else None,
        created_at=m["created_at"],
        updated_at=m["updated_at"],
    )


def jitter(seconds: float) -> float:
    """Spread a delay by +/-20% so that many messages do not fall due in the same instant."""
    return seconds * random.uniform(0.8, 1.2)
