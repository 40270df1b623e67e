"""Retention: finished messages past the retention period go, in batches; queued ones and
recent idempotency keys stay."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from postroom.config import Settings
from postroom.models import NewMessage, Status, TemplateType
from postroom.store import Completion, MessageFilter, Store, open_store, utcnow
from postroom.worker import retention

from procs import postroom


def new(n: int, *, key: str | None = None, tenant: str = "default") -> NewMessage:
    return NewMessage(
        tenant,
        f"u{n}@example.org",
        TemplateType.TEST,
        {},
        "s",
        "b",
        None,
        b"Subject: s\r\n\r\nb\r\n",
        idempotency_key=key,
    )


async def finish(store: Store, count: int) -> None:
    claimed = await store.claim(worker="w", limit=count, lease=60)
    await store.complete([Completion(m.id, Status.SENT) for m in claimed], worker="w")


async def test_cleanup_deletes_only_what_is_finished_and_old(
    any_store: Store, make_settings: Callable[..., Settings], monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = make_settings(retention="1s")
    await any_store.enqueue([new(n) for n in range(1200)], max_attempts=1, ttl=0)
    await any_store.enqueue([new(5000, key="signup-1")], max_attempts=1, ttl=0)
    await finish(any_store, 1201)
    await any_store.enqueue([new(9000)], max_attempts=1, ttl=0)  # still queued
    assert await retention.cleanup(any_store, settings) == 0  # nothing is a second old yet

    batches: list[int] = []
    delete_finished = any_store.delete_finished

    async def counted(**kwargs: Any) -> int:
        batches.append(await delete_finished(**kwargs))
        return batches[-1]

    monkeypatch.setattr(any_store, "delete_finished", counted)
    later = utcnow() + timedelta(seconds=2)
    monkeypatch.setattr(retention, "utcnow", lambda: later)
    assert await retention.cleanup(any_store, settings) == 1200
    assert max(batches) <= retention.BATCH and len(batches) >= 3  # in batches
    left = await any_store.list_messages(MessageFilter(limit=10))
    assert sorted(m.recipient for m in left) == ["u5000@example.org", "u9000@example.org"]
    # Past the 24 hours, the keyed message goes too; the queued one stays.
    monkeypatch.setattr(retention, "utcnow", lambda: later + timedelta(hours=25))
    assert await retention.cleanup(any_store, settings) == 1
    left = await any_store.list_messages(MessageFilter(limit=10))
    assert [m.recipient for m in left] == ["u9000@example.org"]


def test_cleanup_command(tmp_path: Path) -> None:
    (tmp_path / "postroom.yaml").write_text("courier: {}\n")
    assert postroom(tmp_path, "send", "--to", "a@example.org", "--template", "test").returncode == 0
    assert postroom(tmp_path, "worker", "--drain").returncode == 0
    kept = postroom(tmp_path, "cleanup")
    assert kept.returncode == 0 and "deleted 0" in kept.stdout
    gone = postroom(tmp_path, "cleanup", "--older-than", "0s")
    assert gone.returncode == 0 and "deleted 1" in gone.stdout, gone.stdout + gone.stderr
    bad = postroom(tmp_path, "cleanup", "--older-than", "soon")
    assert bad.returncode == 2 and "--older-than" in bad.stderr


async def test_dispatches_go_with_their_message(tmp_path: Path) -> None:
    store = open_store(f"sqlite:///{tmp_path / 'p.db'}")
    await store.migrate()
    try:
        [(message, _)] = await store.enqueue([new(1)], max_attempts=1, ttl=0)
        await finish(store, 1)
        assert len((await store.get(message.id)).dispatches) == 1
        await store.delete_finished(
            before=utcnow() + timedelta(seconds=1), tenant=None, keep_keyed_since=utcnow(), batch=10
        )
        import sqlite3

        with sqlite3.connect(tmp_path / "p.db") as db:
            assert db.execute("select count(*) from dispatches").fetchone() == (0,)
    finally:
        await store.close()
