"""An in-memory store: the same contract as the SQL stores, for unit tests and trying things
out, one module per role like :mod:`postroom.store.sql` (and importing none of it)."""

from __future__ import annotations

from postroom.store.listener import MemoryListenerRecords
from postroom.store.memory.dkim_keys import MemoryDkimKeys
from postroom.store.memory.queue import MemoryQueue
from postroom.store.memory.records import MemoryRecords
from postroom.store.memory.tenants import MemorySessions, MemoryTenants


class MemoryStore(
    MemoryQueue,
    MemoryRecords,
    MemoryTenants,
    MemorySessions,
    MemoryListenerRecords,
    MemoryDkimKeys,
):
    """A :class:`~postroom.store.Store` in a dict."""


_NAMED: dict[str, MemoryStore] = {}


def memory_store(name: str) -> MemoryStore:
    """The process's memory store called ``name`` (a new one for an empty name)."""
    if not name:
        return MemoryStore()
    return _NAMED.setdefault(name, MemoryStore())
