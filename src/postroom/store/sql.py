"""The SQL store (SQLite now, the same Core statements serve PostgreSQL).

SQLAlchemy's engine is synchronous; every call runs on one dedicated thread so the event
loop never blocks and SQLite sees a single writer per process. Writes open with
``BEGIN IMMEDIATE`` so that concurrent processes queue on SQLite's lock instead of failing.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import itertools
import random
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import (
    Connection,
    Engine,
    Integer,
    String,
    bindparam,
    case,
    create_engine,
    event,
    func,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.engine import URL, Row, make_url
from sqlalchemy.exc import IntegrityError, InterfaceError, OperationalError, ProgrammingError

from postroom.errors import ConfigError, ConflictError, NotFoundError, PostroomError
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
from postroom.store.base import (
    Activity,
    ActivityCount,
    Completion,
    FailureCount,
    MessageFilter,
    StoredOAuthToken,
    StoredTenant,
    activity_edges,
    new_id,
)
from postroom.store.dkim_keys import SqlDkimKeys
from postroom.store.schema import (
    UtcDateTime,
    dispatches,
    messages,
    oauth_tokens,
    rate_events,
    sessions,
    tenants,
)

T = TypeVar("T")
MIGRATIONS = Path(__file__).parent / "migrations"


def newest_migration() -> str:
    """The head revision: each migration's revision is its file's number (``0006_...``)."""
    return max(p.name.split("_", 1)[0] for p in (MIGRATIONS / "versions").glob("[0-9]*_*.py"))


def utcnow() -> datetime:
    """The current time, timezone-aware UTC."""
    return datetime.now(UTC)


@dataclass(slots=True)
class _EnqueueGroup:
    """One caller's messages waiting for the next group commit."""

    messages: Sequence[NewMessage]
    max_attempts: int
    ttl: float
    result: asyncio.Future[list[tuple[Message, bool]]]


class StoreUnavailable(PostroomError):
    """The database cannot be reached or opened."""


def _sqlite_engine(url: str, *, immediate: bool, synchronous: str = "FULL") -> Engine:
    engine = create_engine(url)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # we issue BEGIN ourselves
        cursor = dbapi_conn.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA synchronous={synchronous}")
        cursor.execute("PRAGMA wal_autocheckpoint=8000")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

    return engine


def postgres_url(dsn: str) -> URL:
    """SQLAlchemy's URL for a ``postgres://`` or ``postgresql://`` DSN, driven by psycopg 3."""
    url = make_url(dsn)
    return url.set(drivername="postgresql+psycopg")


NOTIFY_CHANNEL = "postroom_queue"


