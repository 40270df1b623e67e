"""Many worker processes on PostgreSQL, against a real SMTP server: every message arrives
exactly once, nothing is lost when workers are killed, the SMTP server vanishes or PostgreSQL
restarts, and a shared rate limit holds across processes."""

from __future__ import annotations

import asyncio
import itertools
import os
import shutil
import signal
import subprocess
import tempfile
import textwrap
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from postroom.models import NewMessage, Status, TemplateType
from postroom.store import MessageFilter, Store, open_store

from procs import POSTROOM, clean_env
from smtp_servers import Server, free_port, smtp_server


def new_message(n: int) -> NewMessage:
    mime = (
        f"From: no-reply@example.org\r\nTo: user{n}@example.org\r\nSubject: code {n}\r\n"
        f"Message-ID: <{n}@fleet.test>\r\n\r\nYour code is {n:06d}.\r\n"
    ).encode()
    return NewMessage(
        tenant="default",
        recipient=f"user{n}@example.org",
        template_type=TemplateType.STUB,
        template_data={},
        subject=f"code {n}",
        body="",
        html_body=None,
        mime=mime,
    )


async def enqueue_many(dsn: str, count: int) -> None:
    store = open_store(dsn)
    await store.migrate()
    try:
        for start in range(0, count, 1000):
            batch = [new_message(n) for n in range(start, min(count, start + 1000))]
            await store.enqueue(batch, max_attempts=101, ttl=0)
    finally:
        await store.close()


def write_config(folder: Path, dsn: str, port: int, extra: str = "") -> Path:
    config = folder / "postroom.yaml"
    config.write_text(
        textwrap.dedent(f"""\
            dsn: {dsn}
            courier:
              smtp:
                connection_uri: smtp://127.0.0.1:{port}/?disable_starttls=true
                from_address: no-reply@example.org
              message_retries: 100
              message_ttl: 0s
              retry: {{initial: 500ms, max: 3s}}
              worker: {{concurrency: 8, lease: 5s}}
            """)
        + extra
    )
    return config


