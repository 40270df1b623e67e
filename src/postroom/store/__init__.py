"""Storage, which is also the queue. ``open_store`` picks the backend from the DSN."""

from postroom.store.base import Completion, MessageFilter, Store
from postroom.store.sql import SqlStore, StoreUnavailable, utcnow


def open_store(dsn: str) -> Store:
    """Open the store that ``dsn`` names (``sqlite:///path``); the schema is not migrated."""
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
