"""On SQLite, an enqueue wakes the workers of other processes at once (PostgreSQL has
LISTEN/NOTIFY; SQLite has the bells beside the database file). Without them, an idle
`postroom worker` beside a separate `serve --no-worker` saw a login code at its next poll,
up to a second later."""

from __future__ import annotations

import asyncio
import os
import socket
import time
from pathlib import Path

from test_lanes_load import URGENT, arrivals, send_urgent, tagged
from test_postgres_fleet import eventually, fleet, write_config

from postroom.models import Priority
from postroom.store import open_store
from postroom.store.bells import bell_folder

from smtp_servers import smtp_server


def listening(db: Path) -> bool:
    folder = bell_folder(db)
    return folder.is_dir() and any(folder.iterdir())


async def test_a_worker_in_another_process_takes_a_code_at_once(tmp_path: Path) -> None:
    db = tmp_path / "queue.db"
    dsn = f"sqlite:///{db}"
    store = open_store(dsn)
    await store.migrate()
    try:
        with smtp_server() as srv, fleet(write_config(tmp_path, dsn, srv.port), 1):
            await eventually(lambda: listening(db), timeout=30)
            waits = []
            for k in range(6):
                # At uneven points of the worker's one-second poll: the poll alone would
                # make some of them wait most of a second.
                await asyncio.sleep(0.37)
                sent = await send_urgent(store, URGENT + k)
                await eventually(lambda n=URGENT + k: n in arrivals(srv), timeout=5)
                waits.append(arrivals(srv)[URGENT + k] - sent)
    finally:
        await store.close()
    assert max(waits) < 0.3, [round(w, 3) for w in waits]


async def test_a_waiting_store_is_woken_by_another_stores_enqueue(tmp_path: Path) -> None:
    dsn = f"sqlite:///{tmp_path / 'queue.db'}"
    worker_side, intake_side = open_store(dsn), open_store(dsn)
    await worker_side.migrate()
    heard: list[float] = []
    stop = worker_side.on_urgent(lambda: heard.append(time.monotonic()))
    try:
        waiting = asyncio.create_task(worker_side.wait(30))
        await asyncio.sleep(0)  # the waiter is listening
        await intake_side.enqueue([tagged(1, Priority.BULK)], max_attempts=3, ttl=0)
        await asyncio.wait_for(waiting, 5)  # woken, not after its 30 s
        assert heard == []  # bulk mail wakes the worker, but calls no urgent watcher
        await intake_side.enqueue([tagged(2, Priority.URGENT)], max_attempts=3, ttl=0)
        await eventually(lambda: len(heard) == 1, timeout=5)
    finally:
        stop()
        await worker_side.close()
        await intake_side.close()
    assert list(bell_folder(tmp_path / "queue.db").iterdir()) == []  # closed: socket removed


async def test_the_socket_of_a_process_that_died_is_removed(tmp_path: Path) -> None:
    db = tmp_path / "queue.db"
    store = open_store(f"sqlite:///{db}")
    await store.migrate()
    folder = bell_folder(db)
    folder.mkdir()
    dead = folder / "4242-deadbeef"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(str(dead))  # bound, then closed with its process: nobody reads it
    try:
        await store.enqueue([tagged(1, Priority.URGENT)], max_attempts=3, ttl=0)
    finally:
        await store.close()
    assert not dead.exists()
    assert os.listdir(folder) == []
