"""What the benchmarks share: SMTP sinks (Postfix's smtp-sink when installed, Debian's postfix
package, else an aiosmtpd sink in its own process; both accept everything and keep nothing), a
free port, and the closed-loop HTTP load with its percentile and report line."""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

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
    python = subprocess.Popen(
        [sys.executable, "-c", AIOSMTPD_SINK, str(port)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert python.stdout is not None and python.stdout.readline().strip() == "ready"
        yield port, "aiosmtpd sink (smtp-sink not installed: apt-get install postfix)"
    finally:
        assert python.stdin is not None
        python.stdin.close()
        python.wait(timeout=10)


# -- measuring HTTP load, and the report line ---------------------------------------------------


def cpu_seconds(pid: int) -> float:
    """User and system CPU time of process ``pid`` so far, every thread (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def percentile(values: list[float], q: float) -> float:
    """The ``q`` quantile (0..1) of ``values``: the nearest rank, no interpolation."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def line(name: str, rate: float, latencies: list[float]) -> str:
    """One report line: requests per second, p50 and p99 latency."""
    return (
        f"{name:<28} {rate:8.0f} req/s   p50 {percentile(latencies, 0.5) * 1000:6.1f} ms"
        f"   p99 {percentile(latencies, 0.99) * 1000:6.1f} ms"
    )


async def closed_loop(
    base: str,
    make: Callable[[httpx.AsyncClient, int], Awaitable[httpx.Response]],
    total: int,
    clients: int,
    first: int = 0,
) -> tuple[float, list[float]]:
    """``clients`` concurrent clients, each sending requests ``first`` to ``first + total - 1``
    back to back; the requests per second and every request's latency in seconds."""
    latencies: list[float] = []
    counter = iter(range(first, first + total))
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)

    async def client(http: httpx.AsyncClient) -> None:
        for n in counter:
            start = time.perf_counter()
            response = await make(http, n)
            latencies.append(time.perf_counter() - start)
            assert response.status_code < 300, response.text

    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=30) as http:
        start = time.perf_counter()
        await asyncio.gather(*(client(http) for _ in range(clients)))
        elapsed = time.perf_counter() - start
    return total / elapsed, latencies
