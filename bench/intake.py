"""Intake throughput and latency: ``POST /admin/courier/messages`` (admin token) and
``POST /intake/ory`` (Ory's payload with a tenant's intake token) against ``postroom serve`` on
SQLite, beside ``GET /health/alive`` measured in the same run with the same clients.

Prints requests per second and p50/p99 latency for each at full load, the ratio of the enqueue
and health throughputs, and the enqueue latency at half the measured peak rate (an open-loop
load). The server runs with ``--no-worker`` so that only intake is measured. Two more servers sign
with DKIM (an RSA-2048 and an Ed25519 key); the servers are measured in turn, round after round,
and the cost of signing is each signing server's median rate against the unsigned one's.

``--baseline-src DIR`` also measures an unsigned server importing Postroom from another source
tree (e.g. ``git archive`` of an earlier commit, its ``src`` folder), in the same rounds.

Usage: python bench/intake.py [--requests N] [--clients C] [--rounds R] [--no-dkim]
       [--baseline-src DIR]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from tempfile import TemporaryDirectory

import httpx

from sinks import closed_loop, free_port, line, percentile

TOKEN = "bench-admin-token-0123456789abcdef"
INTAKE_TOKEN = "bench-intake-token-0123456789abcdef"


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


async def measure(bases: dict[str, str], total: int, clients: int, rounds: int) -> None:
    """Every server in turn, ``rounds`` times (so that a busy machine weighs on each alike),
    then the open-loop latency of each at half its median peak."""
    per_round = max(total // rounds, clients)
    health: dict[str, list[float]] = {name: [] for name in bases}
    rates: dict[str, list[float]] = {name: [] for name in bases}
    ory_rates: dict[str, list[float]] = {name: [] for name in bases}
    health_lat: dict[str, list[float]] = {name: [] for name in bases}
    enqueue_lat: dict[str, list[float]] = {name: [] for name in bases}
    ory_lat: dict[str, list[float]] = {name: [] for name in bases}
    cpu: dict[str, float] = {name: 0.0 for name in bases}
    for base in bases.values():
        await closed_loop(base, alive, 200, clients)  # warm up
    for round_ in range(rounds):
        for name, base in bases.items():
            rate, latencies = await closed_loop(base, alive, per_round, clients)
            health[name].append(rate)
            health_lat[name] += latencies
            offset = round_ * per_round  # a new recipient each time: no folded duplicate
            before = cpu_seconds(PIDS[base])
            rate, latencies = await closed_loop(base, enqueue, per_round, clients, offset)
            cpu[name] += cpu_seconds(PIDS[base]) - before
            rates[name].append(rate)
            enqueue_lat[name] += latencies
            rate, latencies = await closed_loop(base, ory, per_round, clients, offset)
            ory_rates[name].append(rate)
            ory_lat[name] += latencies
    print(f"requests: {per_round} per phase, {rounds} rounds, clients: {clients}")
    for name, base in bases.items():
        peak = statistics.median(rates[name])
        half = await open_loop(base, peak / 2, min(total, int(peak * 5)))
        print(f"\n== {name}")
        print(line("GET /health/alive", statistics.median(health[name]), health_lat[name]))
        print(line("POST /admin/courier/messages", peak, enqueue_lat[name]))
        print(line("POST /intake/ory (tenant)", statistics.median(ory_rates[name]), ory_lat[name]))
        print(f"enqueue / health throughput: {peak / statistics.median(health[name]):.2f}")
        print(
            f"at half the peak ({peak / 2:.0f} req/s, open loop): "
            f"p50 {percentile(half, 0.5) * 1000:.1f} ms, p99 {percentile(half, 0.99) * 1000:.1f} "
            f"ms, mean {statistics.mean(half) * 1000:.1f} ms"
        )
    unsigned = statistics.median(rates[PLAIN])
    unsigned_cpu = cpu[PLAIN] / (per_round * rounds)
    print()
    print(
        "server CPU per enqueue request (utime + stime of the serve process, every thread; "
        "steadier than req/s on a busy machine):"
    )
    for name in bases:
        per_request = cpu[name] / (per_round * rounds)
        print(f"  {name:<36} {per_request * 1000:6.2f} ms")
    for name in bases:
        if name.startswith(SIGNED):
            rate = statistics.median(rates[name])
            per_request = cpu[name] / (per_round * rounds)
            print(
                f"signing cost, {name}: CPU {per_request / unsigned_cpu - 1:+.1%} per request, "
                f"throughput {rate / unsigned - 1:+.1%} ({rate:.0f} against {unsigned:.0f} "
                "req/s); the budget is 15%"
            )


def cpu_seconds(pid: int) -> float:
    """User and system CPU time of process ``pid`` so far, every thread (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


PLAIN = "without DKIM signing"
SIGNED = "DKIM signing with "
PIDS: dict[str, int] = {}  # base URL -> the serve process


@contextmanager
def server(tmp: str, src: str | None = None, **extra_env: str) -> Iterator[str]:
    """``postroom serve --no-worker`` on a fresh database in ``tmp`` (importing Postroom from
    ``src`` when given); yield its base URL."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("COURIER_", "POSTROOM_"))}
    env.update(
        SERVE_ADMIN_TOKEN=TOKEN,
        DSN=f"sqlite:///{Path(tmp) / 'bench.db'}",
        COURIER_SMTP_FROM_ADDRESS="no-reply@example.org",
        **extra_env,
    )
    if src is not None:
        env["PYTHONPATH"] = src
    (Path(tmp) / "postroom.yaml").write_text(
        f"courier:\n  intake_tokens: [{INTAKE_TOKEN}]\n", encoding="utf-8"
    )
    if "COURIER_DKIM_PRIVATE_KEY_PATH" in env:
        write_key(Path(env["COURIER_DKIM_PRIVATE_KEY_PATH"]), env["COURIER_DKIM_ALGORITHM"])
    process = subprocess.Popen(
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
                if time.monotonic() > deadline or process.poll() is not None:
                    raise SystemExit("the server did not start") from None
                time.sleep(0.1)
        PIDS[base] = process.pid
        yield base
    finally:
        process.terminate()
        process.wait(timeout=30)


def write_key(path: Path, algorithm: str) -> None:
    from postroom.deliverability.dkim import generate_key, private_pem

    path.write_text(private_pem(generate_key(algorithm)))  # type: ignore[arg-type]


def dkim_env(algorithm: str, tmp: str) -> dict[str, str]:
    return {
        "COURIER_DKIM_DOMAIN": "example.org",
        "COURIER_DKIM_SELECTOR": "bench",
        "COURIER_DKIM_ALGORITHM": algorithm,
        "COURIER_DKIM_PRIVATE_KEY_PATH": str(Path(tmp) / "dkim.pem"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--no-dkim", action="store_true", help="skip the servers that sign")
    parser.add_argument(
        "--baseline-src",
        metavar="DIR",
        help="also measure an unsigned server importing Postroom from DIR (its src folder)",
    )
    args = parser.parse_args()
    algorithms = () if args.no_dkim else ("rsa-sha256", "ed25519-sha256")
    with ExitStack() as stack:
        bases: dict[str, str] = {}
        if args.baseline_src:
            src = str(Path(args.baseline_src).resolve())
            tmp = stack.enter_context(TemporaryDirectory())
            bases[f"baseline: Postroom from {args.baseline_src}"] = stack.enter_context(
                server(tmp, src)
            )
        bases[PLAIN] = stack.enter_context(server(stack.enter_context(TemporaryDirectory())))
        for algorithm in algorithms:
            tmp = stack.enter_context(TemporaryDirectory())
            name = f"{SIGNED}{algorithm}"
            bases[name] = stack.enter_context(server(tmp, **dkim_env(algorithm, tmp)))
        asyncio.run(measure(bases, args.requests, args.clients, args.rounds))


if __name__ == "__main__":
    main()
