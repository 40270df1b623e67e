"""Latency: from the enqueue's acknowledgement (HTTP 202) to the SMTP sink receiving the
message, with an idle worker, one enqueue every 100 ms.

SQLite: ``postroom serve`` with its in-process worker (woken in-process). PostgreSQL:
``postroom serve --no-worker`` plus a separate ``postroom worker`` process (woken by
LISTEN/NOTIFY). Prints p50, p99 and max for each.

Usage: python bench/latency.py [--messages 200] [--interval 0.1] [--backend sqlite|postgres|both]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import httpx
from aiosmtpd.controller import Controller

from sinks import free_port, percentile

TOKEN = "bench-admin-token-0123456789abcdef"
PG_DSN = os.environ.get("POSTROOM_TEST_PG_DSN", "postgresql://postgres@127.0.0.1:5432/test")


class TimingSink:
    """Records when each recipient's message arrived (monotonic clock, shared by processes)."""

    def __init__(self) -> None:
        self.arrived: dict[str, float] = {}
        self.event = threading.Condition()

    async def handle_DATA(self, server: object, session: object, envelope: object) -> str:
        now = time.monotonic()
        with self.event:
            for rcpt in envelope.rcpt_tos:  # type: ignore[attr-defined]
                self.arrived[rcpt] = now
            self.event.notify_all()
        return "250 OK"

    def wait_for(self, rcpt: str, timeout: float) -> float:
        with self.event:
            self.event.wait_for(lambda: rcpt in self.arrived, timeout=timeout)
            return self.arrived[rcpt]


def measure(backend: str, count: int, interval: float) -> list[float]:
    sink = TimingSink()
    smtp_port = free_port()
    controller = Controller(sink, hostname="127.0.0.1", port=smtp_port)
    controller.start()
    procs: list[subprocess.Popen[bytes]] = []
    dbname = f"postroom_lat_{uuid.uuid4().hex[:8]}"
    try:
        with tempfile.TemporaryDirectory() as tmp:
            if backend == "postgres":
                import psycopg

                with psycopg.connect(PG_DSN, autocommit=True) as conn:
                    conn.execute(f'CREATE DATABASE "{dbname}"')
                dsn = PG_DSN.rsplit("/", 1)[0] + f"/{dbname}"
            else:
                dsn = f"sqlite:///{Path(tmp) / 'lat.db'}"
            env = {
                k: v for k, v in os.environ.items() if not k.startswith(("COURIER_", "POSTROOM_"))
            }
            env.update(
                DSN=dsn,
                SERVE_ADMIN_TOKEN=TOKEN,
                POSTROOM_LOG_LEVEL="WARNING",
                COURIER_SMTP_CONNECTION_URI=f"smtp://127.0.0.1:{smtp_port}/?disable_starttls=true",
            )
            port = free_port()
            serve = [sys.executable, "-m", "postroom.cli", "serve", "--port", str(port)]
            if backend == "postgres":
                serve.append("--no-worker")
            procs.append(subprocess.Popen(serve, env=env, cwd=tmp, stderr=subprocess.DEVNULL))
            base = f"http://127.0.0.1:{port}"
            deadline = time.monotonic() + 30
            while True:
                try:
                    httpx.get(f"{base}/health/ready", timeout=1).raise_for_status()
                    break
                except httpx.HTTPError:
                    assert time.monotonic() < deadline, "serve did not start"
                    time.sleep(0.1)
            if backend == "postgres":
                worker = [sys.executable, "-m", "postroom.cli", "worker"]
                procs.append(subprocess.Popen(worker, env=env, cwd=tmp, stderr=subprocess.DEVNULL))
                time.sleep(2)  # let it start and go idle
            latencies: list[float] = []
            headers = {"Authorization": f"Bearer {TOKEN}"}
            with httpx.Client(base_url=base, headers=headers) as http:
                for n in range(count):
                    rcpt = f"user{n}@example.org"
                    body = {
                        "recipient": rcpt,
                        "template_type": "login_code_valid",
                        "template_data": {"login_code": f"{n:06d}"},
                    }
                    response = http.post("/admin/courier/messages", json=body)
                    acked = time.monotonic()
                    assert response.status_code == 202, response.text
                    latencies.append(sink.wait_for(rcpt, timeout=10) - acked)
                    time.sleep(interval)
    finally:
        for proc in procs:
            proc.terminate()
            proc.wait(timeout=30)
        controller.stop()
        if backend == "postgres":
            import psycopg

            with psycopg.connect(PG_DSN, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{dbname}" WITH (FORCE)')
    return latencies


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--messages", type=int, default=200)
    parser.add_argument("--interval", type=float, default=0.1)
    parser.add_argument("--backend", choices=["sqlite", "postgres", "both"], default="both")
    args = parser.parse_args()
    backends = ["sqlite", "postgres"] if args.backend == "both" else [args.backend]
    for backend in backends:
        lat = [x * 1000 for x in measure(backend, args.messages, args.interval)]
        print(
            f"{backend:<8} enqueue ack -> sink: p50 {percentile(lat, 0.5):6.1f} ms  "
            f"p99 {percentile(lat, 0.99):6.1f} ms  max {max(lat):6.1f} ms  (n={len(lat)})"
        )


if __name__ == "__main__":
    main()
