"""Storage, which is also the queue. ``open_store`` picks the backend from the DSN."""

from postroom.store.base import Completion, MessageFilter, Store
from postroom.store.sql import SqlStore, StoreUnavailable, utcnow


def open_store(dsn: str) -> Store:
    """Open the store that ``dsn`` names: ``sqlite:///path``, ``postgres://...`` or
    ``memory://NAME`` (nothing kept; the same NAME is the same store within this process, for
    tests). The schema is not migrated."""
    if dsn.startswith("memory:"):
        from postroom.store.memory import memory_store

        return memory_store(dsn.removeprefix("memory:").strip("/"))
    return SqlStore(dsn)


__all__ = [
    "Completion",
    "MessageFilter",
    "SqlStore",
    "Store",
    "StoreUnavailable",
    "open_store",
    "utcnow",
]
