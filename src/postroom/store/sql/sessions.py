"""The SQL store's sessions role: signed-in dashboard sessions shared by every process (see
:class:`~postroom.store.Sessions`)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select

from postroom import clock
from postroom.store.schema import sessions
from postroom.store.sql.engine import SqlEngine


class SqlSessions(SqlEngine):
    """The sessions verbs over SQLAlchemy Core."""

    def _start_session_sync(self, session_id: str, expires_at: datetime) -> None:
        now = clock.utcnow()
        with self._writer.begin() as conn:
            conn.execute(sessions.delete().where(sessions.c.expires_at <= now))
            conn.execute(
                sessions.insert().values(id=session_id, created_at=now, expires_at=expires_at)
            )

    async def start_session(self, session_id: str, *, expires_at: datetime) -> None:
        """Record a signed-in dashboard session; delete the expired ones."""
        await self._run(lambda: self._start_session_sync(session_id, expires_at))

    def _session_active_sync(self, session_id: str) -> bool:
        with self._reader.connect() as conn:
            found = conn.execute(
                select(sessions.c.id).where(
                    sessions.c.id == session_id, sessions.c.expires_at > clock.utcnow()
                )
            ).first()
        return found is not None

    async def session_active(self, session_id: str) -> bool:
        """True while the session is recorded and not expired."""
        return await self._run(lambda: self._session_active_sync(session_id))

    def _end_session_sync(self, session_id: str) -> None:
        with self._writer.begin() as conn:
            conn.execute(sessions.delete().where(sessions.c.id == session_id))

    async def end_session(self, session_id: str) -> None:
        """Delete the session."""
        await self._run(lambda: self._end_session_sync(session_id))
