"""DKIM keys in the store (migration 0015): an older database with data gains the table, and
every store keeps at most one active key per tenant."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from alembic import command
from sqlalchemy import create_engine, inspect, text
from store_support import new
from test_migrations import alembic_config

from postroom.errors import ConflictError, NotFoundError
from postroom.store import Store, open_store
from postroom.store.base import StoredDkimKey
from postroom.store.sql import newest_migration, postgres_url


def key(selector: str, *, tenant: str = "acme", age: int = 0) -> StoredDkimKey:
    return StoredDkimKey(
        tenant=tenant,
        selector=selector,
        domain="example.org",
        algorithm="ed25519-sha256",
        private_key="enc:v1:not-a-real-key",
        public_key="AAAA",
        state="inactive",
        created_at=datetime.now(UTC) - timedelta(days=age),
        activated_at=None,
    )


async def test_a_database_at_the_previous_head_with_data_gains_the_dkim_keys_table(
    sql_dsn: str,
) -> None:
    url = postgres_url(sql_dsn) if sql_dsn.startswith("postgres") else sql_dsn
    engine = create_engine(url)
    cfg = alembic_config()
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "0014")  # the head before 0015 (message locales)
    assert "dkim_keys" not in inspect(engine).get_table_names()
    store = open_store(sql_dsn)
    try:
        [(message, _)] = await store.enqueue([new(1)], max_attempts=3, ttl=0)
        await store.put_tenant("acme", {"message_retries": 2})
        await store.migrate()
        assert (await store.get(message.id)).mime == message.mime
        assert (await store.get_tenant("acme")) is not None
        await store.add_dkim_key(key("s2026"))
        await store.activate_dkim_key("acme", "s2026")
        active = await store.active_dkim_key("acme")
        assert active is not None and active.selector == "s2026"
    finally:
        await store.close()
    with engine.connect() as conn:
        version = conn.execute(text("SELECT version_num FROM alembic_version")).scalar()
    assert version == newest_migration()
    engine.dispose()


async def test_activating_a_key_retires_the_one_before(any_store: Store) -> None:
    await any_store.add_dkim_key(key("old", age=90))
    await any_store.add_dkim_key(key("new"))
    await any_store.add_dkim_key(key("other", tenant="beta"))
    assert await any_store.active_dkim_key("acme") is None
    await any_store.activate_dkim_key("acme", "old")
    await any_store.activate_dkim_key("acme", "new")
    states = {k.selector: k.state for k in await any_store.list_dkim_keys("acme")}
    assert states == {"new": "active", "old": "retired"}
    assert [k.selector for k in await any_store.list_dkim_keys()] == ["new", "old", "other"]
    active = await any_store.active_dkim_key("acme")
    assert active is not None and active.selector == "new" and active.activated_at is not None
    with pytest.raises(ConflictError, match="already has a DKIM key"):
        await any_store.add_dkim_key(key("new"))
    with pytest.raises(NotFoundError, match="no DKIM key with selector 'nope'"):
        await any_store.activate_dkim_key("acme", "nope")
