"""Wake-ups across processes for SQLite, which has no LISTEN/NOTIFY: each process that waits
for work (a worker) binds a Unix datagram socket in a folder beside the database, and an
enqueue sends one datagram to every socket there. A worker in another process than intake
then claims a login code at once instead of at its next look (up to a second when idle).

Best effort, like NOTIFY: where a socket cannot be made (a path too long for a Unix socket, a
folder the process may not write, not a Unix system), workers keep polling as before. The
socket of a process that died is removed by the first enqueue that finds nobody behind it.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import os
import secrets
import socket
from pathlib import Path

from postroom.store.wakeup import URGENT_PAYLOAD, Wakeup

log = logging.getLogger("postroom.store")

MAX_PATH = 100
"""Bytes a Unix socket's path may have (108 on Linux, 104 on BSDs), with room to spare."""

URGENT = URGENT_PAYLOAD.encode()
ANY = b"any"


def bell_folder(database: Path) -> Path:
    """The folder of a database's sockets: ``postroom.db`` -> ``.postroom.db.wake``, hidden
    and apart from ``postroom.db*`` (a backup's ``cp postroom.db*`` copies files only)."""
    return database.with_name(f".{database.name}.wake")


class Bells:
    """The sockets of one SQLite database's waiting processes."""

    def __init__(self, database: Path) -> None:
        self.folder = bell_folder(database.absolute())
        self._sock: socket.socket | None = None
        self._path: Path | None = None
        self._sender: socket.socket | None = None  # made at the first ring, kept
        self._unusable = False  # no socket could be made here: poll, and do not try again

    def ring(self, *, urgent: bool = False) -> None:
        """Tell every waiting process of this database that work may have arrived."""
        try:
            entries = list(os.scandir(self.folder))
        except OSError:  # nobody has listened yet
            return
        payload = URGENT if urgent else ANY
        if self._sender is None:
            try:
                self._sender = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            except OSError:
                return
            self._sender.setblocking(False)
        for entry in entries:
            if self._path is not None and entry.path == str(self._path):
                continue  # this process rings its own waiters directly
            try:
                self._sender.sendto(payload, entry.path)
            except BlockingIOError:
                pass  # its queue is full of wake-ups already
            except OSError as exc:
                if exc.errno == errno.ECONNREFUSED:  # its process is gone
                    with contextlib.suppress(OSError):
                        os.unlink(entry.path)

    def listen(self, wake: Wakeup) -> None:
        """Bind this process's socket and ring ``wake`` for every datagram (once; where no
        socket can be made here, polling goes on)."""
        if self._sock is not None or self._unusable:
            return
        path = self.folder / f"{os.getpid()}-{secrets.token_hex(4)}"
        sock = None
        try:
            if len(os.fsencode(path)) > MAX_PATH or not hasattr(socket, "AF_UNIX"):
                raise OSError("no Unix socket can have this path")
            self.folder.mkdir(mode=0o700, exist_ok=True)
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            sock.bind(str(path))
            sock.setblocking(False)
            asyncio.get_running_loop().add_reader(sock.fileno(), self._heard, sock, wake)
        except (OSError, NotImplementedError) as exc:  # NotImplementedError: Windows' loop
            if sock is not None:
                sock.close()
            self._unusable = True
            log.info("no wake-up socket in %s (%s): workers poll once a second", self.folder, exc)
            return
        self._sock, self._path = sock, path

    @staticmethod
    def _heard(sock: socket.socket, wake: Wakeup) -> None:
        urgent = False
        while True:
            try:
                urgent = sock.recv(16) == URGENT or urgent
            except (BlockingIOError, InterruptedError):
                break
            except OSError:
                return
        wake.ring(urgent=urgent)

    def close(self) -> None:
        """Stop listening and remove this process's socket."""
        if self._sender is not None:
            self._sender.close()
            self._sender = None
        sock, path, self._sock, self._path = self._sock, self._path, None, None
        if sock is None or path is None:
            return
        with contextlib.suppress(Exception):
            asyncio.get_running_loop().remove_reader(sock.fileno())
        sock.close()
        with contextlib.suppress(OSError):
            path.unlink()
