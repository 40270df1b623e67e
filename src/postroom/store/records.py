"""The :class:`~postroom.store.events_base.EventRecords` of a store: one per store object."""

from __future__ import annotations

import weakref
from typing import cast

from postroom.store.events_base import EventRecords
from postroom.store.events_memory import MemoryEventRecords
from postroom.store.events_sql import SqlEventRecords
from postroom.store.memory import MemoryStore
from postroom.store.roles import Queue
from postroom.store.sql import SqlStore

_RECORDS: weakref.WeakKeyDictionary[Queue, EventRecords] = weakref.WeakKeyDictionary()


def events_of(store: Queue) -> EventRecords:
    """The event records kept beside ``store``, a whole store held by any of its roles (the
    same object for the same store)."""
    found = _RECORDS.get(store)
    if found is None:
        # By what the store has rather than its class: a wrapper that passes attributes on
        # to a real store (as tests inject faults) gets that store's records.
        if isinstance(store, SqlStore) or hasattr(store, "_writer"):
            found = SqlEventRecords(cast(SqlStore, store))
        elif isinstance(store, MemoryStore) or hasattr(store, "_dispatches"):
            found = MemoryEventRecords(cast(MemoryStore, store))
        else:
            raise TypeError(f"no event records for a {type(store).__name__}")
        _RECORDS[store] = found
    return found
