"""Delivery events: what taking a provider's event webhook costs, and what the suppression
list costs intake, against ``postroom serve --no-worker`` on SQLite, each beside a baseline
measured in the same run with the same clients.

Phases (closed loop, C clients, N requests each):
- baseline: ``POST /admin/courier/messages`` (a notification) with an empty suppression list;
- the same with 100,000 suppressed addresses (none of them the recipients): the list is one
  primary-key lookup per message, so the target is within 1.1x of the baseline;
- ``POST /webhooks/sendgrid/default``, one signed bounce per request (ECDSA verify, replay
  check, store once, match), and ``/webhooks/generic/default`` (HMAC), beside the baseline.

Usage: python bench/delivery_events.py [--requests N] [--clients C] [--suppressed S]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import sqlite3
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from standardwebhooks.webhooks import Webhook

from sinks import closed_loop, free_port, line

TOKEN = "bench-admin-token-0123456789abcdef"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
SECRET = "whsec_" + base64.b64encode(b"bench-generic-secret-0123456789ab").decode()
KEY = ec.generate_private_key(ec.SECP256R1())
PUBLIC = base64.b64encode(
    KEY.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
).decode()


def notice(n: int) -> Callable[[httpx.AsyncClient, int], Awaitable[httpx.Response]]:
    async def send(http: httpx.AsyncClient, i: int) -> httpx.Response:
        return await http.post(
            "/admin/courier/messages",
            json={"recipient": f"r{n}-{i}@example.org", "subject": "Notice", "body": "Hello"},
            headers=AUTH,
        )

    return send


async def sendgrid(http: httpx.AsyncClient, i: int) -> httpx.Response:
    event = {
        "email": f"b{i}@example.net",
        "timestamp": int(time.time()),
        "event": "bounce",
        "type": "bounce",
        "sg_event_id": uuid.uuid4().hex,
        "sg_message_id": f"{uuid.uuid4().hex[:22]}.filterdrecv-1",
        "reason": "550 5.1.1 user unknown",
    }
    body = (json.dumps([event]) + "\r\n").encode()
    stamp = str(int(time.time()))
    signature = KEY.sign(stamp.encode() + body, ec.ECDSA(hashes.SHA256()))
    headers = {
        "X-Twilio-Email-Event-Webhook-Signature": base64.b64encode(signature).decode(),
        "X-Twilio-Email-Event-Webhook-Timestamp": stamp,
    }
    return await http.post("/webhooks/sendgrid/default", content=body, headers=headers)


async def generic(http: httpx.AsyncClient, i: int) -> httpx.Response:
    body = json.dumps(
        {"event": "delivered", "recipient": f"d{i}@example.net", "id": uuid.uuid4().hex}
    )
    msg_id = "msg_" + uuid.uuid4().hex
    now = datetime.now(UTC)
    headers = {
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": Webhook(SECRET).sign(msg_id, now, body),
    }
    return await http.post("/webhooks/generic/default", content=body, headers=headers)


def suppress(db: Path, count: int) -> None:
    """Fill the suppression list directly (what many bounces would leave behind)."""
    now = datetime.now(UTC).replace(tzinfo=None)
    later = now + timedelta(days=90)
    with sqlite3.connect(db) as conn:
        conn.executemany(
            "INSERT INTO suppressions (tenant, address, reason, event, created_at, expires_at) "
            "VALUES ('default', ?, 'hard bounce', 'bounced', ?, ?)",
            ((f"gone{n}@example.net", now, later) for n in range(count)),
        )


async def measure(base: str, db: Path, total: int, clients: int, suppressed: int) -> None:
    await closed_loop(base, notice(0), 200, clients)  # warm up
    base_rate, base_lat = await closed_loop(base, notice(1), total, clients)
    suppress(db, suppressed)
    big_rate, big_lat = await closed_loop(base, notice(2), total, clients)
    again_rate, again_lat = await closed_loop(base, notice(3), total, clients)
    sg_rate, sg_lat = await closed_loop(base, sendgrid, total, clients)
    gen_rate, gen_lat = await closed_loop(base, generic, total, clients)
    print(f"requests: {total} per phase, clients: {clients}")
    print(line("enqueue, empty list", base_rate, base_lat))
    print(line(f"enqueue, {suppressed:,} suppressed", big_rate, big_lat))
    print(line("enqueue, empty list (again)", again_rate, again_lat))
    print(line("SendGrid signed bounce", sg_rate, sg_lat))
    print(line("generic signed event", gen_rate, gen_lat))
    print(
        f"suppressed list / empty list throughput: {big_rate / ((base_rate + again_rate) / 2):.2f}"
    )
    print(f"SendGrid event / enqueue throughput: {sg_rate / base_rate:.2f}")
    print(f"generic event / enqueue throughput: {gen_rate / base_rate:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--suppressed", type=int, default=100_000)
    args = parser.parse_args()
    port = free_port()
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "bench.db"
        config = Path(tmp) / "postroom.yaml"
        config.write_text(
            json.dumps(
                {
                    "courier": {
                        "provider_events": {
                            "sendgrid": {"public_key": PUBLIC},
                            "generic": {"secret": SECRET},
                        }
                    }
                }
            )
        )
        env = {k: v for k, v in os.environ.items() if not k.startswith(("COURIER_", "POSTROOM_"))}
        env.update(SERVE_ADMIN_TOKEN=TOKEN, DSN=f"sqlite:///{db}", POSTROOM_CONFIG=str(config))
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
            asyncio.run(measure(base, db, args.requests, args.clients, args.suppressed))
        finally:
            server.terminate()
            server.wait(timeout=30)


if __name__ == "__main__":
    main()
