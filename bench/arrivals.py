"""The SMTP server of bench/priority.py, in a process of its own (as a provider is another
machine: in the bench's process, receiving the bulk stream would hold the interpreter lock
while a code's timing is taken). It notes when each urgent message arrives, on the
machine's monotonic clock, and counts the bulk ones."""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import threading
import time
from multiprocessing.connection import Connection
from multiprocessing.sharedctypes import Synchronized
from multiprocessing.synchronize import Event as EventType
from typing import Any

from aiosmtpd.controller import Controller


def _serve(
    port: int, arrivals: Connection, ready: EventType, bulk: Synchronized[int], answer: float
) -> None:
    """The SMTP server's process: sends (tag, monotonic time) for each urgent message, and
    counts the others in ``bulk``; each end-of-data is answered ``answer`` seconds after it
    came (the time a provider takes to queue a message)."""

    class Handler:
        async def handle_DATA(self, _server: Any, _session: Any, envelope: Any) -> str:
            head = envelope.content.split(b"\r\n\r\n", 1)[0]
            for line in head.splitlines():
                if line.lower().startswith(b"subject: urgent "):
                    arrivals.send((line.split()[-1].decode(), time.monotonic()))
                    break
            else:
                with bulk.get_lock():
                    bulk.value += 1
            if answer:
                await asyncio.sleep(answer)
            return "250 OK"

    controller = Controller(Handler(), hostname="127.0.0.1", port=port)
    controller.start()
    ready.set()
    threading.Event().wait()  # until the bench terminates this process


class Arrivals:
    """An SMTP server in another process, and when each urgent message arrived there."""

    def __init__(self, port: int, answer: float = 0.0) -> None:
        self.seen: dict[str, float] = {}
        self.changed = threading.Condition()
        context = multiprocessing.get_context("spawn")
        self._pipe, child_end = context.Pipe(duplex=False)
        ready = context.Event()
        self._bulk = context.Value("q", 0)
        self._process = context.Process(
            target=_serve, args=(port, child_end, ready, self._bulk, answer), daemon=True
        )
        self._process.start()
        if not ready.wait(30):
            raise SystemExit("the bench's SMTP server did not start within 30 s")
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        with contextlib.suppress(EOFError, OSError):
            while True:
                tag, when = self._pipe.recv()
                with self.changed:
                    self.seen[tag] = when
                    self.changed.notify_all()

    def wait_for(self, tag: str, timeout: float) -> float:
        with self.changed:
            self.changed.wait_for(lambda: tag in self.seen, timeout=timeout)
        if tag not in self.seen:
            raise SystemExit(f"urgent message {tag} did not arrive within {timeout}s")
        return self.seen[tag]

    def bulk_arrived(self) -> int:
        """How many bulk messages the server has received so far."""
        return int(self._bulk.value)

    def stop(self) -> None:
        self._process.terminate()
        self._process.join(10)
