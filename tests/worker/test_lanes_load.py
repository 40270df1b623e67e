"""Login codes never wait behind bulk mail: real `postroom worker` processes, a real SMTP
server, thousands of bulk messages queued, and urgent messages timed from their enqueue to the
server accepting them."""

from __future__ import annotations

import asyncio
import time
from dataclasses import replace
from pathlib import Path

import pytest
from test_postgres_fleet import eventually, fleet, new_message, write_config

from postroom.models import NewMessage, Priority
from postroom.store import Budget, Store, open_store

from smtp_servers import Server, smtp_server

NO_TTL = {"default": Budget(101, 0, bulk_ttl=0)}


def tagged(n: int, priority: Priority) -> NewMessage:
    return replace(new_message(n), priority=priority)


async def fill(store: Store, count: int) -> None:
    for start in range(0, count, 1000):
        batch = [tagged(n, Priority.BULK) for n in range(start, min(count, start + 1000))]
        await store.enqueue(batch, max_attempts=101, ttl=0, budgets=NO_TTL)


def arrivals(srv: Server) -> dict[int, float]:
    """When the server accepted each message, by its number."""
    return {int(m.message_id.strip("<>").split("@")[0]): m.received_at for m in srv.rec.messages}


async def send_urgent(store: Store, n: int) -> float:
    """Enqueue urgent message ``n``; the time intake answered."""
    await store.enqueue([tagged(n, Priority.URGENT)], max_attempts=101, ttl=0)
    return time.monotonic()


URGENT = 1_000_000  # numbers of urgent messages start here


async def codes_under_a_limit(
    dsn: str, folder: Path
) -> tuple[dict[int, float], dict[int, float], float]:
    """60 a minute, 5,000 bulk queued, two workers, then one urgent message every 2 s for a
    minute: when each code was enqueued, when each message arrived, and when the codes began.
    The database is migrated already."""
    store = open_store(dsn)
    limit = "  rate_limits: [{count: 60, per: 1m}]\n"
    try:
        await fill(store, 5000)
        with smtp_server() as srv:
            config = write_config(folder, dsn, srv.port, extra=limit)
            with fleet(config, 2):
                await eventually(lambda: len(srv.rec.messages) >= 5, timeout=30)
                sent: dict[int, float] = {}
                start = time.monotonic()
                for k in range(30):
                    sent[URGENT + k] = await send_urgent(store, URGENT + k)
                    next_at = start + 2 * (k + 1)
                    await asyncio.sleep(max(0.0, next_at - time.monotonic()))  # the schedule
                await eventually(lambda: set(sent) <= set(arrivals(srv)), timeout=10)
            got = arrivals(srv)
    finally:
        await store.close()
    return sent, got, start


@pytest.mark.timeout(300)
async def test_urgent_mail_takes_the_next_free_slot_under_a_limit(
    pg_dsn: str, tmp_path: Path
) -> None:
    # SQLite and PostgreSQL at once, each with its own event loop in a thread of its own (a
    # minute of mostly waiting each; one cannot hold up the other's clock).
    dsns = {"sqlite": f"sqlite:///{tmp_path / 'limit.db'}", "postgres": pg_dsn}
    runs = []
    for name, dsn in dsns.items():
        (tmp_path / name).mkdir()
        store = open_store(dsn)  # migrations one at a time: Alembic's state is one per process
        await store.migrate()
        await store.close()
        runs.append(asyncio.to_thread(asyncio.run, codes_under_a_limit(dsn, tmp_path / name)))
    for name, (sent, got, start) in zip(dsns, await asyncio.gather(*runs), strict=True):
        late = {n: round(got[n] - t, 2) for n, t in sent.items() if got[n] - t > 2.0}
        assert not late, f"{name}: urgent messages handed over later than 2 s: {late}"
        times = sorted(got.values())
        for i, t in enumerate(times):  # never more than 60 in any 60 s window
            in_window = sum(1 for u in times[i:] if u < t + 60)
            assert in_window <= 60, f"{name}: {in_window} hand-offs within 60 s of {t}"
        bulk = [n for n in got if n < URGENT and got[n] >= start]
        assert len(bulk) >= 10, f"{name}: bulk mail stopped flowing"
        worst = max(got[n] - t for n, t in sent.items())
        print(f"{name}: urgent latency max {worst:.2f}s, {len(bulk)} bulk")


async def codes_behind_bulk(
    tmp_path: Path, *, bulk: int, delay: float, codes: int, concurrency: int = 8
) -> tuple[dict[int, float], dict[int, float]]:
    """Fill a SQLite queue with ``bulk`` messages, start one worker against a server that
    takes ``delay`` seconds per message, and once bulk flows, enqueue ``codes`` urgent
    messages one after another. The latency of each code, and when each message arrived."""
    dsn = f"sqlite:///{tmp_path / 'postroom.db'}"
    store = open_store(dsn)
    await store.migrate()
    try:
        await fill(store, bulk)
        with smtp_server(faults={"DATA": lambda _rec, _n: f"DELAY {delay}"}) as srv:
            config = write_config(tmp_path, dsn, srv.port)
            config.write_text(
                config.read_text().replace("concurrency: 8", f"concurrency: {concurrency}")
            )
            with fleet(config, 1):
                await eventually(lambda: len(srv.rec.messages) >= concurrency, timeout=60)
                sent = {}
                for k in range(codes):
                    sent[URGENT + k] = await send_urgent(store, URGENT + k)
                    await eventually(lambda k=k: URGENT + k in arrivals(srv), timeout=10)
                got = arrivals(srv)
    finally:
        await store.close()
    return {n: round(got[n] - t, 3) for n, t in sent.items()}, got


@pytest.mark.timeout(300)
async def test_urgent_mail_overtakes_50000_bulk_on_a_slow_server(tmp_path: Path) -> None:
    latency, _got = await codes_behind_bulk(tmp_path, bulk=50_000, delay=0.05, codes=5)
    assert all(v <= 0.5 for v in latency.values()), latency
    print(f"urgent latency behind 50,000 bulk: {latency}")


@pytest.mark.timeout(300)
async def test_a_code_never_waits_for_a_slow_provider_to_take_a_newsletter(
    tmp_path: Path,
) -> None:
    # Two connections, a provider that takes a second per message, 500 bulk queued: both
    # connections would be busy with bulk when a code comes, and it would wait up to a second
    # more. A worker keeps one connection free of bulk mail, so a code takes only its own
    # second.
    latency, got = await codes_behind_bulk(tmp_path, bulk=500, delay=1.0, codes=6, concurrency=2)
    assert all(v < 1.5 for v in latency.values()), f"codes waited for bulk: {latency}"
    assert len([n for n in got if n < URGENT]) >= 6, "bulk mail stopped flowing"
