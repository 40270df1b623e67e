"""DKIM keys made by Postroom (``postroom dkim generate``), per tenant and selector.

The private key is kept encrypted (``enc:v1:``, with ``secrets.default``); at most one key of a
tenant is ``active`` (the one mail is signed with), the others ``inactive`` (made, not yet
switched on) or ``retired`` (switched off by a newer one, kept so its record can be removed
later). Migration 0013 creates the table.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any, Literal, Protocol, TypeVar

from sqlalchemy import Column, Engine, Index, String, Table, Text, select, update
from sqlalchemy.engine import Row
from sqlalchemy.exc import IntegrityError

from postroom.errors import ConflictError, NotFoundError
from postroom.store.schema import UtcDateTime, metadata

T = TypeVar("T")
KeyState = Literal["inactive", "active", "retired"]
ACTIVE_CACHE_SECONDS = 5.0
"""How long a process keeps using the active key it read: an activation made by another
process is seen within this time."""

dkim_keys = Table(
    "dkim_keys",
    metadata,
    Column("tenant", String(128), primary_key=True),
    Column("selector", String(63), primary_key=True),
    Column("domain", String(253), nullable=False),
    Column("algorithm", String(16), nullable=False),
    Column("private_key", Text, nullable=False),  # enc:v1: PEM
    Column("public_key", Text, nullable=False),  # the p= value
    Column("state", String(8), nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("activated_at", UtcDateTime, nullable=True),
    Index("ix_dkim_keys_tenant_state", "tenant", "state"),
)


@dataclass(frozen=True, slots=True)
class StoredDkimKey:
    """One DKIM key of a tenant; ``private_key`` is encrypted (``enc:v1:``)."""

    tenant: str
    selector: str
    domain: str
    algorithm: str
    private_key: str
    public_key: str
    state: KeyState
    created_at: datetime
    activated_at: datetime | None


class DkimKeys(Protocol):
    """Where DKIM keys are kept (every store has it)."""

    async def add_dkim_key(self, key: StoredDkimKey) -> None:
        """Keep a new key; ``ConflictError`` when the tenant already has that selector."""

    async def list_dkim_keys(self, tenant: str | None = None) -> list[StoredDkimKey]:
        """The keys of ``tenant`` (None: every tenant), by tenant then newest first."""

    async def activate_dkim_key(self, tenant: str, selector: str) -> StoredDkimKey:
        """Make this key the tenant's active one (the one before is ``retired``), at once for
        this process; raise ``NotFoundError`` when there is no such key."""

    async def active_dkim_key(self, tenant: str) -> StoredDkimKey | None:
        """The tenant's active key, or None (may be up to ``ACTIVE_CACHE_SECONDS`` old)."""


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


def _no_key(tenant: str, selector: str) -> NotFoundError:
    return NotFoundError(
        f"tenant {tenant!r} has no DKIM key with selector {selector!r}; `postroom dkim list` "
        "shows its keys, `postroom dkim generate` makes one"
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


class SqlDkimKeys:
    """:class:`DkimKeys` for :class:`~postroom.store.sql.SqlStore` (a base class of it)."""

    _reader: Engine
    _writer: Engine
    _run: Callable[[Callable[[], Any]], Awaitable[Any]]
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
                    raise _no_key(tenant, selector)
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


class MemoryDkimKeys:
    """:class:`DkimKeys` for the memory store (a base class of it)."""

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
            raise _no_key(tenant, selector)
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
