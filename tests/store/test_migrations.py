"""Schema upgrades: every command starts with ``migrate``, which skips Alembic when the
database is already at the newest revision, and upgrades it when it is not."""

from __future__ import annotations

import warnings
from dataclasses import replace
from datetime import timedelta

from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, MetaData, Table, create_engine, inspect, text
from sqlalchemy.exc import SAWarning
from store_support import new

from postroom.models import Priority
from postroom.store import MessageFilter, open_store, utcnow
from postroom.store.sql import MIGRATIONS, newest_migration, postgres_url


def insert_old_message(conn: Connection, message_id: str) -> None:
    """A message row written by the code of the schema the database is at (its own columns)."""
    with warnings.catch_warnings():  # SQLAlchemy does not reflect expression indexes
        warnings.simplefilter("ignore", SAWarning)
        table = Table("messages", MetaData(), autoload_with=conn)
    now = utcnow()
    conn.execute(
        table.insert(),
        {
            "id": message_id,
            "tenant": "default",
            "status": "queued",
            "type": "email",
            "recipient": f"{message_id}@example.org",
            "template_type": "login_code_valid",
            "template_data": {"login_code": "123456", "to": f"{message_id}@example.org"},
            "subject": "Your sign-in code",
            "body": "Enter this code to sign in: 123456",
            "mime": b"Subject: Your sign-in code\r\n\r\n123456\r\n",
            "send_count": 0,
            "max_attempts": 3,
            "created_at": now,
            "updated_at": now,
            "next_attempt_at": now,
        },
    )


def database_at(sql_dsn: str, revision: str, *, messages: tuple[str, ...] = ()) -> Engine:
    """An engine on a database upgraded to ``revision``, with ``messages`` written into it."""
    url = postgres_url(sql_dsn) if sql_dsn.startswith("postgres") else sql_dsn
    engine = create_engine(url)
    cfg = alembic_config()
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, revision)
        for message_id in messages:
            insert_old_message(conn, message_id)
    return engine


def alembic_config() -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    return cfg


def engine_at(sql_dsn: str, revision: str) -> Engine:
    """An engine on the test database, upgraded to ``revision`` and no further."""
    url = postgres_url(sql_dsn) if sql_dsn.startswith("postgres") else sql_dsn
    engine = create_engine(url)
    cfg = alembic_config()
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, revision)
    return engine


def test_the_quick_head_check_agrees_with_alembic() -> None:
    assert newest_migration() == ScriptDirectory.from_config(alembic_config()).get_current_head()


async def test_a_database_of_an_older_version_is_upgraded(sql_dsn: str) -> None:
    url = postgres_url(sql_dsn) if sql_dsn.startswith("postgres") else sql_dsn
    engine = create_engine(url)
    cfg = alembic_config()
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "0005")  # before the oauth_tokens table
    assert "oauth_tokens" not in inspect(engine).get_table_names()

    store = open_store(sql_dsn)
    try:
        await store.migrate()
        await store.migrate()  # the second start finds it current
    finally:
        await store.close()
    with engine.connect() as conn:
        version = conn.execute(text("SELECT version_num FROM alembic_version")).scalar()
    assert version == newest_migration()
    assert "oauth_tokens" in inspect(engine).get_table_names()
    assert "message_id" in {c["name"] for c in inspect(engine).get_columns("rate_events")}
    engine.dispose()


async def test_a_database_that_already_has_the_rate_event_column_is_upgraded(
    sql_dsn: str,
) -> None:
    # An edition of revision 0003 created rate_events.message_id itself; 0007 must not add it
    # a second time, only its index.
    url = postgres_url(sql_dsn) if sql_dsn.startswith("postgres") else sql_dsn
    engine = create_engine(url)
    cfg = alembic_config()
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "0006")
        conn.execute(text("ALTER TABLE rate_events ADD COLUMN message_id VARCHAR(36)"))
    store = open_store(sql_dsn)
    try:
        await store.migrate()
    finally:
        await store.close()
    indexes = {i["name"] for i in inspect(engine).get_indexes("rate_events")}
    assert "ix_rate_events_message" in indexes
    engine.dispose()


async def test_a_database_of_0007_with_data_gains_the_sessions_table(sql_dsn: str) -> None:
    engine = database_at(sql_dsn, "0007", messages=("m0007",))
    assert "sessions" not in inspect(engine).get_table_names()
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO tenants (id, courier, created_at, updated_at) "
                """VALUES ('acme', '{"message_retries": 2}', :t, :t)"""
            ),
            {"t": utcnow().replace(tzinfo=None)},
        )
    store = open_store(sql_dsn)
    try:
        await store.migrate()
        assert (await store.get("m0007")).recipient == "m0007@example.org"
        tenant = await store.get_tenant("acme")
        assert tenant is not None and tenant.courier == {"message_retries": 2}
        await store.start_session("s" * 64, expires_at=utcnow() + timedelta(hours=1))
        assert await store.session_active("s" * 64)
    finally:
        await store.close()
    with engine.connect() as conn:
        version = conn.execute(text("SELECT version_num FROM alembic_version")).scalar()
    assert version == newest_migration()
    engine.dispose()


