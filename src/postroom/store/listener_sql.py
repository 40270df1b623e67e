"""The SQL side of what the SMTP listener keeps (:mod:`postroom.store.listener` holds the role
and the memory store's side): the tables of logins, refusals and shared MIME bodies, the
body helpers the SQL store calls in its own transactions (:func:`keep_bodies`,
:func:`fill_bodies`, :func:`drop_unused_bodies`), and :class:`SqlListenerRecords`."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

from sqlalchemy import (
    Column,
    Connection,
    Engine,
    Index,
    Integer,
    LargeBinary,
    String,
    Table,
    Text,
    func,
    select,
)
from sqlalchemy.exc import IntegrityError

from postroom.errors import ConflictError
from postroom.models import Message, NewMessage
from postroom.store.listener import KEEP_REFUSALS, Refusal, StoredLogin
from postroom.store.schema import UtcDateTime, messages, metadata

smtp_logins = Table(
    "smtp_logins",
    metadata,
    Column("username", String(128), primary_key=True),
    Column("tenant", String(128), nullable=False),
    Column("password_hash", String(255), nullable=False),
    Column("priority", String(16), nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Index("ix_smtp_logins_tenant", "tenant", "username"),
)

listener_refusals = Table(
    "listener_refusals",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("at", UtcDateTime, nullable=False),
    Column("client", String(64), nullable=False),
    Column("reply", String(512), nullable=False),
    Column("reason", Text, nullable=False),
    Column("username", String(128), nullable=True),
    Column("tenant", String(128), nullable=True),
)


relay_bodies = Table(
    "relay_bodies",
    metadata,
    Column("digest", String(64), primary_key=True),
    Column("mime", LargeBinary, nullable=False),
)


def keep_bodies(conn: Connection, batch: Sequence[NewMessage]) -> None:
    """Store the shared MIME of ``batch`` once per digest (none that is already stored)."""
    bodies = {new.mime_ref: new.mime for new in batch if new.mime_ref is not None}
    if not bodies:
        return
    stored = set(
        conn.execute(
            select(relay_bodies.c.digest).where(relay_bodies.c.digest.in_(list(bodies)))
        ).scalars()
    )
    fresh = [{"digest": d, "mime": m} for d, m in bodies.items() if d not in stored]
    if fresh:
        conn.execute(relay_bodies.insert(), fresh)


def fill_bodies(conn: Connection, found: list[Message]) -> list[Message]:
    """``found`` with the shared MIME in place of the empty one of messages that refer to it."""
    wanted = {m.mime_ref for m in found if m.mime_ref is not None and not m.mime}
    if not wanted:
        return found
    rows = conn.execute(
        select(relay_bodies.c.digest, relay_bodies.c.mime).where(
            relay_bodies.c.digest.in_(list(wanted))
        )
    )
    bodies = {row.digest: bytes(row.mime) for row in rows}
    return [
        replace(m, mime=bodies.get(m.mime_ref, b"")) if m.mime_ref in wanted else m for m in found
    ]


def drop_unused_bodies(conn: Connection, digests: set[str]) -> None:
    """Delete the shared MIME of ``digests`` that no message refers to any more."""
    if not digests:
        return
    used = set(
        conn.execute(
            select(messages.c.mime_ref).where(messages.c.mime_ref.in_(list(digests)))
        ).scalars()
    )
    unused = list(digests - used)
    if unused:
        conn.execute(relay_bodies.delete().where(relay_bodies.c.digest.in_(unused)))


def _login(row: Any) -> StoredLogin:
    return StoredLogin(row.username, row.tenant, row.password_hash, row.priority, row.created_at)


class SqlListenerRecords:
    """:class:`ListenerRecords` for the SQL store (mixed into it)."""

    _reader: Engine
    _writer: Engine
    _run: Callable[..., Any]

    async def add_login(self, login: StoredLogin) -> None:
        """Save a login; ``ConflictError`` for a username that exists."""

        def add() -> None:
            with self._writer.begin() as conn:
                conn.execute(
                    smtp_logins.insert().values(
                        username=login.username,
                        tenant=login.tenant,
                        password_hash=login.password_hash,
                        priority=login.priority,
                        created_at=login.created_at,
                    )
                )

        try:
            await self._run(add)
        except IntegrityError:
            raise ConflictError(f"the username {login.username!r} is taken") from None

    async def get_login(self, username: str) -> StoredLogin | None:
        """The saved login of ``username``, or None."""

        def get() -> StoredLogin | None:
            with self._reader.connect() as conn:
                row = conn.execute(
                    select(smtp_logins).where(smtp_logins.c.username == username)
                ).first()
            return _login(row) if row is not None else None

        result: StoredLogin | None = await self._run(get)
        return result

    async def list_logins(self, tenant: str | None = None) -> list[StoredLogin]:
        """Saved logins by username."""

        def rows() -> list[StoredLogin]:
            query = select(smtp_logins).order_by(smtp_logins.c.username)
            if tenant is not None:
                query = query.where(smtp_logins.c.tenant == tenant)
            with self._reader.connect() as conn:
                return [_login(r) for r in conn.execute(query)]

        result: list[StoredLogin] = await self._run(rows)
        return result

    async def delete_login(self, tenant: str, username: str) -> bool:
        """Delete a tenant's login."""

        def delete() -> bool:
            with self._writer.begin() as conn:
                gone = conn.execute(
                    smtp_logins.delete().where(
                        smtp_logins.c.tenant == tenant, smtp_logins.c.username == username
                    )
                ).rowcount
            return bool(gone)

        result: bool = await self._run(delete)
        return result

    async def record_refusals(self, refusals: Sequence[Refusal]) -> None:
        """Add to the log; trim it to the newest :data:`KEEP_REFUSALS`."""
        if not refusals:
            return

        def record() -> None:
            with self._writer.begin() as conn:
                conn.execute(
                    listener_refusals.insert(),
                    [
                        {
                            "at": r.at,
                            "client": r.client[:64],
                            "reply": r.reply[:512],
                            "reason": r.reason,
                            "username": r.username[:128] if r.username else None,
                            "tenant": r.tenant,
                        }
                        for r in refusals
                    ],
                )
                newest = conn.execute(select(func.max(listener_refusals.c.id))).scalar() or 0
                conn.execute(
                    listener_refusals.delete().where(
                        listener_refusals.c.id <= newest - KEEP_REFUSALS
                    )
                )

        await self._run(record)

    async def list_refusals(self, limit: int = 50) -> list[Refusal]:
        """The newest refusals first."""

        def rows() -> list[Refusal]:
            query = select(listener_refusals).order_by(listener_refusals.c.id.desc()).limit(limit)
            with self._reader.connect() as conn:
                return [
                    Refusal(r.at, r.client, r.reply, r.reason, r.username, r.tenant)
                    for r in conn.execute(query)
                ]

        result: list[Refusal] = await self._run(rows)
        return result
