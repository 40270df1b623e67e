"""SMTP sinks for benchmarks: Postfix's smtp-sink when installed (Debian's postfix package),
else an aiosmtpd sink in its own process. Both accept everything and keep nothing."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from contextlib import contextmanager

AIOSMTPD_SINK = textwrap.dedent("""\
    import sys
    from aiosmtpd.controller import Controller

    class Sink:
        async def handle_DATA(self, server, session, envelope):
            return "250 OK"

    controller = Controller(Sink(), hostname="127.0.0.1", port=int(sys.argv[1]))
    controller.start()
    print("ready", flush=True)
    sys.stdin.read()
    controller.stop()
    """)


def free_port() -> int:
    """A TCP port nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_listening(port: int, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


@contextmanager
def sink() -> Iterator[tuple[int, str]]:
    """Start a sink; yield its port and a description of what it is."""
    port = free_port()
    smtp_sink = shutil.which("smtp-sink", path=f"{os.environ.get('PATH', '')}:/usr/sbin")
    if smtp_sink:
        proc = subprocess.Popen(
            [smtp_sink, "-u", "nobody", f"127.0.0.1:{port}", "1024"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        what = "Postfix smtp-sink"
        try:
            _wait_listening(port)
            yield port, what
        finally:
            proc.terminate()
            proc.wait(timeout=10)
        return
    proc = subprocess.Popen(
        [sys.executable, "-c", AIOSMTPD_SINK, str(port)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        yield port, "aiosmtpd sink (smtp-sink not installed: apt-get install postfix)"
    finally:
        assert proc.stdin is not None
        proc.stdin.close()
        proc.wait(timeout=10)
