"""A process that enqueues one message and says so, then waits to be killed.

Run as ``python enqueue_child.py DSN`` by ``test_durability.py``: it writes
``enqueued MESSAGE_ID PID`` on stdout once ``enqueue`` has returned (the moment a caller is told
yes), then blocks on stdin until the test kills it.
"""

from __future__ import annotations

import asyncio
import os
import sys

from store_support import new

from postroom.store import open_store


async def main(dsn: str) -> None:
    store = open_store(dsn)
    [(message, _)] = await store.enqueue([new()], max_attempts=3, ttl=0)
    os.write(1, f"enqueued {message.id} {os.getpid()}\n".encode())
    await asyncio.to_thread(sys.stdin.read)  # until killed: the store is never closed


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1]))
