"""The SQL store's engine room: the engines (SQLite or PostgreSQL), the one thread every
statement runs on, the schema migrations, LISTEN/NOTIFY wake-ups, ping and close. The roles
(queue, records, tenants) build on :class:`SqlEngine`.

SQLAlchemy's engine is synchronous; every call runs on one dedicated thread so the event
loop never blocks and SQLite sees a single writer per process. Writes open with
``BEGIN IMMEDIATE`` so that concurrent processes queue on SQLite's lock instead of failing.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import Connection, Engine, create_engine, event, func, select, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError, ProgrammingError

from postroom.errors import ConfigError, PostroomError
from postroom.store.bells import Bells
from postroom.store.schema import messages
from postroom.store.wakeup import URGENT_PAYLOAD, Wakeup

T = TypeVar("T")
MIGRATIONS = Path(__file__).parent.parent / "migrations"
NOTIFY_CHANNEL = "postroom_queue"


def newest_migration() -> str:
    """The head revision: each migration's revision is its file's number (``0006_...``)."""
    return max(p.name.split("_", 1)[0] for p in (MIGRATIONS / "versions").glob("[0-9]*_*.py"))


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


class SqlEngine:
    """Engines, the store's thread, the schema and the wake-up that every SQL role shares."""

    def __init__(self, dsn: str) -> None:
        self._bells: Bells | None = None
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
            if url.database and url.database != ":memory:":  # a file: wake-ups across processes
                Path(url.database).parent.mkdir(parents=True, exist_ok=True)
                self._bells = Bells(Path(url.database))
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
                pool_pre_ping=False,  # see _run_state
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
        # The same pool, each statement its own transaction: a look for urgent mail is one
        # statement on PostgreSQL, and BEGIN and COMMIT would be two more round trips.
        self._autocommit = self._state.execution_options(isolation_level="AUTOCOMMIT")
        self._executor = ThreadPoolExecutor(
            max_workers=threads, thread_name_prefix="postroom-store"
        )
        self._listener: asyncio.Task[None] | None = None
        self._wake = Wakeup()

    async def _run(self, fn: Callable[[], T]) -> T:
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._executor, fn)
        except (OperationalError, InterfaceError) as exc:
            raise StoreUnavailable(f"the database {self.dsn} failed: {exc.orig}") from exc

    async def _run_state(self, fn: Callable[[], T]) -> T:
        """:meth:`_run` for the worker's verbs (claims, leases, statuses, slots). Their engine
        does not ping a connection before each use (a round trip in front of every claim,
        login codes' too): a connection the server cut since its last use (a restart) fails
        its first statement instead, the pool drops every connection that old, and the verb
        runs once more on a fresh one. Such a cut comes while the connection sits idle in the
        pool, so nothing of the first run was done (a cut in the middle of a transaction
        rolls it back)."""

        def once_more_if_cut() -> T:
            try:
                return fn()
            except DBAPIError as exc:
                if not exc.connection_invalidated:
                    raise
                return fn()

        return await self._run(once_more_if_cut)

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

    async def wait(self, timeout: float) -> None:
        """Return when work may have arrived, or after ``timeout``.

        Any process's enqueue wakes us: on PostgreSQL through LISTEN/NOTIFY, on SQLite
        through the database's bells (:mod:`postroom.store.bells`); the timeout stays as the
        polling fallback.
        """
        self._listen_once()
        await self._wake.wait(timeout)

    def on_urgent(self, call: Callable[[], None]) -> Callable[[], None]:
        """Call ``call`` whenever urgent mail is enqueued, in any process; stop when the
        function returned is called."""
        self._listen_once()
        return self._wake.on_urgent(call)

    def _listen_once(self) -> None:
        if self.postgres and (self._listener is None or self._listener.done()):
            self._listener = asyncio.create_task(self._listen())
        elif self._bells is not None:
            self._bells.listen(self._wake)

    def _announce(self, *, urgent: bool = False) -> None:
        """Work was stored (an enqueue, a retry): wake this process's waiters, and on SQLite
        those of other processes (on PostgreSQL the transaction's NOTIFY does)."""
        self._wake.ring(urgent=urgent)
        if self._bells is not None:
            self._bells.ring(urgent=urgent)

    async def _listen(self) -> None:
        """LISTEN for enqueues of other processes; reconnect after a lost connection."""
        import psycopg

        while True:
            try:
                async with await psycopg.AsyncConnection.connect(
                    self._conninfo, autocommit=True
                ) as conn:
                    await conn.execute(f"LISTEN {NOTIFY_CHANNEL}")
                    self._wake.ring(urgent=True)  # anything enqueued while we were away
                    async for notify in conn.notifies():
                        self._wake.ring(urgent=notify.payload == URGENT_PAYLOAD)
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
        if self._bells is not None:
            self._bells.close()
        if self._listener is not None:
            self._listener.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._listener
        await self._run(self._writer.dispose)
        await self._run(self._state.dispose)
        await self._run(self._reader.dispose)
        self._executor.shutdown(wait=True)
