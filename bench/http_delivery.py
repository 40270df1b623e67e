"""HTTP delivery: Postroom against raw httpx, both posting to the same local HTTP sink.

The sink (uvicorn with a bare ASGI app that answers 202) runs in its own process so that it
does not share the interpreter with what is measured. Prints messages per second for:

- baseline: raw httpx, one pooled AsyncClient, ``concurrency`` requests in flight, posting the
  JSON that Postroom's default body produces for the same message;
- transport: Postroom's HttpTransport alone (build the body, then the request), with the default
  body (built natively) and with the sendgrid-http preset's Jsonnet body (child-process pool);
- deliver: Postroom's worker draining the queue (claim, render, send, record) with
  ``concurrency``, with the same two bodies;

and the cost of one Jsonnet evaluation per message: in Postroom's child-process pool, alone
and when 32 wait at once (the pool evaluates waiting messages together, which is what delivery
under load pays), against the same evaluation in-process (no isolation, no limits).

Usage: python bench/http_delivery.py [--messages N] [--concurrency C]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import socket
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path
from typing import Any

import _jsonnet
import httpx

from postroom.config import Settings
from postroom.config.http import HttpSettings
from postroom.intake import SendRequest, enqueue
from postroom.presets import get_preset
from postroom.presets.http import fill_request_config
from postroom.render.jsonnet import DEFAULT_BODY, JsonnetBody, JsonnetPool
from postroom.store import open_store
from postroom.transports.base import Envelope
from postroom.transports.http import HttpTransport, build_ctx
from postroom.worker import Worker

SINK = textwrap.dedent("""\
    import sys, uvicorn

    async def app(scope, receive, send):
        if scope["type"] != "http":
            return
        more = True
        while more:
            message = await receive()
            more = message.get("more_body", False)
        await send({"type": "http.response.start", "status": 202,
                    "headers": [(b"content-length", b"0")]})
        await send({"type": "http.response.body", "body": b""})

    uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning",
                access_log=False, http="httptools", loop="asyncio")
    """)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_port(port: int, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError("the HTTP sink did not start")


def envelope(i: int) -> Envelope:
    recipient = f"user{i}@example.org"
    return Envelope(
        message_id=f"m-{i}",
        sender="no-reply@example.org",
        recipients=(recipient,),
        data=b"",
        recipient=recipient,
        subject="Your login code",
        text=f"Your login code is {i:06d}",
        template_type="login_code_valid",
        template_data={"to": recipient, "login_code": f"{i:06d}"},
    )


async def in_flight(count: int, concurrency: int, one: Any) -> float:
    """Run ``one(i)`` for i in range(count) with ``concurrency`` in flight; messages/s."""
    queue = iter(range(count))

    async def lane() -> None:
        for i in queue:
            await one(i)

    start = time.perf_counter()
    await asyncio.gather(*(lane() for _ in range(concurrency)))
    return count / (time.perf_counter() - start)


async def baseline(url: str, count: int, concurrency: int) -> float:
    """Raw httpx: the default body's JSON, rendered in-process beforehand (not timed)."""
    bodies = [
        json.dumps(
            json.loads(
                _jsonnet.evaluate_snippet(
                    "b", DEFAULT_BODY, tla_codes={"ctx": json.dumps(build_ctx(envelope(i)))}
                )
            ),
            separators=(",", ":"),
        ).encode()
        for i in range(count)
    ]
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(limits=limits) as client:

        async def one(i: int) -> None:
            response = await client.post(
                url, content=bodies[i], headers={"Content-Type": "application/json"}
            )
            assert response.status_code == 202

        return await in_flight(count, concurrency, one)


def sendgrid_body() -> str:
    config = fill_request_config(
        get_preset("sendgrid-http"), {"api_key": "k", "from_address": "no-reply@example.org"}
    )
    body: str = config["body"]
    return body


async def transport_only(url: str, count: int, concurrency: int, body: str | None) -> float:
    settings = HttpSettings.model_validate({"request_config": {"url": url, "body": body}})
    transport = HttpTransport(settings, pool_size=concurrency)
    try:
        await transport.send(envelope(0))  # start the Jsonnet children outside the timing

        async def one(i: int) -> None:
            await transport.send(envelope(i))

        return await in_flight(count, concurrency, one)
    finally:
        await transport.close()


