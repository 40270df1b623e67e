"""``postroom suppressions list|remove`` over a real database, and ``send --bulk`` leaving
suppressed addresses out."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta
from pathlib import Path

from postroom.store import open_store, utcnow
from postroom.store.events_base import Suppression
from postroom.store.records import events_of

from procs import postroom


def suppress(db: Path, *addresses: str) -> None:
    async def work() -> None:
        store = open_store(f"sqlite:///{db}")
        await store.migrate()
        try:
            now = utcnow()
            for address in addresses:
                await events_of(store).suppress(
                    Suppression(
                        "default",
                        address,
                        "hard bounce (recipient_rejected): 550 5.1.1 user unknown",
                        "bounced",
                        None,
                        None,
                        now,
                        now + timedelta(days=90),
                    )
                )
        finally:
            await store.close()

    asyncio.run(work())


def test_the_list_shows_why_and_remove_mails_the_address_again(tmp_path: Path) -> None:
    db = tmp_path / "p.db"
    (tmp_path / "postroom.yaml").write_text(
        f"dsn: sqlite:///{db}\ncourier: {{outbox_path: {tmp_path / 'out'}}}\n"
    )
    suppress(db, "gone@example.net", "left@example.org")
    shown = postroom(tmp_path, "suppressions", "list", "--search", "example.net")
    assert shown.returncode == 0, shown.stderr
    assert "gone@example.net" in shown.stdout and "550 5.1.1" in shown.stdout
    assert "left@example.org" not in shown.stdout

    refused = postroom(
        tmp_path, "send", "--to", "gone@example.net", "--subject", "s", "--text", "t"
    )
    assert refused.returncode == 1 and "suppressed" in refused.stderr
    assert "Traceback" not in refused.stderr

    bulk = tmp_path / "b.jsonl"
    lines = [{"to": a, "subject": "s", "text": "t"} for a in ("gone@example.net", "ok@example.net")]
    bulk.write_text("".join(json.dumps(line) + "\n" for line in lines))
    sent = postroom(tmp_path, "send", "--bulk", str(bulk))
    assert sent.returncode == 0, sent.stderr
    assert "enqueued 1 message(s)" in sent.stdout and "1 left out" in sent.stdout

    removed = postroom(tmp_path, "suppressions", "remove", "gone@example.net")
    assert removed.returncode == 0, removed.stderr
    again = postroom(tmp_path, "suppressions", "remove", "gone@example.net")
    assert again.returncode == 1 and "not suppressed" in again.stderr
    listed = postroom(tmp_path, "suppressions", "list", "--json")
    assert [s["address"] for s in json.loads(listed.stdout)] == ["left@example.org"]
    assert (
        postroom(
            tmp_path, "send", "--to", "gone@example.net", "--subject", "s", "--text", "t"
        ).returncode
        == 0
    )
