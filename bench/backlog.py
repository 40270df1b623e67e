"""Backlog: the worker's cost per message with 1,000,000 messages queued against 10,000, and
its resident memory. Claims walk an index and stop at their limit, so a deep queue should
cost no more per message (target: within 1.2x) and memory should stay under 200 MB.

The queue is filled with bulk inserts (not through intake: that is measured elsewhere), then
``postroom worker`` delivers to the sink until K messages are sent.

Usage: python bench/backlog.py [--deep 1000000] [--shallow 10000] [--sample 5000]
"""

from __future__ import annotations

import argparse
import os
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sinks import sink


def fill(db: Path, count: int) -> None:
    """Migrate with Postroom, then insert ``count`` queued messages directly."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("COURIER_", "POSTROOM_"))}
    env["DSN"] = f"sqlite:///{db}"
    subprocess.run(
        [sys.executable, "-m", "postroom.cli", "migrate"],
        env=env,
        check=True,
        stdout=subprocess.DEVNULL,
    )
    base = datetime.now(UTC) - timedelta(hours=1)
    with sqlite3.connect(db) as conn:
        conn.execute("PRAGMA synchronous=OFF")
        for start in range(0, count, 20_000):
            rows = []
            for n in range(start, min(count, start + 20_000)):
                at = (base + timedelta(microseconds=n)).strftime("%Y-%m-%d %H:%M:%S.%f")
                mime = (
                    f"From: n@example.org\r\nTo: u{n}@example.org\r\nSubject: c\r\n"
                    f"Message-ID: <{n}@backlog>\r\n\r\ncode {n:06d}\r\n"
                ).encode()
                rows.append(
                    (
                        str(uuid.uuid4()),
                        "default",
                        "queued",
                        "email",
                        f"u{n}@example.org",
                        "stub",
                        "{}",
                        "c",
                        "b",
                        None,
                        mime,
                        0,
                        6,
                        None,
                        None,
                        at,
                        at,
                        at,
                        None,
                        None,
                        None,
                        None,
                        None,
                        None,
                    )
                )
            conn.executemany(
                "INSERT INTO messages (id, tenant, status, type, recipient, template_type, "
                "template_data, subject, body, html_body, mime, send_count, max_attempts, "
                "idempotency_key, request_hash, created_at, updated_at, next_attempt_at, "
                "expires_at, waiting_for, last_error, lease_owner, lease_until, reclaimed_from) "
                "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                rows,
            )
        conn.execute("ANALYZE")


def sent(db: Path) -> int:
    with sqlite3.connect(db) as conn:
        return int(conn.execute("SELECT count(*) FROM messages WHERE status='sent'").fetchone()[0])


def run(count: int, sample: int, port: int) -> tuple[float, float]:
    """Seconds per message for the first ``sample`` deliveries, and the worker's peak RSS MB."""
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "backlog.db"
        fill(db, count)
        env = {k: v for k, v in os.environ.items() if not k.startswith(("COURIER_", "POSTROOM_"))}
        env.update(
            DSN=f"sqlite:///{db}",
            POSTROOM_LOG_LEVEL="WARNING",
            COURIER_SMTP_CONNECTION_URI=f"smtp://127.0.0.1:{port}/?disable_starttls=true",
        )
        proc = subprocess.Popen(
            [sys.executable, "-m", "postroom.cli", "worker"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        while sent(db) == 0:  # started and delivering
            time.sleep(0.05)
        start, first = time.perf_counter(), sent(db)
        while sent(db) < first + sample:
            time.sleep(0.1)
        elapsed = time.perf_counter() - start
        done = sent(db) - first
        proc.send_signal(signal.SIGTERM)
        _pid, _status, usage = os.wait4(proc.pid, 0)
    return elapsed / done, usage.ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--deep", type=int, default=1_000_000)
    parser.add_argument("--shallow", type=int, default=10_000)
    parser.add_argument("--sample", type=int, default=5000)
    args = parser.parse_args()
    with sink() as (port, what):
        print(f"sink: {what}; sample: {args.sample} deliveries")
        shallow, rss_s = run(args.shallow, args.sample, port)
        print(
            f"{args.shallow:>9} queued: {shallow * 1000:.3f} ms/message, worker RSS {rss_s:.0f} MB"
        )
        deep, rss_d = run(args.deep, args.sample, port)
        print(f"{args.deep:>9} queued: {deep * 1000:.3f} ms/message, worker RSS {rss_d:.0f} MB")
        print(f"deep / shallow cost: {deep / shallow:.2f}")


if __name__ == "__main__":
    main()
