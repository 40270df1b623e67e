"""Throughput: ``postroom worker --drain`` against the raw ceiling, both to the same sink.

N messages of about 2 KB are enqueued through intake (validate, render, MIME, store), then
delivered by ``postroom worker --drain`` processes (one on SQLite, two on PostgreSQL, with the
default settings). In the same run, the raw ceiling: the same pre-built bytes sent with
aiosmtplib over the same number of connections to the same sink, on asyncio's own event loop
(the baseline: plain aiosmtplib code) and on uvloop (which the worker uses). Prints the rates,
the CPU time per message (of the enqueuing process and of the workers: steadier than rates
on a host with other load) and the ratios. The messages are rendered from the bench's own
templates, not the built-in ones, so that a run of an older checkout (``PYTHONPATH=<tree>/src``)
sends the same bytes and the comparison measures the courier, not the size of a template.
The sink is Postfix's smtp-sink when installed, else an aiosmtpd sink (said so).

Usage: python bench/throughput.py [--messages N] [--backend sqlite|postgres|both]
PostgreSQL: POSTROOM_TEST_PG_DSN (default postgresql://postgres@127.0.0.1:5432/test).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import aiosmtplib
import uvloop

from postroom.config import Settings
from postroom.intake import SendRequest, enqueue
from postroom.store import open_store
from sinks import sink

PG_DSN = os.environ.get("POSTROOM_TEST_PG_DSN", "postgresql://postgres@127.0.0.1:5432/test")


async def raw_ceiling(port: int, mime: bytes, count: int, connections: int) -> float:
    """Pre-built bytes over ``connections`` reused aiosmtplib connections."""

    async def one(share: int) -> None:
        client = aiosmtplib.SMTP(hostname="127.0.0.1", port=port, start_tls=False)
        await client.connect()
        for _ in range(share):
            await client.sendmail("no-reply@example.org", ["you@example.org"], mime)
        await client.quit()

    shares = [count // connections + (i < count % connections) for i in range(connections)]
    start = time.perf_counter()
    await asyncio.gather(*(one(share) for share in shares))
    return count / (time.perf_counter() - start)


async def fill(settings: Settings, count: int) -> tuple[float, bytes, float]:
    """Enqueue ``count`` login-code messages through intake; return the rate, one MIME and
    this process's CPU seconds (on SQLite all of the enqueue's work; on PostgreSQL without
    the server's)."""
    store = open_store(settings.dsn)
    await store.migrate()
    filler = "x" * 600  # in the text and the HTML part: about 2 KB of MIME in all
    requests = [
        SendRequest(
            to=f"user{n}@example.org",
            template_type="login_code_valid",
            data={"login_code": f"{n:06d}", "product_name": "Bench", "request_url": filler},
        )
        for n in range(count)
    ]
    start = time.perf_counter()
    cpu = time.process_time()
    mime = b""
    try:
        for offset in range(0, count, 500):
            stored = await enqueue(store, settings, requests[offset : offset + 500])
            mime = stored[0][0].mime
    finally:
        await store.close()
    return count / (time.perf_counter() - start), mime, time.process_time() - cpu


TEMPLATES = {
    "email.subject.j2": "Your {{ product_name }} sign-in code",
    "email.body.plaintext.j2": (
        "Enter this code to sign in to {{ product_name }}: {{ login_code }}\n\n"
        "Requested from {{ request_url }}\n"
    ),
    "email.body.html.j2": (
        "<p>Enter this code to sign in to {{ product_name }}: <b>{{ login_code }}</b></p>\n"
        "<p>Requested from {{ request_url }}</p>\n"
    ),
}


def write_templates(folder: Path) -> Path:
    """The bench's own login-code templates, the same whichever checkout renders them."""
    (folder / "login_code_valid").mkdir(parents=True)
    for name, text in TEMPLATES.items():
        (folder / "login_code_valid" / name).write_text(text)
    return folder


def write_config(folder: Path, dsn: str, port: int) -> tuple[Path, Settings]:
    """A configuration file in ``folder`` for the workers (the store at ``dsn``, the sink at
    ``port``, the bench's templates) and the same settings for this process's intake."""
    templates = write_templates(folder / "templates")
    uri = f"smtp://127.0.0.1:{port}/?disable_starttls=true"
    config = folder / "postroom.yaml"
    config.write_text(
        f"dsn: {dsn}\ncourier:\n  template_override_path: {templates}\n  smtp:\n"
        f"    connection_uri: {uri}\n    from_address: no-reply@example.org\n"
    )
    courier = {
        "template_override_path": str(templates),
        "smtp": {"connection_uri": uri, "from_address": "no-reply@example.org"},
    }
    return config, Settings.model_validate({"dsn": dsn, "courier": courier})