class SqlStore(SqlDkimKeys):
    """A :class:`~postroom.store.base.Store` over SQLAlchemy Core: SQLite or PostgreSQL."""

    def __init__(self, dsn: str) -> None:
        try:
            url = make_url(dsn.replace("postgres://", "postgresql://", 1))
        except Exception:
            raise ConfigError(
                "not a database URL; write sqlite:///./var/postroom.db or "
                "postgres://user:pass@host:5432/db",
                path="dsn",
            ) from None
        backend = url.get_backend_name()
        self.dsn = url.render_as_string(hide_password=True)
        self.postgres = backend == "postgresql"
        if backend == "sqlite":
            if url.database and url.database != ":memory:":
                Path(url.database).parent.mkdir(parents=True, exist_ok=True)
            self._writer = _sqlite_engine(dsn, immediate=True)
            # The worker's own bookkeeping (claims, leases, statuses) does not wait for the
            # disk at each commit: after a power loss (not a crash) the newest of these may
            # roll back, so a message may go out once more. Enqueues keep FULL: a message
            # acknowledged to a caller is on disk.
            self._state = _sqlite_engine(dsn, immediate=True, synchronous="NORMAL")
            self._reader = _sqlite_engine(dsn, immediate=False)
            threads = 1  # one writer per process; SQLite serialises writers anyway
        elif self.postgres:
            pg = postgres_url(url.render_as_string(hide_password=False))
            self._writer = create_engine(pg, pool_size=4, max_overflow=4, pool_pre_ping=True)
            self._reader = self._writer
            # The worker's bookkeeping commits without waiting for the WAL flush, as on
            # SQLite above: if the server itself crashes, the last fraction of a second of
            # status writes may be lost and those messages go out once more. Enqueues wait.
            self._state = create_engine(
                pg,
                pool_size=4,
                max_overflow=0,
                pool_pre_ping=True,
                connect_args={"options": "-c synchronous_commit=off"},
            )
            self._conninfo = pg.set(drivername="postgresql").render_as_string(hide_password=False)
            threads = 4
        else:
            raise ConfigError(
                f"the {backend!r} backend is not supported; use sqlite:///path or "
                "postgres://user:pass@host:5432/db",
                path="dsn",
            )
        self._executor = ThreadPoolExecutor(
            max_workers=threads, thread_name_prefix="postroom-store"
        )
        self._listener: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._enqueue_waiting: list[_EnqueueGroup] = []
        self._enqueue_task: asyncio.Task[None] | None = None

    async def _run(self, fn: Callable[[], T]) -> T:
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._executor, fn)
        except (OperationalError, InterfaceError) as exc:
            raise StoreUnavailable(f"the database {self.dsn} failed: {exc.orig}") from exc

    # -- schema -----------------------------------------------------------------------

    def _schema_is_current(self) -> bool:
        """True when the database is at the newest migration, asked without Alembic (whose
        import alone takes a fifth of a second at every command's start)."""
        with self._reader.connect() as conn:
            try:
                current = conn.execute(text("SELECT version_num FROM alembic_version")).scalar()
            except (OperationalError, ProgrammingError):
                return False  # a new database: no version table yet
        return current == newest_migration()

    def _migrate_sync(self) -> None:
        if self._schema_is_current():
            return
        from alembic import command
        from alembic.config import Config
        from alembic.runtime.migration import MigrationContext
        from alembic.script import ScriptDirectory

        cfg = Config()
        cfg.set_main_option("script_location", str(MIGRATIONS))
        head = ScriptDirectory.from_config(cfg).get_current_head()
        with self._writer.begin() as conn:
            if self.postgres:  # one migrator at a time across processes
                conn.execute(text("SELECT pg_advisory_xact_lock(7401220)"))
            if MigrationContext.configure(conn).get_current_revision() == head:
                return
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "head")

    async def migrate(self) -> None:
        """Create or upgrade the schema to the newest version."""
        await self._run(self._migrate_sync)

    # -- intake -----------------------------------------------------------------------

    def _enqueue_sync(self, groups: Sequence[_EnqueueGroup]) -> list[list[tuple[Message, bool]]]:
        """Store several callers' messages in one transaction (one fsync for all of them)."""
        # One microsecond apart, so that newest-first lists keep the order of arrival.
        start, tick = utcnow(), itertools.count()
        results: list[list[tuple[Message, bool]]] = []
        with self._writer.begin() as conn:
            for group in groups:
                results.append(self._insert_group(conn, group, start, tick))
            if self.postgres:  # wakes idle workers in every process, at commit
                conn.execute(text(f"NOTIFY {NOTIFY_CHANNEL}"))
        return results

    def _insert_group(
        self, conn: Connection, group: _EnqueueGroup, start: datetime, tick: Iterator[int]
    ) -> list[tuple[Message, bool]]:
        batch, max_attempts, ttl = group.messages, group.max_attempts, group.ttl
        expires = start + timedelta(seconds=ttl) if ttl > 0 else None
        out: list[tuple[Message, bool]] = []
        rows: list[dict[str, Any]] = []
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
            now = start + timedelta(microseconds=next(tick))
            row = {
                "id": new_id(),
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
                "next_attempt_at": start,
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
        """Store messages durably in one transaction; see :class:`Store`.

        Concurrent callers are committed together (group commit): each waits for the one
        transaction that carries its messages, so nobody is answered before the disk has them.
        """
        group = _EnqueueGroup(
            messages_, max_attempts, ttl, asyncio.get_running_loop().create_future()
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
                group.result.set_result(result)
            self._wake.set()

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
            group.result.set_result(result)
            self._wake.set()
            return

    # -- the worker's verbs -----------------------------------------------------------

    def _claim_sync(
        self, worker: str, limit: int, lease: float, completions: Sequence[Completion]
    ) -> list[Message]:
        with self._state.begin() as conn:
            if completions:
                self._record(conn, completions, worker)
            now = utcnow()
            params = {"now": now, "worker": worker, "until": now + timedelta(seconds=lease)}
            # Messages of dead workers first (rare), then the due ones, in one transaction.
            rows = list(conn.execute(_TAKE_EXPIRED, {**params, "n": limit}))
            if len(rows) < limit:
                rows += conn.execute(_TAKE_DUE, {**params, "n": limit - len(rows)})
        return sorted((_message(r) for r in rows), key=lambda m: m.created_at)

    async def claim(
        self,
        *,
        worker: str,
        limit: int,
        lease: float,
        completions: Sequence[Completion] = (),
    ) -> list[Message]:
        """Record ``completions``, then lease up to ``limit`` due messages; see :class:`Store`."""
        claimed = await self._run(lambda: self._claim_sync(worker, limit, lease, completions))
        self._wake_for(completions)
        return claimed

    def _renew_sync(self, ids: Sequence[str], worker: str, lease: float) -> None:
        now = utcnow()
        with self._state.begin() as conn:
            conn.execute(_held(ids, worker).values(lease_until=now + timedelta(seconds=lease)))

    async def renew(self, message_ids: Sequence[str], *, worker: str, lease: float) -> None:
        """Extend the lease of messages this worker still holds."""
        if message_ids:
            await self._run(lambda: self._renew_sync(message_ids, worker, lease))

    def _release_sync(self, ids: Sequence[str], worker: str) -> None:
        now = utcnow()
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

    async def release(self, message_ids: Sequence[str], *, worker: str) -> None:
        """Give back leased messages that were not attempted, due again now."""
        if message_ids:
            await self._run(lambda: self._release_sync(message_ids, worker))
            self._wake.set()

    def _complete_sync(self, completions: Sequence[Completion], worker: str) -> None:
        with self._state.begin() as conn:
            self._record(conn, completions, worker)

    def _record(self, conn: Connection, completions: Sequence[Completion], worker: str) -> None:
        """Write the new status of each message and a dispatch row for each attempt."""
        now = utcnow()
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
                rows.append(_dispatch_row(c, None, worker, now))
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
                rows.append(_dispatch_row(c, error, worker, now))
            conn.execute(update(messages).where(messages.c.id == c.message_id).values(values))
        if rows:
            conn.execute(dispatches.insert(), rows)
            moved = [r["message_id"] for r in rows]
            conn.execute(_MOVE_SLOTS, {"ids": moved, "now": now})

    async def complete(self, completions: Sequence[Completion], *, worker: str) -> None:
        """Record attempts and new statuses in one transaction; see :class:`Store`."""
        if completions:
            await self._run(lambda: self._complete_sync(completions, worker))
            self._wake_for(completions)

    def _wake_for(self, completions: Sequence[Completion]) -> None:
        """A message queued again (a retry) may be due before the next poll: wake up."""
        if any(c.status is Status.QUEUED for c in completions):
            self._wake.set()

    def _retry_sync(self, message_id: str, attempts: int, ttl: float) -> Message:
        now = utcnow()
        with self._writer.begin() as conn:
            row = conn.execute(select(messages).where(messages.c.id == message_id)).first()
            if row is None:
                raise NotFoundError(f"no message with id {message_id}")
            current = _message(row)
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
        self._wake.set()
        return message

    def _cancel_sync(self, message_id: str, error: Diagnosis) -> Message:
        now = utcnow()
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
                return _message(result)
            row = conn.execute(select(messages.c.status).where(messages.c.id == message_id)).first()
        if row is None:
            raise NotFoundError(f"no message with id {message_id}")
        raise ConflictError(
            f"message {message_id} is {row.status}; only queued messages can be cancelled"
        )

    async def cancel(self, message_id: str, *, error: Diagnosis) -> Message:
        """Abandon a queued message; see :class:`Store`."""
        return await self._run(lambda: self._cancel_sync(message_id, error))

    # -- retention --------------------------------------------------------------------

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
        with self._writer.begin() as conn:
            ids = [row.id for row in conn.execute(doomed.limit(batch))]
            if not ids:
                return 0
            conn.execute(dispatches.delete().where(dispatches.c.message_id.in_(ids)))
            conn.execute(messages.delete().where(messages.c.id.in_(ids)))
        return len(ids)

    async def delete_finished(
        self, *, before: datetime, tenant: str | None, keep_keyed_since: datetime, batch: int
    ) -> int:
        """Delete one batch of finished messages; see :class:`Store`."""
        return await self._run(
            lambda: self._delete_finished_sync(before, tenant, keep_keyed_since, batch)
        )

    # -- rate limits ------------------------------------------------------------------

    def _take_slot_sync(
        self, tenant: str, limits: Sequence[tuple[int, float]], message_id: str
    ) -> datetime | None:
        now = utcnow()
        longest = max(per for _count, per in limits)
        with self._state.begin() as conn:
            if self.postgres:  # serialise the tenant's check-and-take across processes
                conn.execute(
                    text("SELECT pg_advisory_xact_lock(hashtext(:key))"),
                    {"key": f"postroom-rate:{tenant}"},
                )
            recent = [
                t
                for (t,) in conn.execute(
                    select(rate_events.c.taken_at)
                    .where(
                        rate_events.c.tenant == tenant,
                        rate_events.c.taken_at > now - timedelta(seconds=longest),
                    )
                    .order_by(rate_events.c.taken_at.desc())
                )
            ]
            free_at = slot_free_at(recent, limits, now)
            if free_at is not None:
                return free_at
            conn.execute(
                rate_events.insert().values(tenant=tenant, taken_at=now, message_id=message_id)
            )
            if len(recent) % 100 == 0:  # now and then, forget what no window can see
                conn.execute(
                    rate_events.delete().where(
                        rate_events.c.tenant == tenant,
                        rate_events.c.taken_at <= now - timedelta(seconds=longest),
                    )
                )
        return None

    async def take_slot(
        self, tenant: str, limits: Sequence[tuple[int, float]], *, message_id: str
    ) -> datetime | None:
        """Take a hand-off slot of ``tenant``; see :class:`Store`."""
        if not limits:
            return None
        return await self._run(lambda: self._take_slot_sync(tenant, limits, message_id))

    # -- tenants ----------------------------------------------------------------------

    def _list_tenants_sync(self) -> list[StoredTenant]:
        with self._reader.connect() as conn:
            rows = conn.execute(select(tenants).order_by(tenants.c.id)).all()
        return [_tenant(r) for r in rows]

    async def list_tenants(self) -> list[StoredTenant]:
        """Every tenant saved through the API."""
        return await self._run(self._list_tenants_sync)

    async def get_tenant(self, tenant_id: str) -> StoredTenant | None:
        """One saved tenant, or None."""

        def get() -> StoredTenant | None:
            with self._reader.connect() as conn:
                row = conn.execute(select(tenants).where(tenants.c.id == tenant_id)).first()
            return _tenant(row) if row is not None else None

        return await self._run(get)

    def _put_tenant_sync(self, tenant_id: str, courier: dict[str, Any]) -> StoredTenant:
        now = utcnow()
        with self._writer.begin() as conn:
            existing = conn.execute(
                select(tenants.c.created_at).where(tenants.c.id == tenant_id)
            ).first()
            if existing is None:
                conn.execute(
                    tenants.insert().values(
                        id=tenant_id, courier=courier, created_at=now, updated_at=now
                    )
                )
                created = now
            else:
                conn.execute(
                    update(tenants)
                    .where(tenants.c.id == tenant_id)
                    .values(courier=courier, updated_at=now)
                )
                created = existing.created_at
        return StoredTenant(tenant_id, courier, created, now)

    async def put_tenant(self, tenant_id: str, courier: dict[str, Any]) -> StoredTenant:
        """Create or replace a saved tenant."""
        return await self._run(lambda: self._put_tenant_sync(tenant_id, courier))

    async def delete_tenant(self, tenant_id: str) -> bool:
        """Delete a saved tenant and its kept OAuth2 refresh token; False when there was none."""

        def delete() -> bool:
            with self._writer.begin() as conn:
                result = conn.execute(tenants.delete().where(tenants.c.id == tenant_id))
                conn.execute(oauth_tokens.delete().where(oauth_tokens.c.tenant == tenant_id))
            return bool(result.rowcount)

        return await self._run(delete)

    async def tenants_version(self) -> str:
        """Changes whenever a saved tenant is created, changed or deleted."""

        def version() -> str:
            with self._reader.connect() as conn:
                count, newest = conn.execute(
                    select(func.count(), func.max(tenants.c.updated_at))
                ).one()
            return f"{count}:{newest}"

        return await self._run(version)

    # -- OAuth2 refresh tokens -------------------------------------------------------------

    async def get_oauth_token(self, tenant: str) -> StoredOAuthToken | None:
        """The kept OAuth2 refresh token of ``tenant``, or None."""

        def get() -> StoredOAuthToken | None:
            with self._reader.connect() as conn:
                row = conn.execute(
                    select(oauth_tokens).where(oauth_tokens.c.tenant == tenant)
                ).first()
            if row is None:
                return None
            return StoredOAuthToken(row.tenant, row.refresh_token, row.origin, row.updated_at)

        return await self._run(get)

    async def put_oauth_token(
        self, tenant: str, *, refresh_token: str, origin: str | None
    ) -> StoredOAuthToken:
        """Keep ``refresh_token`` for ``tenant``, replacing any before."""

        def put() -> StoredOAuthToken:
            now = utcnow()
            values = {"refresh_token": refresh_token, "origin": origin, "updated_at": now}
            with self._writer.begin() as conn:
                changed = conn.execute(
                    update(oauth_tokens).where(oauth_tokens.c.tenant == tenant).values(**values)
                ).rowcount
                if not changed:
                    conn.execute(oauth_tokens.insert().values(tenant=tenant, **values))
            return StoredOAuthToken(tenant, refresh_token, origin, now)

        return await self._run(put)

    # -- dashboard sessions -------------------------------------------------------------

    async def start_session(self, session_id: str, *, expires_at: datetime) -> None:
        """Record a signed-in dashboard session; delete the expired ones."""

        def start() -> None:
            now = utcnow()
            with self._writer.begin() as conn:
                conn.execute(sessions.delete().where(sessions.c.expires_at <= now))
                conn.execute(
                    sessions.insert().values(id=session_id, created_at=now, expires_at=expires_at)
                )

        await self._run(start)

    async def session_active(self, session_id: str) -> bool:
        """True while the session is recorded and not expired."""

        def active() -> bool:
            with self._reader.connect() as conn:
                found = conn.execute(
                    select(sessions.c.id).where(
                        sessions.c.id == session_id, sessions.c.expires_at > utcnow()
                    )
                ).first()
            return found is not None

        return await self._run(active)

    async def end_session(self, session_id: str) -> None:
        """Delete the session."""

        def end() -> None:
            with self._writer.begin() as conn:
                conn.execute(sessions.delete().where(sessions.c.id == session_id))

        await self._run(end)

    async def count_by_status(self) -> dict[str, int]:
        """How many messages are in each status (every status present, zeros included)."""

        def count() -> dict[str, int]:
            with self._reader.connect() as conn:
                rows = conn.execute(
                    select(messages.c.status, func.count()).group_by(messages.c.status)
                ).all()
            out = {s.value: 0 for s in Status}
            out.update({status: int(n) for status, n in rows})
            return out

        return await self._run(count)

    def _activity_sync(self, since: datetime, step: timedelta) -> Activity:
        edges = activity_edges(since, step, utcnow())
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
        filters = {
            name: value
            for name, value in (
                ("recipient", query.recipient),
                ("tenant", query.tenant),
                ("status", query.status.value if query.status is not None else None),
                ("template_type", query.template_type),
            )
            if value is not None
        }
        with self._reader.connect() as conn:
            driving = self._driving_columns(conn, filters)
            stmt = select(messages)
            for name, value in filters.items():
                column = messages.c[name]
                # ``column || ''`` keeps the planner off that column's indexes, so that the
                # page is read along the index of the driving columns (see _driving_columns).
                stmt = stmt.where((column if name in driving else column + "") == value)
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
            return [_message(r) for r in conn.execute(stmt)]

    def _driving_columns(self, conn: Connection, filters: dict[str, str]) -> frozenset[str]:
        """The filter columns whose index a newest-first page is read along.

        PostgreSQL's planner knows how common each value is and chooses itself (every column
        stays indexable). SQLite keeps no such statistics, and a poor choice reads a whole
        status or tenant to find a handful of rows, so we choose: the recipient (a handful of
        rows) when given, else whichever of tenant+status, tenant, status or template type
        matches the fewest rows, counted up to a small bound along its index
        (``ix_messages_*_created`` of migration 0005).
        """
        if self.postgres or len(filters) < 2:
            return frozenset(filters)
        if "recipient" in filters:
            return frozenset({"recipient"})
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
        """Return when work may have arrived, or after ``timeout``.

        SQLite: an enqueue in this process wakes us. PostgreSQL: any process's enqueue does,
        through LISTEN/NOTIFY; the timeout stays as the polling fallback.
        """
        if self.postgres and (self._listener is None or self._listener.done()):
            self._listener = asyncio.create_task(self._listen())
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), timeout=max(timeout, 0))
        self._wake.clear()

    async def _listen(self) -> None:
        """LISTEN for enqueues of other processes; reconnect after a lost connection."""
        import psycopg

        while True:
            try:
                async with await psycopg.AsyncConnection.connect(
                    self._conninfo, autocommit=True
                ) as conn:
                    await conn.execute(f"LISTEN {NOTIFY_CHANNEL}")
                    self._wake.set()  # anything enqueued while we were away
                    async for _notify in conn.notifies():
                        self._wake.set()
            except asyncio.CancelledError:
                raise
            except Exception:
                await asyncio.sleep(1.0)

    def _ping_sync(self) -> None:
        with self._reader.connect() as conn:
            conn.execute(select(func.count()).select_from(messages).limit(1))

    async def ping(self) -> None:
        """Raise :class:`StoreUnavailable` if the database cannot be read."""
        await self._run(self._ping_sync)

    async def close(self) -> None:
        """Release connections and the store's thread."""
        if self._listener is not None:
            self._listener.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._listener
        await self._run(self._writer.dispose)
        await self._run(self._state.dispose)
        await self._run(self._reader.dispose)
        self._executor.shutdown(wait=True)


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
_TAKE_DUE = _take(Status.QUEUED, messages.c.next_attempt_at)

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


