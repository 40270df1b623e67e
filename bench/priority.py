"""Priority lanes: how long an urgent message (a login code) takes from enqueue to the SMTP
server with 0, 10,000 and 100,000 bulk messages queued, without and with a rate limit, beside
the same run's latency on an empty queue. Target: p95 with 100,000 queued within 1.5x of the
empty queue's; with a limit, within the next free slot.

``--plan`` instead fills a queue of 1,000,000 bulk messages on SQLite (and on PostgreSQL when
``POSTROOM_TEST_PG_DSN`` or ``--pg`` names a server) and prints the query plan and the time of
a claim, which must read one index range per lane, never sort the due rows.

A ``postroom worker`` process delivers to an aiosmtpd server in a process of its own
(bench/arrivals.py), which notes when each urgent message arrives on the machine's monotonic
clock. Bulk messages are inserted directly (intake is
measured by bench/intake.py); urgent ones go through the store's enqueue, as intake does.

Each row times 200 urgent messages 0.5 s apart (100 s a row). With 40, the p95 was the third
worst message, and a hiccup of a busy 2-core host moved it: the same code measured 1.41x to
2.10x in one afternoon. The p95 of 200 is the eleventh worst. Without a limit the worker
sends about 1,700 bulk messages a second to this server, so a row keeps its bulk queued:
every 0.2 s it queues again as many as the server received (the row prints how many were
queued at its end); otherwise 100,000 are gone in a minute, 10,000 in six seconds, and most
codes of the row would meet an empty queue.

Sending 1,700 messages a second keeps this host's processors about 70% busy: the database,
the worker and the SMTP server all share them, and each code waits a little at every process
that must wake for it. So, without a limit, the empty queue is timed once more while other
programs keep the processors as busy as the row with the most bulk did (bench/host_load.py),
and the last line compares that row with both empty queues: the idle host's, and the one on a
host as busy. Each row prints how busy the host was while its codes were timed.

Usage: python bench/priority.py [--urgent 200] [--spacing 0.5] [--sizes 0,10000,100000]
       python bench/priority.py --plan [--pg DSN [--pg-only]] [--plan-size 1000000]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import os
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from arrivals import Arrivals
from host_load import busy_share, cpu_times, foreign_load
from postroom.models import NewMessage, Priority, TemplateType
from postroom.store import open_store, utcnow
from sinks import free_port

LIMIT = "[{count: 600, per: 1m}]"  # one slot every 100 ms on average
FIELDS = (
    "id, tenant, status, type, recipient, template_type, template_data, subject, body, "
    "mime, send_count, max_attempts, created_at, updated_at, next_attempt_at, priority, "
    "folded_duplicates"
)


def fill(db: Path, count: int) -> None:
    """Create the schema, then insert ``count`` queued bulk messages in one statement."""
    asyncio.run(_migrate(f"sqlite:///{db}"))
    if not count:
        return
    sqlite_insert(db, count)
    with sqlite3.connect(db) as conn:
        conn.execute("ANALYZE")


async def sqlite_insert_beside(db: Path, count: int) -> None:
    """:func:`sqlite_insert` in a thread, beside the codes being timed."""
    await asyncio.to_thread(sqlite_insert, db, count)


def sqlite_insert(db: Path, count: int) -> None:
    """Insert ``count`` queued bulk messages, due at once, in one statement."""
    with sqlite3.connect(db, timeout=30) as conn:
        conn.execute("PRAGMA synchronous=OFF")
        conn.execute(
            "WITH RECURSIVE seq(n) AS (SELECT 0 UNION ALL SELECT n + 1 FROM seq WHERE n + 1 < ?) "
            f"INSERT INTO messages ({FIELDS}) SELECT lower(hex(randomblob(16))), 'default', "
            "'queued', 'email', 'u' || n || '@example.org', 'stub', '{}', 'news', 'news', "
            "CAST('Subject: news' || char(13, 10, 13, 10) || 'news' AS BLOB), 0, 6, "
            "datetime('now', '-5 minutes'), datetime('now', '-5 minutes'), "
            "datetime('now', '-5 minutes'), 'bulk', 0 FROM seq",
            (count,),
        )


async def _migrate(dsn: str) -> None:
    store = open_store(dsn)
    try:
        await store.migrate()
    finally:
        await store.close()


def _env(dsn: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("COURIER_", "POSTROOM_"))}
    env.update(DSN=dsn, POSTROOM_LOG_LEVEL="WARNING", **extra)
    return env


def urgent(tag: str) -> NewMessage:
    mime = f"To: jane@example.org\r\nSubject: urgent {tag}\r\n\r\nYour code\r\n".encode()
    return NewMessage(
        tenant="default",
        recipient="jane@example.org",
        template_type=TemplateType.LOGIN_CODE_VALID,
        template_data={},
        subject=f"urgent {tag}",
        body="Your code",
        html_body=None,
        mime=mime,
        priority=Priority.URGENT,
    )


async def keep_queued(
    server: Arrivals, sent_before: int, insert: Callable[[int], Awaitable[None]]
) -> None:
    """Every 0.2 s, queue as many bulk messages as the server has received since the row
    began: a fast sink takes 100,000 in about a minute, and the row's last codes would meet
    an empty queue. Runs until cancelled."""
    topped = sent_before
    while True:
        await asyncio.sleep(0.2)
        arrived = server.bulk_arrived()
        if arrived > topped:
            await insert(arrived - topped)
            topped = arrived


async def measure(
    dsn: str, server: Arrivals, count: int, spacing: float
) -> tuple[list[float], int]:
    """Enqueue ``count`` urgent messages ``spacing`` apart: each one's enqueue-to-server time,
    and how many bulk messages were queued after the last."""
    store = open_store(dsn)
    latencies = []
    try:
        for n in range(count + 1):  # the first warms up the worker's connection
            tag = uuid.uuid4().hex
            await store.enqueue([urgent(tag)], max_attempts=5, ttl=0)
            sent = time.monotonic()
            arrived = await asyncio.to_thread(server.wait_for, tag, 120)
            if n:
                latencies.append(arrived - sent)
            await asyncio.sleep(spacing)
        left = (await store.count_by_status()).get("queued", 0)
    finally:
        await store.close()
    return latencies, left


async def measure_queued(
    dsn: str, server: Arrivals, size: int, sent_before: int, args: argparse.Namespace
) -> tuple[list[float], int]:
    """:func:`measure` with ``size`` bulk messages kept queued throughout."""
    if not size:
        return await measure(dsn, server, args.urgent, args.spacing)
    async with contextlib.AsyncExitStack() as stack:
        insert: Callable[[int], Awaitable[None]]
        if dsn.startswith("sqlite:///"):
            db = Path(dsn.removeprefix("sqlite:///"))
            insert = functools.partial(sqlite_insert_beside, db)
        else:  # one connection for the row's top-ups, not one per top-up
            import psycopg

            conn = await psycopg.AsyncConnection.connect(dsn, autocommit=True)
            await stack.enter_async_context(conn)
            insert = functools.partial(pg_insert, conn)
        topup = asyncio.create_task(keep_queued(server, sent_before, insert))
        try:
            return await measure(dsn, server, args.urgent, args.spacing)
        finally:
            topup.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await topup


@dataclass
class Row:
    latencies: list[float]
    left: int  # bulk messages queued at the row's end
    busy: float | None  # the share of the processors' time that was busy while codes were timed

    def line(self, label: str, base_p95: float) -> str:
        p50, p95, worst = figures(self.latencies)
        busy = f"; host {self.busy:.0%} busy" if self.busy is not None else ""
        return (
            f"{label}: p50 {p50 * 1000:7.1f} ms  p95 {p95 * 1000:7.1f} ms  "
            f"max {worst * 1000:7.1f} ms  (p95 {p95 / base_p95:.2f}x the empty queue's){busy}"
        )


def scenario(
    size: int,
    limit: str | None,
    port: int,
    server: Arrivals,
    args: argparse.Namespace,
    load: float = 0.0,
) -> Row:
    """Time codes with ``size`` bulk messages kept queued; with ``load``, while every
    processor is kept that busy by another program."""
    with tempfile.TemporaryDirectory() as tmp:
        if args.pg:  # a database of its own, woken across processes by LISTEN/NOTIFY
            dsn = _own_database(args.pg)
            asyncio.run(_pg_fill(dsn, size))
        else:  # SQLite: another process's enqueue is seen at the worker's next poll
            dsn = f"sqlite:///{Path(tmp) / 'priority.db'}"
            fill(Path(tmp) / "priority.db", size)
        extra = {"COURIER_SMTP_CONNECTION_URI": f"smtp://127.0.0.1:{port}/?disable_starttls=true"}
        if limit:
            extra["COURIER_RATE_LIMITS"] = limit
        sent_before = server.bulk_arrived()
        proc = subprocess.Popen(
            [sys.executable, "-m", "postroom.cli", "worker"],
            env=_env(dsn, **extra),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            with foreign_load(load) if load else contextlib.nullcontext():
                start = cpu_times()
                latencies, left = asyncio.run(measure_queued(dsn, server, size, sent_before, args))
                return Row(latencies, left, busy_share(start, cpu_times()))
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=60)
            if args.pg:
                _drop_database(args.pg, dsn)


def figures(latencies: list[float]) -> tuple[float, float, float]:
    ordered = sorted(latencies)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return statistics.median(ordered), p95, ordered[-1]


def lanes(args: argparse.Namespace) -> None:
    port = free_port()
    server = Arrivals(port, args.answer_ms / 1000)
    try:
        for limit in (None, LIMIT):
            label = f"limit {limit}" if limit else "no limit"
            store = "PostgreSQL" if args.pg else "SQLite"
            every = f"{args.urgent} {args.spacing} s apart"
            print(f"-- {store}, {label}: urgent enqueue -> SMTP server, {every}", flush=True)
            rows: dict[int, Row] = {}
            for size in args.sizes:
                row = rows[size] = scenario(size, limit, port, server, args)
                base_p95 = figures(rows[args.sizes[0]].latencies)[1]
                left = f"; {row.left} queued at the end" if size else ""
                print(row.line(f"{size:>8} bulk queued", base_p95) + left, flush=True)
            if not limit:
                control(rows, limit, port, server, args)
    finally:
        server.stop()


def control(
    rows: dict[int, Row], limit: str | None, port: int, server: Arrivals, args: argparse.Namespace
) -> None:
    """The empty queue again, on a host kept as busy as while the most bulk was being sent,
    by a program that is not Postroom: how much of the code's extra time is the host's load,
    not the queue."""
    most = max(rows)
    idle, busiest = rows.get(0), rows[most]
    if not most or idle is None or idle.busy is None or busiest.busy is None:
        return
    load = busiest.busy - idle.busy
    row = scenario(0, limit, port, server, args, load=load)
    idle_p95, busy_p95 = figures(idle.latencies)[1], figures(row.latencies)[1]
    print(row.line(f"       0 bulk queued, {load:.0%} load of another program", idle_p95))
    print(
        f"p95 with {most:,} bulk queued: {figures(busiest.latencies)[1] / idle_p95:.2f}x the "
        f"idle host's empty queue, {figures(busiest.latencies)[1] / busy_p95:.2f}x the empty "
        "queue's on a host as busy",
        flush=True,
    )


def plan(args: argparse.Namespace) -> None:
    """The plan and time of one claim with a million bulk messages queued."""
    from sqlalchemy import create_engine, text

    from postroom.store.lane_rules import LaneClaim
    from postroom.store.lanes import claim_lanes
    from postroom.store.sql import postgres_url

    targets = []
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "plan.db"
        if not args.pg_only:
            fill(db, args.plan_size)
            targets.append(f"sqlite:///{db}")
        if args.pg:
            targets.append(args.pg)
        for server in targets:
            dsn = _own_database(server) if server.startswith("postgres") else server
            url = postgres_url(dsn) if dsn.startswith("postgres") else dsn
            if dsn.startswith("postgres"):
                asyncio.run(_pg_fill(dsn, args.plan_size))
            engine = create_engine(url)
            print(f"-- {dsn.split(':')[0]}, {args.plan_size} bulk queued")
            explain = "EXPLAIN QUERY PLAN" if dsn.startswith("sqlite") else "EXPLAIN"
            with engine.connect() as conn:
                for lane in ("urgent", "bulk"):
                    sql = (
                        f"{explain} SELECT id FROM messages WHERE status = 'queued' AND tenant = "
                        f"'default' AND priority = '{lane}' AND next_attempt_at < :now "
                        "ORDER BY next_attempt_at LIMIT 48"
                    )
                    print(f"   plan of the {lane} lane's read:")
                    now = utcnow().replace(tzinfo=None)
                    for row in conn.execute(text(sql), {"now": now}):
                        print("     ", " ".join(str(c) for c in row))
            times = []
            everything = LaneClaim(tenants={"default": 300})
            for _ in range(5):
                with engine.begin() as conn:
                    now = utcnow()
                    params = {"now": now, "worker": "bench", "until": now + timedelta(seconds=60)}
                    start = time.perf_counter()
                    rows = claim_lanes(conn, params, room=48, how=everything)
                    times.append(time.perf_counter() - start)
                    conn.rollback()  # the same rows stay queued for the next round
            print(
                f"   a claim of {len(rows)} (every lane read): first {times[0] * 1000:.1f} ms, "
                f"then median {statistics.median(times[1:]) * 1000:.1f} ms"
            )
            engine.dispose()
            if dsn != server:
                _drop_database(server, dsn)


def _own_database(server: str) -> str:
    """A new database on the PostgreSQL server ``server`` names, for this run only."""
    import psycopg

    name = f"bench_priority_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(server, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    return server.rsplit("/", 1)[0] + "/" + name


def _drop_database(server: str, dsn: str) -> None:
    import psycopg

    with psycopg.connect(server, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE {dsn.rsplit('/', 1)[1]} WITH (FORCE)")


async def _pg_fill(dsn: str, count: int) -> None:
    await _migrate(dsn)
    if not count:
        return
    import psycopg

    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
        await pg_insert(conn, count)
        await conn.execute("ANALYZE messages")


async def pg_insert(conn: Any, count: int) -> None:
    """Insert ``count`` queued bulk messages, due at once, in one statement on ``conn`` (an
    autocommit psycopg connection)."""
    await conn.execute(
        f"INSERT INTO messages ({FIELDS}) SELECT gen_random_uuid()::text, 'default', "
        "'queued', 'email', 'u' || n || '@example.org', 'stub', '{}', 'news', 'news', "
        "'news'::bytea, 0, 6, now() - interval '5 minutes' + n * interval '1 microsecond', "
        "now(), now() - interval '5 minutes' + n * interval '1 microsecond', 'bulk', 0 "
        "FROM generate_series(1, %s) AS n",
        (count,),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--urgent", type=int, default=200, help="urgent messages per row")
    parser.add_argument("--spacing", type=float, default=0.5, help="seconds between them")
    parser.add_argument("--sizes", default="0,10000,100000")
    parser.add_argument(
        "--answer-ms",
        type=float,
        default=0.0,
        help="how long the bench's SMTP server takes to answer each end-of-data",
    )
    parser.add_argument("--plan", action="store_true")
    parser.add_argument("--plan-size", type=int, default=1_000_000)
    parser.add_argument("--pg-only", action="store_true", help="with --plan: PostgreSQL only")
    parser.add_argument(
        "--pg",
        default=os.environ.get("POSTROOM_TEST_PG_DSN"),
        help="a PostgreSQL server DSN; a database of its own is created there and dropped",
    )
    args = parser.parse_args()
    args.sizes = [int(s) for s in args.sizes.split(",")]
    # Stopped with SIGTERM (kill, timeout): unwind, so the worker and the server stop too.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    if args.plan:
        plan(args)
    else:
        lanes(args)


if __name__ == "__main__":
    main()