def drain(config: Path, processes: int) -> tuple[float, float]:
    """Run ``postroom worker --drain`` processes; return the seconds until all are done and
    the CPU seconds the workers used (less swayed by other load on the host than the time)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("COURIER_", "POSTROOM_"))}
    env["POSTROOM_LOG_LEVEL"] = "WARNING"
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu_before = before.ru_utime + before.ru_stime
    start = time.perf_counter()
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "postroom.cli", "worker", "--drain", "--config", str(config)],
            env=env,
            stdout=subprocess.DEVNULL,
        )
        for _ in range(processes)
    ]
    for proc in procs:
        assert proc.wait() == 0
    seconds = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return seconds, after.ru_utime + after.ru_stime - cpu_before


async def sent_count(dsn: str) -> int:
    store = open_store(dsn)
    try:
        return (await store.count_by_status())["sent"]
    finally:
        await store.close()


@dataclass
class Figures:
    """One backend's figures: rates in messages a second, CPU in milliseconds a message."""

    enqueue: float
    enqueue_cpu: float
    deliver: float
    deliver_cpu: float
    ceiling: float
    ceiling_uvloop: float
    connections: int
    mime: bytes


def run(backend: str, count: int, port: int) -> Figures:
    """Fill, drain and measure one backend."""
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        if backend == "postgres":
            import psycopg

            name = f"postroom_bench_{uuid.uuid4().hex[:8]}"
            with psycopg.connect(PG_DSN, autocommit=True) as conn:
                conn.execute(f'CREATE DATABASE "{name}"')
            dsn = PG_DSN.rsplit("/", 1)[0] + f"/{name}"
            processes = 2
        else:
            dsn, processes, name = f"sqlite:///{folder / 'bench.db'}", 1, ""
        config, settings = write_config(folder, dsn, port)
        try:
            enqueue_rate, mime, enqueue_cpu = asyncio.run(fill(settings, count))
            seconds, deliver_cpu = drain(config, processes)
            assert asyncio.run(sent_count(dsn)) == count
            connections = settings.courier.worker.concurrency * processes
            # The raw ceiling on asyncio's own loop (what plain aiosmtplib code runs on) and on
            # uvloop (which the worker uses): both are printed, the first is the baseline.
            ceiling = asyncio.run(raw_ceiling(port, mime, count, connections))
            ceiling_uvloop = uvloop.run(raw_ceiling(port, mime, count, connections))
        finally:
            if backend == "postgres":
                import psycopg

                with psycopg.connect(PG_DSN, autocommit=True) as conn:
                    conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    per = 1000 / count
    return Figures(
        enqueue_rate,
        enqueue_cpu * per,
        count / seconds,
        deliver_cpu * per,
        ceiling,
        ceiling_uvloop,
        connections,
        mime,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--messages", type=int, default=20_000)
    parser.add_argument("--backend", choices=["sqlite", "postgres", "both"], default="both")
    args = parser.parse_args()
    backends = ["sqlite", "postgres"] if args.backend == "both" else [args.backend]
    with sink() as (port, what):
        print(f"sink: {what}; messages: {args.messages}")
        for backend in backends:
            f = run(backend, args.messages, port)
            workers = 2 if backend == "postgres" else 1
            print(
                f"{backend:<8} MIME {len(f.mime)} B | enqueue {f.enqueue:6.0f} msg/s "
                f"({f.enqueue_cpu:.3f} ms CPU/msg) | worker --drain x{workers} {f.deliver:6.0f} "
                f"msg/s ({f.deliver_cpu:.3f} ms CPU/msg) | raw aiosmtplib x{f.connections} "
                f"{f.ceiling:6.0f} msg/s (uvloop {f.ceiling_uvloop:6.0f}) | ratio "
                f"{f.deliver / f.ceiling:.2f} (to uvloop {f.deliver / f.ceiling_uvloop:.2f})"
            )


if __name__ == "__main__":
    main()
