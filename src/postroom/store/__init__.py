"""Storage, which is also the queue. ``open_store`` picks the backend from the DSN.

The store has roles (:mod:`postroom.store.roles`): :class:`Queue`, :class:`Records`,
:class:`Tenants`, :class:`Sessions` and :class:`DkimKeys`; a :class:`Store` is all of them plus
migrate, ping and close. Each backend (:mod:`.sql`, :mod:`.memory`) has one module per role.

The SQL backend is imported when first asked for (:func:`open_store` with a SQL DSN, or the
names ``SqlStore`` and ``StoreUnavailable``), so that the memory store, and whatever uses only
it, runs without importing SQLAlchemy."""

from typing import TYPE_CHECKING, Any

from postroom.clock import utcnow
from postroom.store.base import Budget, Completion, MessageFilter
from postroom.store.memory import memory_store
from postroom.store.roles import DkimKeys, Intake, Queue, Records, Sessions, Store, Tenants

if TYPE_CHECKING:
    from postroom.store.sql import SqlStore, StoreUnavailable

_SQL_NAMES = frozenset({"SqlStore", "StoreUnavailable"})


def open_store(dsn: str) -> Store:
    """Open the store that ``dsn`` names: ``sqlite:///path``, ``postgres://...`` or
    ``memory://NAME`` (nothing kept; the same NAME is the same store within this process, for
    tests). The schema is not migrated."""
    if dsn.startswith("memory:"):
        return memory_store(dsn.removeprefix("memory:").strip("/"))
    from postroom.store import sql

    return sql.SqlStore(dsn)


def __getattr__(name: str) -> Any:
    """``SqlStore`` and ``StoreUnavailable``, from the SQL backend imported on first use."""
    if name in _SQL_NAMES:
        from postroom.store import sql

        return getattr(sql, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "Budget",
    "Completion",
    "DkimKeys",
    "Intake",
    "MessageFilter",
    "Queue",
    "Records",
    "Sessions",
    "SqlStore",
    "Store",
    "StoreUnavailable",
    "Tenants",
    "open_store",
    "utcnow",
]