class Fleet:
    """``postroom worker`` processes sharing one configuration."""

    def __init__(self, config: Path) -> None:
        self.config = config
        self.procs: list[subprocess.Popen[bytes]] = []

    def start(self) -> subprocess.Popen[bytes]:
        with open(self.config.parent / "workers.log", "ab") as log:
            proc = subprocess.Popen(
                [*POSTROOM, "worker", "--config", str(self.config)],
                env=clean_env(POSTROOM_LOG_LEVEL="WARNING"),
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        self.procs.append(proc)
        return proc

    def stop(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs:
            proc.wait(timeout=60)


@contextmanager
def fleet(config: Path, size: int) -> Iterator[Fleet]:
    workers = Fleet(config)
    for _ in range(size):
        workers.start()
    try:
        yield workers
    finally:
        workers.stop()


async def wait_until_delivered(store: Store, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while (pending := await store.count_pending()) > 0:
        assert time.monotonic() < deadline, f"{pending} messages still pending"
        await asyncio.sleep(0.25)


async def eventually(predicate: Callable[[], bool], *, timeout: float) -> None:
    """Wait until ``predicate()`` holds."""
    deadline = time.monotonic() + timeout
    while True:
        if predicate():
            return
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.05)


def received_ids(server: Server) -> Counter[str]:
    return Counter(m.message_id for m in server.rec.messages)


async def test_four_workers_deliver_20000_messages_exactly_once(
    pg_dsn: str, tmp_path: Path
) -> None:
    count = 20_000
    await enqueue_many(pg_dsn, count)
    with smtp_server() as srv:
        config = write_config(tmp_path, pg_dsn, srv.port)
        store = open_store(pg_dsn)
        try:
            with fleet(config, 4):
                await wait_until_delivered(store, timeout=300)
            sent = (await store.count_by_status())["sent"]
        finally:
            await store.close()
    ids = received_ids(srv)
    assert sent == count
    assert len(ids) == count
    assert max(ids.values()) == 1, [i for i, n in ids.items() if n > 1][:5]


async def test_killing_workers_loses_nothing_and_duplicates_are_on_record(
    pg_dsn: str, tmp_path: Path
) -> None:
    count = 20_000
    await enqueue_many(pg_dsn, count)
    with smtp_server() as srv:
        config = write_config(tmp_path, pg_dsn, srv.port)
        store = open_store(pg_dsn)
        kills = 0
        try:
            with fleet(config, 4) as workers:
                while await store.count_pending() > 0 and kills < 40:
                    await asyncio.sleep(2.0)
                    victim = next(p for p in workers.procs if p.poll() is None)
                    victim.send_signal(signal.SIGKILL)
                    victim.wait()
                    kills += 1
                    workers.start()
                await wait_until_delivered(store, timeout=300)
            duplicates = [i for i, n in received_ids(srv).items() if n > 1]
            explained = 0
            for message_id in duplicates:
                n = int(message_id.split("@")[0].lstrip("<"))
                rows = await store.list_messages(MessageFilter(recipient=f"user{n}@example.org"))
                attempts = [d for m in rows for d in (await store.get(m.id)).dispatches]
                explained += any(d.reclaimed_from for d in attempts)
        finally:
            await store.close()
    ids = received_ids(srv)
    assert kills >= 2
    assert len(ids) == count  # nothing lost
    assert explained == len(duplicates)  # every duplicate follows a takeover on record
    # Only what the server accepted in the instant before each kill (sends in flight, and
    # hand-offs whose status write had not happened yet) goes out twice.
    assert len(duplicates) < count // 10, f"{len(duplicates)} duplicates after {kills} kills"
    print(f"{kills} kills, {len(duplicates)} duplicates, each after a takeover on record")


async def test_smtp_server_gone_for_30_seconds(pg_dsn: str, tmp_path: Path) -> None:
    count = 1000
    await enqueue_many(pg_dsn, count)
    port = free_port()
    store = open_store(pg_dsn)
    try:
        config = write_config(tmp_path, pg_dsn, port)
        with fleet(config, 2):
            with smtp_server(port=port) as first:
                await eventually(lambda: len(first.rec.messages) >= 100, timeout=60)
            await asyncio.sleep(30)  # nothing listens now
            with smtp_server(port=port) as second:
                await wait_until_delivered(store, timeout=120)
        failed_attempts = 0
        for message in await store.list_messages(MessageFilter(limit=count)):
            full = await store.get(message.id)
            assert full.status is Status.SENT
            failed_attempts += sum(1 for d in full.dispatches if d.error is not None)
            if len(full.dispatches) > 2:
                times = sorted(d.created_at for d in full.dispatches)
                gaps = [(b - a).total_seconds() for a, b in itertools.pairwise(times)]
                assert max(gaps) >= 1.0  # backoff between attempts, not a hot loop
    finally:
        await store.close()
    ids = Counter(m.message_id for m in first.rec.messages + second.rec.messages)
    assert len(ids) == count
    assert failed_attempts > 0


@contextmanager
def throwaway_cluster() -> Iterator[tuple[str, Path]]:
    """A PostgreSQL cluster of our own (initdb/pg_ctl as the postgres user): restartable."""
    bindir = sorted(Path("/usr/lib/postgresql").glob("*/bin"))[-1]
    folder = Path(tempfile.mkdtemp(prefix="postroom-pg-", dir="/tmp"))
    data = folder / "data"
    port = free_port()
    shutil.chown(folder, "postgres", "postgres")
    as_pg = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []

    def pg(*args: str) -> None:
        subprocess.run(
            [*as_pg, *args],
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            timeout=120,
        )

    pg(str(bindir / "initdb"), "-D", str(data), "-A", "trust", "-U", "postgres")
    ctl = [
        str(bindir / "pg_ctl"),
        "-D",
        str(data),
        "-l",
        str(folder / "log"),
        "-w",
        "-o",
        f"-p {port} -k {folder} -c listen_addresses=127.0.0.1",
    ]
    pg(*ctl, "start")
    try:
        yield f"postgresql://postgres@127.0.0.1:{port}/postgres", folder
    finally:
        subprocess.run(
            [*as_pg, *ctl[:3], "-m", "immediate", "stop"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        shutil.rmtree(folder, ignore_errors=True)


def pg_restart(folder: Path) -> None:
    """Restart the throwaway cluster (fast: every connection is cut)."""
    as_pg = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    bindir = sorted(Path("/usr/lib/postgresql").glob("*/bin"))[-1]
    pg_ctl = [str(bindir / "pg_ctl"), "-D", str(folder / "data"), "-l", str(folder / "log")]
    # The new server inherits pg_ctl's output: no pipes, or this would wait for it forever.
    subprocess.run(
        [*as_pg, *pg_ctl, "-w", "-m", "fast", "restart"],
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        timeout=120,
    )


async def test_workers_survive_a_postgres_restart(tmp_path: Path) -> None:
    if shutil.which("runuser") is None and os.geteuid() == 0:
        pytest.fail("runuser is needed to start a PostgreSQL cluster as root")
    count = 3000
    with throwaway_cluster() as (dsn, folder), smtp_server() as srv:
        await enqueue_many(dsn, count)
        config = write_config(tmp_path, dsn, srv.port)
        with fleet(config, 2):
            await eventually(lambda: len(srv.rec.messages) >= 300, timeout=60)
            pg_restart(folder)
            store = open_store(dsn)
            try:
                await wait_until_delivered(store, timeout=180)
                sent = (await store.count_by_status())["sent"]
            finally:
                await store.close()
    assert len(received_ids(srv)) == count
    assert sent == count


async def test_a_rate_limit_holds_across_four_workers(pg_dsn: str, tmp_path: Path) -> None:
    count, limit, per = 24, 6, 2.0
    await enqueue_many(pg_dsn, count)
    with smtp_server() as srv:
        extra = f"  rate_limits: [{{count: {limit}, per: {per}s}}]\n"
        config = write_config(tmp_path, pg_dsn, srv.port, extra=extra)
        store = open_store(pg_dsn)
        try:
            with fleet(config, 4):
                await wait_until_delivered(store, timeout=120)
            waited = await store.list_messages(MessageFilter(limit=count))
        finally:
            await store.close()
    times = sorted(m.received_at for m in srv.rec.messages)
    assert len(times) == count
    for i, start in enumerate(times):
        in_window = [t for t in times[i:] if t < start + per - 0.05]
        assert len(in_window) <= limit, f"{len(in_window)} hand-offs within {per}s"
    assert all(m.status is Status.SENT and m.send_count == 1 for m in waited)
    assert times[-1] - times[0] >= (count // limit - 1) * per - 0.5
