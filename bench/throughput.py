"""Throughput: Postroom's worker against raw aiosmtplib, both to the same aiosmtpd sink.

The sink runs in its own process so that it does not share the interpreter with what is
measured. Prints messages per second for:

- baseline: raw aiosmtplib, ``concurrency`` reused connections, the same MIME bytes;
- enqueue: Postroom's intake (validate, render, MIME, durable SQLite insert), in batches;
- deliver: Postroom's worker draining the queue (claim, send, record) with ``concurrency``.

Usage: python bench/throughput.py [--messages N] [--concurrency C]
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import aiosmtplib

from postroom.config import Settings
from postroom.intake import SendRequest, enqueue
from postroom.store import open_store
from postroom.worker import Worker

SINK = textwrap.dedent("""\
    import asyncio, sys
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
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def baseline(port: int, mime: bytes, count: int, concurrency: int) -> float:
    """Raw aiosmtplib: ``concurrency`` connections, each sending its share in sequence."""

    async def one_connection(share: int) -> None:
        client = aiosmtplib.SMTP(hostname="127.0.0.1", port=port, start_tls=False)
        await client.connect()
        for _ in range(share):
            await client.sendmail("no-reply@example.org", ["you@example.org"], mime)
        await client.quit()

    shares = [
        count // concurrency + (1 if i < count % concurrency else 0) for i in range(concurrency)
    ]
    start = time.perf_counter()
    await asyncio.gather(*(one_connection(s) for s in shares))
    return count / (time.perf_counter() - start)


async def postroom(
    port: int, count: int, concurrency: int, workdir: Path
) -> tuple[float, float, bytes]:
    settings = Settings.model_validate(
        {
            "dsn": f"sqlite:///{workdir / 'bench.db'}",
            "courier": {
                "smtp": {
                    "connection_uri": f"smtp://127.0.0.1:{port}/?disable_starttls=true",
                    "from_address": "no-reply@example.org",
                },
                "worker": {"concurrency": concurrency},
            },
        }
    )
    store = open_store(settings.dsn)
    await store.migrate()
    requests = [
        SendRequest(
            to=f"user{n}@example.org",
            template_type="login_code_valid",
            data={"login_code": f"{n:06d}"},
        )
        for n in range(count)
    ]
    start = time.perf_counter()
    for offset in range(0, count, 500):
        stored = await enqueue(store, settings, requests[offset : offset + 500])
    enqueue_rate = count / (time.perf_counter() - start)
    mime = stored[0][0].mime
    start = time.perf_counter()
    stats = await Worker(store, settings).run(drain=True)
    deliver_rate = count / (time.perf_counter() - start)
    await store.close()
    assert stats.sent == count, stats
    return enqueue_rate, deliver_rate, mime


async def measure(port: int, count: int, concurrency: int) -> None:
    """Run Postroom first, then the baseline, against the sink on ``port``; print figures."""
    with tempfile.TemporaryDirectory() as tmp:
        enq, deliver, mime = await postroom(port, count, concurrency, Path(tmp))
    base = await baseline(port, mime, count, concurrency)
    print(f"messages: {count}, concurrency: {concurrency}, MIME size: {len(mime)} bytes")
    print(f"baseline  raw aiosmtplib             {base:8.0f} msg/s")
    print(f"enqueue   intake + SQLite            {enq:8.0f} msg/s")
    print(
        f"deliver   worker (claim/send/record) {deliver:8.0f} msg/s"
        f" = {deliver / base:.2f} x baseline"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--messages", type=int, default=3000)
    parser.add_argument("--concurrency", type=int, default=8)
    args = parser.parse_args()
    port = free_port()
    sink = subprocess.Popen(
        [sys.executable, "-c", SINK, str(port)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert sink.stdout is not None and sink.stdout.readline().strip() == "ready"
        asyncio.run(measure(port, args.messages, args.concurrency))
    finally:
        assert sink.stdin is not None
        sink.stdin.close()
        sink.wait(timeout=10)


if __name__ == "__main__":
    main()
