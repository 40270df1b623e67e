"""The SMTP listener's records: logins that API tenants manage and the refusal log, on every
store, and the upgrade of a database of the previous head, with data in it."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest
from sqlalchemy import create_engine, inspect, text
from store_support import new
from test_migrations import engine_at, old_message

from postroom.errors import ConflictError, NotFoundError
from postroom.models import Diagnosis, Status
from postroom.store import Completion, Store, open_store, utcnow
from postroom.store.listener import KEEP_REFUSALS, Refusal, StoredLogin
from postroom.store.sql import postgres_url


def login(username: str, tenant: str = "acme") -> StoredLogin:
    return StoredLogin(username, tenant, "sha256$AAAAAAAAAAA$" + "0" * 64, "urgent", utcnow())


async def test_a_username_names_one_login_across_tenants(any_store: Store) -> None:
    await any_store.add_login(login("keycloak", "acme"))
    with pytest.raises(ConflictError, match="keycloak"):
        await any_store.add_login(login("keycloak", "other"))
    await any_store.add_login(login("authentik", "other"))
    assert [x.username for x in await any_store.list_logins("acme")] == ["keycloak"]
    assert [x.username for x in await any_store.list_logins()] == ["authentik", "keycloak"]
    found = await any_store.get_login("keycloak")
    assert found is not None and found.tenant == "acme"
    assert not await any_store.delete_login("other", "keycloak")  # not that tenant's
    assert await any_store.delete_login("acme", "keycloak")
    assert await any_store.get_login("keycloak") is None


async def test_the_refusal_log_keeps_the_newest(any_store: Store) -> None:
    start = utcnow()
    batch = [
        Refusal(start + timedelta(milliseconds=n), "192.0.2.9", f"535 5.7.8 #{n}", "wrong")
        for n in range(KEEP_REFUSALS + 5)
    ]
    await any_store.record_refusals(batch[:3])
    await any_store.record_refusals(batch[3:])
    newest = await any_store.list_refusals(limit=KEEP_REFUSALS + 50)
    assert len(newest) == KEEP_REFUSALS
    assert newest[0].reply == f"535 5.7.8 #{KEEP_REFUSALS + 4}"
    assert newest[-1].reply == "535 5.7.8 #5"


async def test_a_database_of_0009_with_data_gains_the_listener_tables(sql_dsn: str) -> None:
    engine = engine_at(sql_dsn, "0009")
    assert "smtp_logins" not in inspect(engine).get_table_names()
    with engine.begin() as conn:  # a message as 0009 holds it (this code writes newer rows)
        old_message(conn, "m-0008", "login_code_valid", "queued")
    store = open_store(sql_dsn)
    try:
        await store.migrate()
        await store.put_tenant("acme", {"message_retries": 2})
        assert (await store.get("m-0008")).recipient == "m-0008@example.org"
        assert await store.get_tenant("acme") is not None
        await store.add_login(login("keycloak"))
        await store.record_refusals([Refusal(utcnow(), "::1", "530 5.7.0 x", "no AUTH")])
        assert [r.client for r in await store.list_refusals()] == ["::1"]
    finally:
        await store.close()
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT username, tenant FROM smtp_logins")).all()
    assert [tuple(r) for r in rows] == [("keycloak", "acme")]
    engine.dispose()


async def test_mail_for_several_recipients_keeps_its_mime_once(any_store: Store) -> None:
    mime = b"Subject: shared\r\n\r\n" + b"a large body\r\n" * 1000
    digest = "d" * 64
    shared = [replace(new(n), mime=mime, mime_ref=digest) for n in range(3)]
    other = replace(new(9), mime=b"Subject: alone\r\n\r\nx\r\n")
    stored = await any_store.enqueue([*shared, other], max_attempts=3, ttl=0)
    claimed = await any_store.claim(worker="w", limit=10, lease=60)
    assert sorted(m.mime for m in claimed) == sorted([mime, mime, mime, other.mime])
    assert (await any_store.get(stored[0][0].id)).mime == mime
    ids = [m.id for m, _ in stored]
    await any_store.complete([Completion(i, Status.SENT) for i in ids], worker="w")
    later = utcnow() + timedelta(days=1)
    deleted = await any_store.delete_finished(
        before=later, tenant=None, keep_keyed_since=later, batch=2
    )
    assert deleted == 2
    left = [i for i in ids if await _exists(any_store, i)]
    assert len(left) == 2
    for message_id in left:  # what is left still has its MIME
        assert (await any_store.get(message_id)).mime in (mime, other.mime)
    await any_store.delete_finished(before=later, tenant=None, keep_keyed_since=later, batch=10)


async def test_the_shared_mime_is_one_row_and_goes_with_its_last_message(sql_dsn: str) -> None:
    url = postgres_url(sql_dsn) if sql_dsn.startswith("postgres") else sql_dsn
    store = open_store(sql_dsn)
    await store.migrate()
    mime = b"Subject: shared\r\n\r\nbody\r\n"
    try:
        stored = await store.enqueue(
            [replace(new(n), mime=mime, mime_ref="e" * 64) for n in range(4)],
            max_attempts=3,
            ttl=0,
        )
        engine = create_engine(url)
        with engine.connect() as conn:
            assert conn.execute(text("SELECT count(*) FROM relay_bodies")).scalar() == 1
            sizes = conn.execute(text("SELECT length(mime) FROM messages")).scalars().all()
        assert sizes == [0, 0, 0, 0]
        for message, _ in stored:
            await store.cancel(message.id, error=Diagnosis("unknown", False, "c", "f"))
        later = utcnow() + timedelta(days=1)
        await store.delete_finished(before=later, tenant=None, keep_keyed_since=later, batch=3)
        with engine.connect() as conn:
            assert conn.execute(text("SELECT count(*) FROM relay_bodies")).scalar() == 1
        await store.delete_finished(before=later, tenant=None, keep_keyed_since=later, batch=3)
        with engine.connect() as conn:
            assert conn.execute(text("SELECT count(*) FROM relay_bodies")).scalar() == 0
        engine.dispose()
    finally:
        await store.close()


async def _exists(store: Store, message_id: str) -> bool:
    try:
        await store.get(message_id)
    except NotFoundError:
        return False
    return True
