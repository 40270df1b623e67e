"""The memory store's DKIM keys role (see :class:`~postroom.store.roles.DkimKeys`)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

from postroom.errors import ConflictError
from postroom.store.base import StoredDkimKey, dkim_key_not_found
from postroom.store.memory.state import MemoryState


class MemoryDkimKeys(MemoryState):
    """The DKIM keys verbs in a dict."""

    _dkim: dict[tuple[str, str], StoredDkimKey] | None = None

    def _dkim_rows(self) -> dict[tuple[str, str], StoredDkimKey]:
        if self._dkim is None:
            self._dkim = {}
        return self._dkim

    async def add_dkim_key(self, key: StoredDkimKey) -> None:
        """Keep a new key; ``ConflictError`` when the tenant already has that selector."""
        rows = self._dkim_rows()
        if (key.tenant, key.selector) in rows:
            raise ConflictError(
                f"tenant {key.tenant!r} already has a DKIM key with selector {key.selector!r}"
            )
        rows[key.tenant, key.selector] = key

    async def list_dkim_keys(self, tenant: str | None = None) -> list[StoredDkimKey]:
        """The keys of ``tenant`` (None: every tenant), by tenant then newest first."""
        keys = [k for k in self._dkim_rows().values() if tenant in (None, k.tenant)]
        keys.sort(key=lambda k: k.created_at, reverse=True)
        keys.sort(key=lambda k: k.tenant)
        return keys

    async def activate_dkim_key(self, tenant: str, selector: str) -> StoredDkimKey:
        """Make this key the tenant's active one; the one before is retired."""
        rows = self._dkim_rows()
        if (tenant, selector) not in rows:
            raise dkim_key_not_found(tenant, selector)
        for index, key in list(rows.items()):
            if key.tenant == tenant and key.state == "active":
                rows[index] = replace(key, state="retired")
        active = replace(rows[tenant, selector], state="active", activated_at=datetime.now(UTC))
        rows[tenant, selector] = active
        return active

    async def active_dkim_key(self, tenant: str) -> StoredDkimKey | None:
        """The tenant's active key, or None."""
        for key in self._dkim_rows().values():
            if key.tenant == tenant and key.state == "active":
                return key
        return None
