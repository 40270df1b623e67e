"""Intake throughput and latency: ``POST /admin/courier/messages`` (admin token) and
``POST /intake/ory`` (Ory's payload with a tenant's intake token) against ``postroom serve`` on
SQLite, beside ``GET /health/alive`` measured in the same run with the same clients.

Prints requests per second and p50/p99 latency for each at full load, the ratio of the enqueue
and health throughputs, and the enqueue latency at half the measured peak rate (an open-loop
load). The server runs with ``--no-worker`` so that only intake is measured.

``--baseline-src DIR`` first measures a server importing Postroom from another source tree
(e.g. ``git archive`` of an earlier commit, its ``src`` folder), then this one, in one run.

Usage: python bench/intake.py [--requests N] [--clients C] [--baseline-src DIR]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import httpx

TOKEN = "bench-admin-token-0123456789abcdef"
INTAKE_TOKEN = "bench-intake-token-0123456789abcdef"


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def closed_loop(
    base: str, make: Callable[[httpx.AsyncClient, int], object], total: int, clients: int
) -> tuple[float, list[float]]:
    """``clients`` concurrent clients, each sending requests back to back."""
    latencies: list[float] = []
    counter = iter(range(total))
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)

    async def client(http: httpx.AsyncClient) -> None:
        for n in counter:
            start = time.perf_counter()
            response = await make(http, n)  # type: ignore[misc]
            latencies.append(time.perf_counter() - start)
            assert response.status_code < 300, response.text

    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=30) as http:
        start = time.perf_counter()
        await asyncio.gather(*(client(http) for _ in range(clients)))
        elapsed = time.perf_counter() - start
    return total / elapsed, latencies


async def open_loop(base: str, rate: float, total: int) -> list[float]:
    """Requests started at a fixed rate, whatever the answers do."""
    latencies: list[float] = []
    async with httpx.AsyncClient(base_url=base, timeout=30) as http:

        async def one(n: int) -> None:
            start = time.perf_counter()
            response = await enqueue(http, n)
            latencies.append(time.perf_counter() - start)
            assert response.status_code == 202

        tasks = []
        begin = time.perf_counter()
        for n in range(total):
            delay = begin + n / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(1_000_000 + n)))
        await asyncio.gather(*tasks)
    return latencies


async def enqueue(http: httpx.AsyncClient, n: int) -> httpx.Response:
    return await http.post(
        "/admin/courier/messages",
        json={
            "recipient": f"user{n}@example.org",
            "template_type": "login_code_valid",
            "template_data": {"login_code": f"{n:06d}"},
        },
        headers={"Authorization": f"Bearer {TOKEN}"},
    )


async def ory(http: httpx.AsyncClient, n: int) -> httpx.Response:
    return await http.post(
        "/intake/ory",
        json={
            "recipient": f"ory{n}@example.org",
            "template_type": "login_code_valid",
            "to": f"ory{n}@example.org",
            "login_code": f"{n:06d}",
            "recovery_code": None,
            "recovery_url": None,
            "verification_url": None,
            "verification_code": None,
            "registration_code": None,
            "subject": None,
            "body": None,
        },
        headers={"Authorization": f"Bearer {INTAKE_TOKEN}"},
    )


async def alive(http: httpx.AsyncClient, n: int) -> httpx.Response:
    return await http.get("/health/alive")


def line(name: str, rate: float, latencies: list[float]) -> str:
    return (
        f"{name:<28} {rate:8.0f} req/s   p50 {percentile(latencies, 0.5) * 1000:6.1f} ms"
        f"   p99 {percentile(latencies, 0.99) * 1000:6.1f} ms"
    )


async def measure(base: str, total: int, clients: int) -> None:
    await closed_loop(base, alive, 200, clients)  # warm up
    health_rate, health_lat = await closed_loop(base, alive, total, clients)
    enqueue_rate, enqueue_lat = await closed_loop(base, enqueue, total, clients)
    ory_rate, ory_lat = await closed_loop(base, ory, total, clients)
    half = await open_loop(base, enqueue_rate / 2, min(total, int(enqueue_rate * 5)))
    print(f"requests: {total} per phase, clients: {clients}")
    print(line("GET /health/alive", health_rate, health_lat))
    print(line("POST /admin/courier/messages", enqueue_rate, enqueue_lat))
    print(line("POST /intake/ory (tenant)", ory_rate, ory_lat))
    print(f"enqueue / health throughput: {enqueue_rate / health_rate:.2f}")
    print(
        f"at half the peak ({enqueue_rate / 2:.0f} req/s, open loop): "
        f"p50 {percentile(half, 0.5) * 1000:.1f} ms, p99 {percentile(half, 0.99) * 1000:.1f} ms, "
        f"mean {statistics.mean(half) * 1000:.1f} ms"
    )


def run_server(args: argparse.Namespace, src: str | None) -> None:
    """Start ``postroom serve`` (importing Postroom from ``src`` when given), measure, stop."""
    port = free_port()
    with tempfile.TemporaryDirectory() as tmp:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("COURIER_", "POSTROOM_"))}
        env.update(SERVE_ADMIN_TOKEN=TOKEN, DSN=f"sqlite:///{Path(tmp) / 'bench.db'}")
        if src is not None:
            env["PYTHONPATH"] = src
        (Path(tmp) / "postroom.yaml").write_text(
            f"courier:\n  intake_tokens: [{INTAKE_TOKEN}]\n", encoding="utf-8"
        )
        server = subprocess.Popen(
            [sys.executable, "-m", "postroom.cli", "serve", "--no-worker", "--port", str(port)],
            env=env,
            cwd=tmp,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            base = f"http://127.0.0.1:{port}"
            deadline = time.monotonic() + 30
            while True:
                try:
                    httpx.get(f"{base}/health/alive", timeout=1)
                    break
                except httpx.TransportError:
                    if time.monotonic() > deadline or server.poll() is not None:
                        raise SystemExit("the server did not start") from None
                    time.sleep(0.1)
            asyncio.run(measure(base, args.requests, args.clients))
        finally:
            server.terminate()
            server.wait(timeout=30)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument(
        "--baseline-src",
        metavar="DIR",
        help="also measure a server importing Postroom from DIR (its src folder), first",
    )
    args = parser.parse_args()
    if args.baseline_src:
        print(f"== baseline: Postroom from {args.baseline_src}")
        run_server(args, str(Path(args.baseline_src).resolve()))
        print("== this tree")
    run_server(args, None)


if __name__ == "__main__":
    main()