def _dispatch_row(
    c: Completion, error: dict[str, Any] | None, worker: str, now: datetime
) -> dict[str, Any]:
    return {
        "id": new_id(),
        "message_id": c.message_id,
        "status": (DispatchStatus.FAILED if error else DispatchStatus.SUCCESS).value,
        "error": error,
        "worker": worker,
        "reclaimed_from": c.reclaimed_from,
        "created_at": now,
        "updated_at": now,
    }


def slot_free_at(
    recent: Sequence[datetime], limits: Sequence[tuple[int, float]], now: datetime
) -> datetime | None:
    """Given the hand-offs of the longest window (newest first), None when another one fits
    every limit now, else when it will."""
    waits: list[datetime] = []
    for count, per in limits:
        window = [t for t in recent if t > now - timedelta(seconds=per)]
        if len(window) >= count:
            # The slot frees when the count-th newest hand-off leaves the window.
            waits.append(window[count - 1] + timedelta(seconds=per))
    return max(waits) if waits else None


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
        reclaimed_from=m.get("reclaimed_from"),
        dispatches=attempts,
    )


def _tenant(row: Row[Any]) -> StoredTenant:
    m = row._mapping
    return StoredTenant(m["id"], m["courier"], m["created_at"], m["updated_at"])


def _dispatch(row: Row[Any]) -> Dispatch:
    m = row._mapping
    return Dispatch(
        id=m["id"],
        message_id=m["message_id"],
        status=DispatchStatus(m["status"]),
        error=Diagnosis.from_json(m["error"]) if m["error"] else None,
        created_at=m["created_at"],
        updated_at=m["updated_at"],
        reclaimed_from=m.get("reclaimed_from"),
    )


def jitter(seconds: float) -> float:
    """Spread a delay by +/-20% so that many messages do not fall due in the same instant."""
    return seconds * random.uniform(0.8, 1.2)
