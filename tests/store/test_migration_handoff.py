"""Migration 0009: a database of the previous head, with messages and dispatches in it, gains
the hand-off evidence columns in place; what it held is kept, and new sends are recorded."""

from __future__ import annotations

from sqlalchemy import inspect, text
from store_support import new
from test_migrations import engine_at

from postroom.models import DispatchStatus, Handoff, Status
from postroom.store import Completion, MessageFilter, open_store, utcnow
from postroom.store.sql import newest_migration


async def test_a_database_of_0008_with_dispatches_gains_the_evidence_columns(
    sql_dsn: str,
) -> None:
    engine = engine_at(sql_dsn, "0008")
    assert "provider_message_id" not in {
        c["name"] for c in inspect(engine).get_columns("dispatches")
    }
    store = open_store(sql_dsn)
    try:
        [(old, _)] = await store.enqueue([new(1)], max_attempts=3, ttl=0)
        with engine.begin() as conn:  # a dispatch as the 0008 code wrote it
            conn.execute(
                text(
                    "INSERT INTO dispatches (id, message_id, status, error, worker, "
                    "created_at, updated_at) VALUES ('d-old', :m, 'success', NULL, 'w1', "
                    ":now, :now)"
                ),
                {"m": old.id, "now": utcnow().replace(tzinfo=None)},
            )
        await store.migrate()

        [kept] = (await store.get(old.id)).dispatches
        assert (kept.id, kept.status, kept.transport, kept.provider_message_id) == (
            "d-old",
            DispatchStatus.SUCCESS,
            None,
            None,
        )
        [(fresh, _)] = await store.enqueue([new(2)], max_attempts=3, ttl=0)
        claimed = await store.claim(worker="w2", limit=5, lease=30)
        assert {m.id for m in claimed} == {old.id, fresh.id}
        evidence = Handoff("smtp", "mx.example.org:587", "250 2.0.0 Ok: queued as 4Fh2", "4Fh2")
        await store.complete([Completion(fresh.id, Status.SENT, handoff=evidence)], worker="w2")
        latest = (await store.get(fresh.id)).dispatches[0]
        assert (latest.transport, latest.host, latest.reply, latest.provider_message_id) == (
            "smtp",
            "mx.example.org:587",
            "250 2.0.0 Ok: queued as 4Fh2",
            "4Fh2",
        )
        found = await store.list_messages(MessageFilter(provider_message_id="4Fh2"))
        assert [m.id for m in found] == [fresh.id]
    finally:
        await store.close()
    with engine.connect() as conn:
        version = conn.execute(text("SELECT version_num FROM alembic_version")).scalar()
    assert version == newest_migration()
    indexes = {i["name"] for i in inspect(engine).get_indexes("dispatches")}
    assert "ix_dispatches_provider_message_id" in indexes
    engine.dispose()
