"""Real processes: a worker killed with SIGKILL loses nothing and sends nothing twice; SIGTERM
finishes what is in flight; an acknowledged message survives a kill -9 of the enqueuer."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

from postroom.config import load_settings
from postroom.intake import SendRequest, enqueue
from postroom.models import Status
from postroom.store import Store, open_store
from postroom.worker import Worker

from procs import POSTROOM, clean_env
from smtp_servers import smtp_server


def write_config(tmp_path: Path, port: int, *, lease: str = "1s") -> Path:
    config = tmp_path / "postroom.yaml"
    config.write_text(
        textwrap.dedent(f"""\
            dsn: sqlite:///{tmp_path / "postroom.db"}
            courier:
              smtp:
                connection_uri: smtp://127.0.0.1:{port}/?disable_starttls=true
                from_address: no-reply@example.org
              retry: {{initial: 50ms, max: 100ms}}
              worker: {{concurrency: 2, lease: {lease}}}
            """)
    )
    return config


def start_worker(config: Path) -> subprocess.Popen[bytes]:
    """Start ``postroom worker``; its output goes to worker.log beside the config."""
    env = clean_env()
    with open(config.parent / "worker.log", "ab") as log:
        return subprocess.Popen(
            [*POSTROOM, "worker", "--config", str(config)],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )


async def wait_for_status(store: Store, message_id: str, status: Status, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if (await store.get(message_id)).status is status:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"message never reached {status.value}")


async def test_a_worker_killed_after_claiming_loses_nothing_and_sends_once(
    tmp_path: Path,
) -> None:
    # The first session stalls at MAIL FROM, so the first worker holds the message when it
    # is killed; the second session (the second worker's) goes through.
    faults = {"MAIL": lambda rec, n: "STALL" if n == 1 else None}
    with smtp_server(faults=faults) as srv:
        config = write_config(tmp_path, srv.port, lease="1s")
        settings = load_settings(config, environ={}).settings
        store = open_store(settings.dsn)
        await store.migrate()
        try:
            [(message, _)] = await enqueue(
                store, settings, [SendRequest(to="you@example.org", template_type="test")]
            )
            proc = start_worker(config)
            try:
                await wait_for_status(store, message.id, Status.PROCESSING, timeout=20)
                await asyncio.sleep(0.5)  # it is now waiting on the stalled MAIL FROM
            finally:
                proc.send_signal(signal.SIGKILL)
                proc.wait()
            claimed = await store.get(message.id)
            assert claimed.status is Status.PROCESSING
            assert srv.rec.messages == []
            # Another worker picks it up once the lease has run out.
            await Worker(store, settings).run(drain=True, max_wait=10)
            done = await store.get(message.id)
        finally:
            await store.close()
    assert done.status is Status.SENT
    assert done.send_count == 1
    assert len(srv.rec.messages) == 1


async def test_sigterm_finishes_the_send_in_flight(tmp_path: Path) -> None:
    data_started = threading.Event()
    faults = {"DATA": lambda rec, n: (data_started.set(), time.sleep(1.0), None)[2]}
    with smtp_server(faults=faults) as srv:
        config = write_config(tmp_path, srv.port, lease="30s")
        settings = load_settings(config, environ={}).settings
        store = open_store(settings.dsn)
        await store.migrate()
        try:
            [(message, _)] = await enqueue(
                store, settings, [SendRequest(to="you@example.org", template_type="test")]
            )
            proc = start_worker(config)
            # SIGTERM while the server is inside the (slow) DATA of this very message.
            assert await asyncio.to_thread(data_started.wait, 20), "DATA never started"
            proc.send_signal(signal.SIGTERM)
            code = await asyncio.to_thread(proc.wait, 15)
            done = await store.get(message.id)
        finally:
            await store.close()
    assert code == 0, (tmp_path / "worker.log").read_text()
    assert done.status is Status.SENT
    assert len(srv.rec.messages) == 1


def test_an_acknowledged_message_survives_kill_9(tmp_path: Path) -> None:
    dsn = f"sqlite:///{tmp_path / 'postroom.db'}"
    script = textwrap.dedent(f"""\
        import asyncio, os, signal, sys
        from postroom.config import Settings
        from postroom.intake import SendRequest, enqueue
        from postroom.store import open_store

        async def main():
            settings = Settings.model_validate({{"dsn": {dsn!r}}})
            store = open_store(settings.dsn)
            await store.migrate()
            [(message, _)] = await enqueue(
                store, settings, [SendRequest(to="you@example.org", template_type="test")]
            )
            sys.stdout.write(message.id + "\\n")
            sys.stdout.flush()
            os.kill(os.getpid(), signal.SIGKILL)  # no close, no checkpoint, no goodbye

        asyncio.run(main())
        """)
    proc = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    message_id = proc.stdout.strip()

    async def check() -> Status:
        store = open_store(dsn)
        try:
            return (await store.get(message_id)).status
        finally:
            await store.close()

    assert asyncio.run(check()) is Status.QUEUED
