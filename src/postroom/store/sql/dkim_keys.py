"""The SQL store's DKIM keys role (see :class:`~postroom.store.roles.DkimKeys`)."""

from __future__ import annotations

import time
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.engine import Row
from sqlalchemy.exc import IntegrityError

from postroom.errors import ConflictError
from postroom.store.base import StoredDkimKey, dkim_key_not_found
from postroom.store.schema import dkim_keys
from postroom.store.sql.engine import SqlEngine

ACTIVE_CACHE_SECONDS = 5.0
"""How long a process keeps using the active key it read: an activation made by another
process is seen within this time."""


def _key(row: Row[Any]) -> StoredDkimKey:
    return StoredDkimKey(
        tenant=row.tenant,
        selector=row.selector,
        domain=row.domain,
        algorithm=row.algorithm,
        private_key=row.private_key,
        public_key=row.public_key,
        state=row.state,
        created_at=row.created_at,
        activated_at=row.activated_at,
    )


class _ActiveCache:
    """The active key per tenant, remembered for ``ACTIVE_CACHE_SECONDS``."""

    def __init__(self) -> None:
        self._active: dict[str, tuple[float, StoredDkimKey | None]] = {}

    def get(self, tenant: str) -> tuple[bool, StoredDkimKey | None]:
        hit = self._active.get(tenant)
        if hit is None or time.monotonic() - hit[0] > ACTIVE_CACHE_SECONDS:
            return False, None
        return True, hit[1]

    def put(self, tenant: str, key: StoredDkimKey | None) -> None:
        self._active[tenant] = (time.monotonic(), key)


class SqlDkimKeys(SqlEngine):
    """The DKIM keys verbs over SQLAlchemy Core."""

    _dkim_cache: _ActiveCache | None = None

    def _dkim_active_cache(self) -> _ActiveCache:
        if self._dkim_cache is None:
            self._dkim_cache = _ActiveCache()
        return self._dkim_cache

    async def add_dkim_key(self, key: StoredDkimKey) -> None:
        """Keep a new key; ``ConflictError`` when the tenant already has that selector."""

        def add() -> None:
            try:
                with self._writer.begin() as conn:
                    conn.execute(dkim_keys.insert().values(**_values(key)))
            except IntegrityError:
                raise ConflictError(
                    f"tenant {key.tenant!r} already has a DKIM key with selector "
                    f"{key.selector!r}; choose another selector (for example one with the date)"
                ) from None

        await self._run(add)

    async def list_dkim_keys(self, tenant: str | None = None) -> list[StoredDkimKey]:
        """The keys of ``tenant`` (None: every tenant), by tenant then newest first."""

        def read() -> list[StoredDkimKey]:
            query = select(dkim_keys).order_by(dkim_keys.c.tenant, dkim_keys.c.created_at.desc())
            if tenant is not None:
                query = query.where(dkim_keys.c.tenant == tenant)
            with self._reader.connect() as conn:
                return [_key(row) for row in conn.execute(query)]

        result: list[StoredDkimKey] = await self._run(read)
        return result

    async def activate_dkim_key(self, tenant: str, selector: str) -> StoredDkimKey:
        """Make this key the tenant's active one; the one before is retired."""

        def activate() -> StoredDkimKey:
            now = datetime.now(UTC)
            mine = (dkim_keys.c.tenant == tenant) & (dkim_keys.c.selector == selector)
            with self._writer.begin() as conn:
                row = conn.execute(select(dkim_keys).where(mine).with_for_update()).first()
                if row is None:
                    raise dkim_key_not_found(tenant, selector)
                conn.execute(
                    update(dkim_keys)
                    .where(dkim_keys.c.tenant == tenant, dkim_keys.c.state == "active")
                    .values(state="retired")
                )
                conn.execute(update(dkim_keys).where(mine).values(state="active", activated_at=now))
            return replace(_key(row), state="active", activated_at=now)

        key: StoredDkimKey = await self._run(activate)
        self._dkim_active_cache().put(tenant, key)
        return key

    async def active_dkim_key(self, tenant: str) -> StoredDkimKey | None:
        """The tenant's active key, or None."""
        cache = self._dkim_active_cache()
        hit, cached = cache.get(tenant)
        if hit:
            return cached

        def read() -> StoredDkimKey | None:
            query = select(dkim_keys).where(
                dkim_keys.c.tenant == tenant, dkim_keys.c.state == "active"
            )
            with self._reader.connect() as conn:
                row = conn.execute(query).first()
            return None if row is None else _key(row)

        key: StoredDkimKey | None = await self._run(read)
        cache.put(tenant, key)
        return key


def _values(key: StoredDkimKey) -> dict[str, Any]:
    return {
        "tenant": key.tenant,
        "selector": key.selector,
        "domain": key.domain,
        "algorithm": key.algorithm,
        "private_key": key.private_key,
        "public_key": key.public_key,
        "state": key.state,
        "created_at": key.created_at,
        "activated_at": key.activated_at,
    }
