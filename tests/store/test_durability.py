"""What waits for the disk on PostgreSQL: an acknowledged enqueue does; the worker's own
bookkeeping (claims, leases, statuses) does not, as with SQLite's synchronous=NORMAL."""

from __future__ import annotations

from postroom.store.sql import SqlStore


async def test_enqueues_wait_for_the_wal_flush_and_worker_bookkeeping_does_not(
    pg_dsn: str,
) -> None:
    store = SqlStore(pg_dsn)
    try:
        with store._writer.connect() as conn:
            assert conn.exec_driver_sql("SHOW synchronous_commit").scalar() == "on"
        with store._state.connect() as conn:
            assert conn.exec_driver_sql("SHOW synchronous_commit").scalar() == "off"
    finally:
        await store.close()
