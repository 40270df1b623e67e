"""The memory store needs no SQLAlchemy: importing it, and using it the way the tests and
``memory://`` stores do (enqueue, search by recipient and id, listener logins and refusals),
imports nothing of SQLAlchemy. Checked in a fresh interpreter, where nothing else has
imported it first."""

from __future__ import annotations

import subprocess
import sys
import textwrap

SCRIPT = textwrap.dedent("""\
    import asyncio
    import sys

    import postroom.store.memory

    loaded = sorted(m for m in sys.modules if m.split(".")[0] == "sqlalchemy")
    assert not loaded, f"importing the memory store imported {loaded[:5]}"

    from postroom.models import NewMessage, TemplateType
    from postroom.store import MessageFilter, open_store
    from postroom.store.listener import Refusal, StoredLogin, now

    async def use() -> None:
        store = open_store("memory://")
        new = NewMessage(
            tenant="default",
            recipient="Jane@Example.org",
            template_type=TemplateType.TEST,
            template_data={"to": "Jane@Example.org"},
            subject="subject",
            body="body",
            html_body=None,
            mime=b"Subject: x\\r\\n\\r\\nbody\\r\\n",
            idempotency_key=None,
            request_hash="hash",
        )
        [(message, _)] = await store.enqueue([new], max_attempts=3, ttl=0)
        by_domain = await store.list_messages(MessageFilter(recipient="@example.org"))
        by_end = await store.list_messages(MessageFilter(id_fragment=message.id[-12:]))
        assert [m.id for m in by_domain] == [m.id for m in by_end] == [message.id]
        await store.add_login(StoredLogin("kc", "default", "sha256$x$y", "urgent", now()))
        await store.record_refusals([Refusal(now(), "127.0.0.1", "535 5.7.8", "wrong")])
        assert [r.reply for r in await store.list_refusals()] == ["535 5.7.8"]

    asyncio.run(use())
    loaded = sorted(m for m in sys.modules if m.split(".")[0] == "sqlalchemy")
    assert not loaded, f"using the memory store imported {loaded[:5]}"
    print("no sqlalchemy")
    """)


def test_the_memory_store_imports_no_sqlalchemy() -> None:
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "no sqlalchemy"
