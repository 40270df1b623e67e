"""Dashboard pages against a store of a million messages: server time per page.

Fills a SQLite store with ``--messages`` rows (default 1,000,000) by bulk inserts through
SQLAlchemy Core (not the intake path: this measures reading, not writing), spread over the last
29 days like a month of retention: four tenants (70/20/9/1 %), the Kratos template types, about
five messages per recipient, 6 % abandoned with a diagnosis and one failed attempt each, the
newest couple of thousand still queued. Bodies are the real rendered templates. Then it serves
the app (``postroom serve`` without a worker), signs in, and requests every list page (each
filter, a deep keyset page, the auto-refresh fragment), the overview, a message and the tenants
and outbox pages, printing the server time each one reports in ``Server-Timing`` (median, 95th
percentile, worst) next to the time the client saw.

The filled database is kept with ``--db PATH`` and reused when it already holds the messages.

Usage: python bench/dashboard.py [--messages N] [--runs R] [--db PATH]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import random
import re
import statistics
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from sqlalchemy import create_engine, func, select

from postroom.codes import DiagnosisCode
from postroom.config import Settings
from postroom.diagnosis import diagnose
from postroom.models import TemplateType
from postroom.render.mime import build_mime
from postroom.render.templates import render_email
from postroom.store import open_store
from postroom.store.schema import dispatches, messages
from postroom.web.app import create_app

TOKEN = "bench-admin-token-0123456789abcdef"
DAYS = 29  # inside the default retention (30 d), which `serve` applies at start
TENANTS = [("default", 70), ("acme", 20), ("globex", 9), ("tiny", 1)]
TEMPLATES = [
    (TemplateType.LOGIN_CODE_VALID, 45),
    (TemplateType.VERIFICATION_CODE_VALID, 25),
    (TemplateType.RECOVERY_CODE_VALID, 15),
    (TemplateType.REGISTRATION_CODE_VALID, 10),
    (TemplateType.VERIFICATION_VALID, 3),
    (TemplateType.RECOVERY_VALID, 1),
    (TemplateType.STUB, 1),
]
FAILURES: list[tuple[DiagnosisCode, str | None, str | None]] = [
    ("recipient_rejected", "rcpt", "550 5.1.1 <x@example.org>: Recipient address rejected"),
    ("mailbox_full", "rcpt", "552 5.2.2 Mailbox full"),
    ("auth_failed", "auth", "535 5.7.8 Authentication credentials invalid"),
    ("expired", None, None),
]
BATCH = 20_000


def weighted(rng: random.Random, table: list[tuple[Any, int]]) -> Any:
    """One choice of ``table`` by weight."""
    return rng.choices([v for v, _ in table], weights=[w for _, w in table])[0]


def bodies() -> dict[TemplateType, dict[str, Any]]:
    """The rendered parts and MIME of every template type the fill uses."""
    out = {}
    data = {
        "to": "someone@example.org",
        "login_code": "123456",
        "verification_code": "123456",
        "recovery_code": "123456",
        "registration_code": "123456",
        "verification_url": "https://id.example.org/verify?token=abc",
        "recovery_url": "https://id.example.org/recover?token=abc",
        "subject": "Hello",
        "body": "Hello there",
    }
    for template, _ in TEMPLATES:
        email = render_email(template, data)
        mime = build_mime(
            email,
            sender="no-reply@example.org",
            sender_name="Example",
            recipient="someone@example.org",
            reply_to=None,
            headers={},
            date=datetime.now(UTC),
        )
        out[template] = {
            "subject": email.subject,
            "body": email.text,
            "html_body": email.html,
            "mime": mime,
        }
    return out


def ordered_id(n: int) -> str:
    """A UUID-shaped id that grows with ``n`` (inserts stay sequential in the primary key)."""
    return str(uuid.UUID(int=(n << 64) | random.getrandbits(64)))


def fill(dsn: str, path: Path, count: int) -> float:
    """Migrate and bulk-load ``count`` messages; return the seconds it took."""

    async def migrate() -> None:
        store = open_store(dsn)
        await store.migrate()
        await store.close()

    asyncio.run(migrate())
    engine = create_engine(f"sqlite:///{path}")
    rng = random.Random(7)
    parts = bodies()
    now = datetime.now(UTC)
    span = timedelta(days=DAYS).total_seconds()
    errors = {
        code: diagnose(code, stage=stage, reply=reply).to_json() for code, stage, reply in FAILURES
    }
    start = time.perf_counter()
    with engine.begin() as conn:
        conn.exec_driver_sql("PRAGMA journal_mode=OFF")
        conn.exec_driver_sql("PRAGMA synchronous=OFF")
        conn.exec_driver_sql("PRAGMA cache_size=-400000")
        # Indexes are built once at the end: far faster than keeping them up to date.
        indexes = list(messages.indexes)
        for index in indexes:
            index.drop(conn)
        rows: list[dict[str, Any]] = []
        attempts: list[dict[str, Any]] = []
        for n in range(count):
            created = now - timedelta(seconds=span * (count - n) / count)
            template = weighted(rng, TEMPLATES)
            if n >= count - 2000:
                status = "processing" if rng.random() < 0.05 else "queued"
            else:
                status = "abandoned" if rng.random() < 0.06 else "sent"
            error = errors[rng.choice(list(errors))] if status == "abandoned" else None
            row_id = ordered_id(n)
            rows.append(
                {
                    "id": row_id,
                    "tenant": weighted(rng, TENANTS),
                    "status": status,
                    "type": "email",
                    "recipient": f"user{rng.randrange(200_000)}@example.org",
                    "template_type": template.value,
                    "template_data": {"login_code": "123456"},
                    **parts[template],
                    "send_count": 1 if status in ("sent", "abandoned") else 0,
                    "max_attempts": 6,
                    "idempotency_key": None,
                    "request_hash": None,
                    "created_at": created,
                    "updated_at": created,
                    "next_attempt_at": created if status == "queued" else None,
                    "expires_at": created + timedelta(hours=1),
                    "waiting_for": None,
                    "last_error": error,
                    "lease_owner": "bench" if status == "processing" else None,
                    "lease_until": now + timedelta(minutes=1) if status == "processing" else None,
                }
            )
            if error is not None and error["code"] != "expired":
                attempts.append(
                    {
                        "id": str(uuid.uuid4()),
                        "message_id": row_id,
                        "status": "failed",
                        "error": error,
                        "worker": "bench",
                        "created_at": created,
                        "updated_at": created,
                    }
                )
            if len(rows) == BATCH:
                conn.execute(messages.insert(), rows)
                rows = []
                print(f"\r  {n + 1:>9,} messages", end="", file=sys.stderr, flush=True)
        if rows:
            conn.execute(messages.insert(), rows)
        for chunk in range(0, len(attempts), BATCH):
            conn.execute(dispatches.insert(), attempts[chunk : chunk + BATCH])
        print("\r  building indexes...        ", end="", file=sys.stderr, flush=True)
        for index in indexes:
            index.create(conn)
    engine.dispose()
    print("\r", end="", file=sys.stderr)
    return time.perf_counter() - start


def existing(path: Path) -> int:
    """How many messages the database at ``path`` holds (0 when there is none)."""
    if not path.exists():
        return 0
    engine = create_engine(f"sqlite:///{path}")
    try:
        with engine.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(messages)).scalar() or 0)
    except Exception:
        return 0
    finally:
        engine.dispose()


@contextmanager
def serve(settings: Settings) -> Iterator[str]:
    """The app on a real socket, without a worker."""
    app = create_app(settings, run_worker=False, admin_token=TOKEN)
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="on")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.02)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join()


def page_token(created: datetime) -> str:
    """A keyset page token that starts at ``created`` (the API's format)."""
    raw = f"{created.isoformat()}|ffffffff-ffff-ffff-ffff-ffffffffffff".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def main() -> None:
    """Fill (or reuse) the store, then time every page; the temporary database goes at the end
    unless ``--db`` keeps it."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--db", type=Path, default=None, help="keep (and reuse) the database here")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="postroom-bench-") as tmp:
        run(args, Path(tmp))


def run(args: argparse.Namespace, workdir: Path) -> None:
    """The benchmark proper, with ``workdir`` for what is not kept."""
    path = args.db or workdir / "postroom.db"
    dsn = f"sqlite:///{path}"
    have = existing(path)
    if have >= args.messages * 0.99:  # the retention of earlier runs may have taken a few
        print(f"reusing {path}: {have:,} messages")
    else:
        if path.exists():
            path.unlink()
        print(f"filling {path} with {args.messages:,} messages...")
        seconds = fill(dsn, path, args.messages)
        size = path.stat().st_size / 2**30
        print(f"filled in {seconds:.0f} s ({args.messages / seconds:,.0f} rows/s, {size:.1f} GiB)")
    settings = Settings.model_validate(
        {
            "dsn": dsn,
            "courier": {"outbox_path": str(workdir / "outbox")},
            "tenants": {name: {"courier": {}} for name, _ in TENANTS if name != "default"},
        }
    )
    with serve(settings) as base, httpx.Client(base_url=base, timeout=60) as http:
        form = http.get("/sign-in").text
        csrf = re.search(r'name="csrf" value="([^"]+)"', form)
        assert csrf, "no sign-in form"
        signed = http.post("/sign-in", data={"csrf": csrf.group(1), "token": TOKEN, "next": "/"})
        assert signed.status_code == 303, signed.text
        newest = http.get("/messages?status=abandoned").text
        some = re.search(r'href="/messages/([0-9a-f-]{36})"', newest)
        assert some, "no abandoned message to open"
        recipient = re.search(r">(user\d+@example\.org)</a>", newest)
        assert recipient
        middle = page_token(datetime.now(UTC) - timedelta(days=DAYS / 2))
        pages = [
            ("overview", "/"),
            ("messages, newest", "/messages"),
            ("  auto-refresh rows", "/messages?fragment=rows"),
            ("  15 days back (keyset)", f"/messages?page={middle}"),
            ("  status=abandoned", "/messages?status=abandoned"),
            ("  status=queued", "/messages?status=queued"),
            ("  status=processing", "/messages?status=processing"),
            ("  tenant=tiny (1 %)", "/messages?tenant=tiny"),
            ("  tenant=nobody (none)", "/messages?tenant=nobody"),
            ("  tenant=acme, abandoned", "/messages?tenant=acme&status=abandoned"),
            ("  tenant=tiny, processing", "/messages?tenant=tiny&status=processing"),
            ("  template=stub (1 %)", "/messages?template=stub"),
            ("  template=test (none)", "/messages?template=test"),
            ("  template=stub, sent", "/messages?template=stub&status=sent"),
            ("  login codes, abandoned", "/messages?template=login_code_valid&status=abandoned"),
            ("  recipient", f"/messages?recipient={recipient.group(1)}"),
            ("  recipient, sent", f"/messages?recipient={recipient.group(1)}&status=sent"),
            ("  status=abandoned, 15 days back", f"/messages?status=abandoned&page={middle}"),
            ("message detail", f"/messages/{some.group(1)}"),
            ("tenants", "/tenants"),
            ("outbox", "/outbox"),
        ]
        print(f"\n{'page':36} {'server p50':>10} {'p95':>8} {'max':>8} {'client p50':>11}  rows")
        worst = 0.0
        for label, url in pages:
            server: list[float] = []
            client: list[float] = []
            http.get(url)  # warm-up: templates compile on first use, once per process
            for _ in range(args.runs):
                started = time.perf_counter()
                answer = http.get(url)
                client.append((time.perf_counter() - started) * 1000)
                assert answer.status_code == 200, (url, answer.status_code)
                timing = answer.headers["server-timing"]
                server.append(float(timing.split("dur=")[1]))
            rows = answer.text.count('<tr>\n  <td data-label="Time">')
            server.sort()
            p95 = server[min(len(server) - 1, int(0.95 * len(server)))]
            worst = max(worst, p95)
            print(
                f"{label:36} {statistics.median(server):8.1f}ms {p95:6.1f}ms "
                f"{server[-1]:6.1f}ms {statistics.median(client):9.1f}ms  "
                f"{rows if url.startswith('/messages?') or url == '/messages' else ''}"
            )
        print(f"\nslowest page, 95th percentile of server time: {worst:.1f} ms (goal: < 200 ms)")


if __name__ == "__main__":
    main()
