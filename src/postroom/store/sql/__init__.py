"""The SQL store (SQLite, and the same Core statements serve PostgreSQL), one module per role
on a shared engine: :mod:`.engine` (engines, thread, migrations, LISTEN), :mod:`.queue` (over
:mod:`.leases`), :mod:`.records`, :mod:`.tenants`, :mod:`.sessions`, and :mod:`.rows` (rows <->
models)."""

from __future__ import annotations

from postroom.store.listener_sql import SqlListenerRecords
from postroom.store.sql.dkim_keys import SqlDkimKeys
from postroom.store.sql.engine import (
    MIGRATIONS,
    StoreUnavailable,
    newest_migration,
    postgres_url,
)
from postroom.store.sql.queue import SqlQueue
from postroom.store.sql.records import SqlRecords
from postroom.store.sql.sessions import SqlSessions
from postroom.store.sql.tenants import SqlTenants


class SqlStore(SqlQueue, SqlRecords, SqlTenants, SqlSessions, SqlListenerRecords, SqlDkimKeys):
    """A :class:`~postroom.store.Store` over SQLAlchemy Core: SQLite or PostgreSQL."""


__all__ = ["MIGRATIONS", "SqlStore", "StoreUnavailable", "newest_migration", "postgres_url"]