async def worker(
    url: str, count: int, concurrency: int, workdir: Path, body: str | None
) -> tuple[float, float]:
    settings = Settings.model_validate(
        {
            "dsn": f"sqlite:///{workdir / 'bench.db'}",
            "courier": {
                "delivery_strategy": "http",
                "http": {"request_config": {"url": url, "body": body}},
                "worker": {"concurrency": concurrency},
            },
        }
    )
    store = open_store(settings.dsn)
    await store.migrate()
    try:
        requests = [
            SendRequest(
                to=f"user{i}@example.org",
                template_type="login_code_valid",
                data={"login_code": f"{i:06d}"},
            )
            for i in range(count)
        ]
        start = time.perf_counter()
        for chunk in range(0, count, 500):
            await enqueue(store, settings, requests[chunk : chunk + 500])
        enqueue_rate = count / (time.perf_counter() - start)
        start = time.perf_counter()
        stats = await Worker(store, settings, concurrency=concurrency).run(drain=True)
        deliver_rate = count / (time.perf_counter() - start)
        assert stats.sent == count, stats
        return enqueue_rate, deliver_rate
    finally:
        await store.close()


async def jsonnet_cost(rounds: int) -> dict[str, tuple[float, float, float]]:
    """Microseconds per evaluation, per body: one at a time in the child pool (median), 32 at
    once in the child pool (batched, per message), and one at a time in-process (median)."""
    sendgrid = sendgrid_body()
    out: dict[str, tuple[float, float, float]] = {}
    pool = JsonnetPool(size=1)
    try:
        for name, source in (("default body", DEFAULT_BODY), ("sendgrid-http", sendgrid)):
            body = JsonnetBody(name, source)
            await pool.evaluate(body, build_ctx(envelope(0)))  # start the child
            pooled: list[float] = []
            local: list[float] = []
            for i in range(rounds):
                ctx = build_ctx(envelope(i))
                start = time.perf_counter()
                await pool.evaluate(body, ctx)
                pooled.append(time.perf_counter() - start)
                start = time.perf_counter()
                _jsonnet.evaluate_snippet(name, source, tla_codes={"ctx": json.dumps(ctx)})
                local.append(time.perf_counter() - start)
            ctxs = [build_ctx(envelope(i)) for i in range(32)]
            start = time.perf_counter()
            for _ in range(max(1, rounds // 32)):
                await asyncio.gather(*(pool.evaluate(body, ctx) for ctx in ctxs))
            batched = (time.perf_counter() - start) / (max(1, rounds // 32) * 32)
            out[name] = (
                statistics.median(pooled) * 1e6,
                batched * 1e6,
                statistics.median(local) * 1e6,
            )
    finally:
        await pool.close()
    return out


async def measure(url: str, count: int, concurrency: int) -> list[tuple[str, float]]:
    await baseline(url, 200, concurrency)  # warm up the sink
    rows = [
        (
            "baseline  raw httpx POST of the default body's JSON",
            await baseline(url, count, concurrency),
        )
    ]
    for label, body in (("default body", None), ("sendgrid-http Jsonnet body", sendgrid_body())):
        alone = await transport_only(url, count, concurrency, body)
        rows.append((f"transport HttpTransport.send, {label}", alone))
        with tempfile.TemporaryDirectory() as tmp:
            enqueue_rate, deliver_rate = await worker(url, count, concurrency, Path(tmp), body)
        rows.append((f"deliver   worker (claim/send/record), {label}", deliver_rate))
    rows.append(("(enqueue  intake into SQLite)", enqueue_rate))
    return rows


def main(count: int, concurrency: int) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}/v3/mail/send"
    sink = subprocess.Popen([sys.executable, "-c", SINK, str(port)])
    try:
        wait_for_port(port)
        rows = asyncio.run(measure(url, count, concurrency))
        costs = asyncio.run(jsonnet_cost(min(count, 512)))
    finally:
        sink.terminate()
        sink.wait(10)
    print(f"HTTP delivery, {count} messages, concurrency {concurrency}, local uvicorn sink")
    for label, rate in rows:
        print(f"  {label:62s} {rate:7.0f} msg/s")
    print("Jsonnet evaluation per message")
    for name, (pooled, batched, local) in costs.items():
        print(
            f"  {name:14s} child pool: alone {pooled:6.0f} us, 32 at once {batched:6.0f} us"
            f"   in-process, alone {local:6.0f} us"
        )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=8)
    args = parser.parse_args()
    main(args.messages, args.concurrency)
