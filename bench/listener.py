"""The SMTP listener: what Keycloak waits for, measured against a sink that stores nothing.

Keycloak opens a connection per email and sends it synchronously in the user's request. So
each message here is one whole session: connect, EHLO, AUTH PLAIN, MAIL, RCPT, DATA, QUIT,
from 8 concurrent clients. Timed: accept-to-250 (from the connect to the 250 after DATA),
p50 and p99, and messages per second, for

- Postroom: ``postroom serve --no-worker`` with its listener on loopback, SQLite, every
  message stored with its fsync before the 250;
- the baseline, in the same run: an aiosmtpd server that accepts any login and stores nothing.

Then AUTH on its own (one AUTH PLAIN round trip per new session): a generated password (keyed
SHA-256), and a chosen one (scrypt: the first check, then the cached ones).

Usage: python bench/listener.py [--messages N] [--clients 8]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import aiosmtplib

from postroom.config.passwords import scrypt_hash
from sinks import _wait_listening, free_port, percentile

SINK = textwrap.dedent("""\
    import sys
    from aiosmtpd.controller import Controller
    from aiosmtpd.smtp import AuthResult

    class Sink:
        async def handle_DATA(self, server, session, envelope):
            return "250 OK"

    controller = Controller(
        Sink(), hostname="127.0.0.1", port=int(sys.argv[1]), auth_require_tls=False,
        authenticator=lambda *args: AuthResult(success=True),
    )
    controller.start()
    print("ready", flush=True)
    sys.stdin.read()
    controller.stop()
    """)

GENERATED = "Yq3v0b8m1n5Zk2Lr6Tt9Wx4Cc7Hh0Ee3Aa8Ss1Dd5F"
CHOSEN = "a chosen password for keycloak"
MESSAGE = (
    "From: Keycloak <keycloak@example.org>\r\nTo: user@example.org\r\n"
    "Subject: Verify email\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=UTF-8\r\n"
    "\r\n" + "Someone has created an account with this email address.\r\n" * 30
).encode()


async def session(port: int, user: str, password: str) -> float:
    """One Keycloak-like session; the seconds from connect to the 250 after DATA."""
    start = time.perf_counter()
    client = aiosmtplib.SMTP(hostname="127.0.0.1", port=port, start_tls=False, timeout=10)
    await client.connect()
    await client.login(user, password)
    await client.sendmail("keycloak@example.org", ["user@example.org"], MESSAGE)
    took = time.perf_counter() - start
    await client.quit()
    return took


async def load(port: int, count: int, clients: int, user: str) -> tuple[list[float], float]:
    latencies: list[float] = []

    async def client(share: int) -> None:
        for _ in range(share):
            latencies.append(await session(port, user, GENERATED))

    shares = [count // clients + (i < count % clients) for i in range(clients)]
    start = time.perf_counter()
    await asyncio.gather(*(client(share) for share in shares))
    return latencies, count / (time.perf_counter() - start)


async def auth_alone(port: int, user: str, password: str, times: int) -> list[float]:
    out = []
    for _ in range(times):
        client = aiosmtplib.SMTP(hostname="127.0.0.1", port=port, start_tls=False, timeout=10)
        await client.connect()
        await client.ehlo()
        blob = base64.b64encode(f"\0{user}\0{password}".encode()).decode()
        start = time.perf_counter()
        reply = await client.execute_command(b"AUTH", b"PLAIN", blob.encode())
        out.append(time.perf_counter() - start)
        assert reply.code == 235, reply
        await client.quit()
    return out


def report(name: str, latencies: list[float], rate: float) -> None:
    print(
        f"{name:<34} p50 {percentile(latencies, 0.5) * 1000:6.1f} ms   "
        f"p99 {percentile(latencies, 0.99) * 1000:6.1f} ms   {rate:7.0f} msgs/s"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=800)
    parser.add_argument("--clients", type=int, default=8)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        smtp_port, sink_port = free_port(), free_port()
        config = Path(tmp) / "postroom.yaml"
        config.write_text(
            textwrap.dedent(f"""\
                dsn: sqlite:///{tmp}/postroom.db
                serve: {{admin_token: a-benchmark-admin-token-0123456789abc}}
                listener:
                  smtp: {{host: 127.0.0.1, port: {smtp_port}, max_connections: 1000}}
                courier:
                  delivery_strategy: outbox
                  outbox_path: {tmp}/outbox
                  listener:
                    logins:
                      - {{username: generated, password: "{GENERATED}"}}
                      - {{username: chosen, password: "{scrypt_hash(CHOSEN)}"}}
                """)
        )
        serve = subprocess.Popen(
            [sys.executable, "-m", "postroom.cli", "serve", "--no-worker",
             "--port", str(free_port()), "--config", str(config)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        sink = subprocess.Popen(
            [sys.executable, "-c", SINK, str(sink_port)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        try:
            _wait_listening(smtp_port, timeout=30)
            _wait_listening(sink_port, timeout=30)
            asyncio.run(load(smtp_port, 40, args.clients, "generated"))  # warm up both
            asyncio.run(load(sink_port, 40, args.clients, "generated"))
            print(
                f"{args.messages} messages, {args.clients} concurrent clients, "
                "one session per message (connect, EHLO, AUTH PLAIN, MAIL, RCPT, DATA)"
            )
            sink_lat, sink_rate = asyncio.run(
                load(sink_port, args.messages, args.clients, "generated")
            )
            ours_lat, ours_rate = asyncio.run(
                load(smtp_port, args.messages, args.clients, "generated")
            )
            report("aiosmtpd sink (stores nothing)", sink_lat, sink_rate)
            report("Postroom listener (stored, fsync)", ours_lat, ours_rate)
            print(f"{'rate vs the sink':<34} {ours_rate / sink_rate:.2f}x")
            print("AUTH PLAIN round trip on its own (p50 of 50 sessions):")
            for user, password in (("generated", GENERATED), ("chosen", CHOSEN)):
                times = asyncio.run(auth_alone(smtp_port, user, password, 50))
                kind = "keyed SHA-256" if user == "generated" else "scrypt"
                print(
                    f"  {kind:<14} first {times[0] * 1000:6.1f} ms   "
                    f"p50 {statistics.median(times) * 1000:6.2f} ms"
                )
            sink_auth = asyncio.run(auth_alone(sink_port, "any", "thing", 50))
            print(f"  {'sink (no check)':<14} p50 {statistics.median(sink_auth) * 1000:6.2f} ms")
        finally:
            serve.terminate()
            serve.wait(timeout=20)
            assert sink.stdin is not None
            sink.stdin.close()
            sink.wait(timeout=10)


if __name__ == "__main__":
    main()