def old_message(conn: Connection, message_id: str, template_type: str, status: str) -> None:
    """A message row as the schemas of 0007 to 0010 hold it."""
    now = utcnow().replace(tzinfo=None)
    conn.execute(
        text(
            "INSERT INTO messages (id, tenant, status, type, recipient, template_type, "
            "template_data, subject, body, mime, send_count, max_attempts, created_at, "
            "updated_at, next_attempt_at) VALUES (:id, 'default', :status, 'email', :rcpt, "
            ":kind, '{}', 'subject', 'body', :mime, 0, 3, :now, :now, :due)"
        ),
        {
            "id": message_id,
            "status": status,
            "rcpt": f"{message_id}@example.org",
            "kind": template_type,
            "mime": b"Subject: x\r\n\r\nbody\r\n",
            "now": now,
            "due": now if status == "queued" else None,
        },
    )


async def test_a_database_of_0010_with_data_gains_priority_lanes(sql_dsn: str) -> None:
    url = postgres_url(sql_dsn) if sql_dsn.startswith("postgres") else sql_dsn
    engine = create_engine(url)
    cfg = alembic_config()
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "0010")  # the head before lanes
        old_message(conn, "code", "login_code_valid", "queued")
        old_message(conn, "notice", "verifiable_address_changed", "queued")
        old_message(conn, "done", "stub", "sent")
        conn.execute(
            text("INSERT INTO rate_events (tenant, taken_at) VALUES ('default', :t)"),
            {"t": utcnow().replace(tzinfo=None)},
        )
    store = open_store(sql_dsn)
    try:
        await store.migrate()
        code, notice, done = [await store.get(i) for i in ("code", "notice", "done")]
        # Existing messages get their template type's lane, and nothing folded into them.
        assert (code.priority, notice.priority, done.priority) == (
            Priority.URGENT,
            Priority.NORMAL,
            Priority.NORMAL,
        )
        assert code.folded_duplicates == notice.folded_duplicates == 0
        claimed = await store.claim(worker="w", limit=5, lease=60, tenants={"default": 300})
        assert [m.id for m in claimed] == ["code", "notice"]  # urgent first
        # The hand-off recorded before the upgrade still counts against the limit.
        wait = await store.take_slot("default", [(1, 60)], message_id="code")
        assert wait is not None
    finally:
        await store.close()
    columns = {c["name"] for c in inspect(engine).get_columns("messages")}
    assert {"priority", "folded_duplicates", "content_hash"} <= columns
    with warnings.catch_warnings():  # SQLAlchemy does not reflect expression indexes
        warnings.simplefilter("ignore", SAWarning)
        indexes = {i["name"] for i in inspect(engine).get_indexes("messages")}
    assert {"ix_messages_lane_due", "ix_messages_content"} <= indexes
    engine.dispose()


async def test_expired_sessions_are_deleted_when_a_session_starts(sql_dsn: str) -> None:
    url = postgres_url(sql_dsn) if sql_dsn.startswith("postgres") else sql_dsn
    store = open_store(sql_dsn)
    try:
        await store.migrate()
        for n in range(3):
            await store.start_session(f"old{n}", expires_at=utcnow() - timedelta(seconds=1))
        await store.start_session("live", expires_at=utcnow() + timedelta(hours=1))
    finally:
        await store.close()
    engine = create_engine(url)
    with engine.connect() as conn:
        assert conn.execute(text("SELECT id FROM sessions")).scalars().all() == ["live"]
    engine.dispose()


async def test_a_database_of_0011_with_messages_gains_the_locale_column(sql_dsn: str) -> None:
    engine = database_at(sql_dsn, "0011", messages=("before",))
    assert "locale" not in {c["name"] for c in inspect(engine).get_columns("messages")}
    store = open_store(sql_dsn)
    try:
        await store.migrate()
        old = await store.get("before")
        assert old.recipient == "before@example.org" and old.template_data["login_code"] == "123456"
        assert old.locale is None  # rendered before locales existed: no locale is claimed
        [(fresh, _)] = await store.enqueue([replace(new(2), locale="pt-BR")], max_attempts=3, ttl=0)
        assert (await store.get(fresh.id)).locale == "pt-BR"
        listed = await store.list_messages(MessageFilter(limit=10))
        assert {m.id: m.locale for m in listed} == {"before": None, fresh.id: "pt-BR"}
    finally:
        await store.close()
    engine.dispose()
