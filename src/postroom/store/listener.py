"""What the SMTP listener keeps: the logins that API tenants manage, the newest refusals, and
the MIME of mail for several recipients, stored once.

:class:`ListenerRecords` is the role; :class:`MemoryListenerRecords` gives it to the memory
store, and :class:`~postroom.store.listener_sql.SqlListenerRecords` to the SQL store, whose
module also has the tables and the shared-body helpers. Nothing here imports SQLAlchemy.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from postroom.errors import ConflictError

KEEP_REFUSALS = 1000
"""How many refusals the log keeps (the oldest go first)."""


@dataclass(frozen=True, slots=True)
class StoredLogin:
    """A listener login saved through the API or the CLI; the password only as a hash."""

    username: str
    tenant: str
    password_hash: str
    priority: str
    created_at: datetime


@dataclass(frozen=True, slots=True)
class Refusal:
    """One refused step of an SMTP session: who, when, the reply sent, and why."""

    at: datetime
    client: str
    reply: str
    reason: str
    username: str | None = None
    tenant: str | None = None

    def to_json(self) -> dict[str, Any]:
        """The refusal as the API and ``listener log --json`` show it."""
        return {
            "at": self.at.isoformat().replace("+00:00", "Z"),
            "client": self.client,
            "reply": self.reply,
            "reason": self.reason,
            "username": self.username,
            "tenant": self.tenant,
        }


class ListenerRecords(Protocol):
    """The store's role for the SMTP listener. Every method is a coroutine."""

    async def add_login(self, login: StoredLogin) -> None:
        """Save a login; raise ``ConflictError`` when the username exists (in any tenant)."""

    async def get_login(self, username: str) -> StoredLogin | None:
        """The saved login of ``username``, or None."""

    async def list_logins(self, tenant: str | None = None) -> list[StoredLogin]:
        """Saved logins (of ``tenant``, or every one), by username."""

    async def delete_login(self, tenant: str, username: str) -> bool:
        """Delete a tenant's login; False when it has none of that name."""

    async def record_refusals(self, refusals: Sequence[Refusal]) -> None:
        """Add refusals to the log, which keeps the newest :data:`KEEP_REFUSALS`."""

    async def list_refusals(self, limit: int = 50) -> list[Refusal]:
        """The newest refusals, newest first."""


class MemoryListenerRecords:
    """:class:`ListenerRecords` in dicts (mixed into the memory store)."""

    _logins: dict[str, StoredLogin]
    _refusals: list[Refusal]

    def _listener_state(self) -> None:
        if not hasattr(self, "_logins"):
            self._logins, self._refusals = {}, []

    async def add_login(self, login: StoredLogin) -> None:
        """Save a login; ``ConflictError`` for a username that exists."""
        self._listener_state()
        if login.username in self._logins:
            raise ConflictError(f"the username {login.username!r} is taken")
        self._logins[login.username] = login

    async def get_login(self, username: str) -> StoredLogin | None:
        """The saved login of ``username``, or None."""
        self._listener_state()
        return self._logins.get(username)

    async def list_logins(self, tenant: str | None = None) -> list[StoredLogin]:
        """Saved logins by username."""
        self._listener_state()
        return sorted(
            (x for x in self._logins.values() if tenant is None or x.tenant == tenant),
            key=lambda x: x.username,
        )

    async def delete_login(self, tenant: str, username: str) -> bool:
        """Delete a tenant's login."""
        self._listener_state()
        found = self._logins.get(username)
        if found is None or found.tenant != tenant:
            return False
        del self._logins[username]
        return True

    async def record_refusals(self, refusals: Sequence[Refusal]) -> None:
        """Add to the log; keep the newest :data:`KEEP_REFUSALS`."""
        self._listener_state()
        self._refusals.extend(refusals)
        del self._refusals[:-KEEP_REFUSALS]
        await asyncio.sleep(0)

    async def list_refusals(self, limit: int = 50) -> list[Refusal]:
        """The newest refusals first."""
        self._listener_state()
        return self._refusals[::-1][:limit]


def now() -> datetime:
    """The current time, timezone-aware UTC."""
    return datetime.now(UTC)
