"""The SQL store's tenants role: tenants saved through the API and the OAuth2 refresh tokens
kept per tenant (see :class:`~postroom.store.Tenants`)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select, update

from postroom import clock
from postroom.store.base import StoredOAuthToken, StoredTenant
from postroom.store.schema import oauth_tokens, tenants
from postroom.store.sql.engine import SqlEngine
from postroom.store.sql.rows import tenant_from_row, token_from_row


class SqlTenants(SqlEngine):
    """The tenants verbs over SQLAlchemy Core."""

    def _list_tenants_sync(self) -> list[StoredTenant]:
        with self._reader.connect() as conn:
            rows = conn.execute(select(tenants).order_by(tenants.c.id)).all()
        return [tenant_from_row(r) for r in rows]

    async def list_tenants(self) -> list[StoredTenant]:
        """Every tenant saved through the API."""
        return await self._run(self._list_tenants_sync)

    def _get_tenant_sync(self, tenant_id: str) -> StoredTenant | None:
        with self._reader.connect() as conn:
            row = conn.execute(select(tenants).where(tenants.c.id == tenant_id)).first()
        return tenant_from_row(row) if row is not None else None

    async def get_tenant(self, tenant_id: str) -> StoredTenant | None:
        """One saved tenant, or None."""
        return await self._run(lambda: self._get_tenant_sync(tenant_id))

    def _put_tenant_sync(self, tenant_id: str, courier: dict[str, Any]) -> StoredTenant:
        now = clock.utcnow()
        with self._writer.begin() as conn:
            existing = conn.execute(
                select(tenants.c.created_at).where(tenants.c.id == tenant_id)
            ).first()
            if existing is None:
                conn.execute(
                    tenants.insert().values(
                        id=tenant_id, courier=courier, created_at=now, updated_at=now
                    )
                )
                created = now
            else:
                conn.execute(
                    update(tenants)
                    .where(tenants.c.id == tenant_id)
                    .values(courier=courier, updated_at=now)
                )
                created = existing.created_at
        return StoredTenant(tenant_id, courier, created, now)

    async def put_tenant(self, tenant_id: str, courier: dict[str, Any]) -> StoredTenant:
        """Create or replace a saved tenant."""
        return await self._run(lambda: self._put_tenant_sync(tenant_id, courier))

    def _delete_tenant_sync(self, tenant_id: str) -> bool:
        with self._writer.begin() as conn:
            result = conn.execute(tenants.delete().where(tenants.c.id == tenant_id))
            conn.execute(oauth_tokens.delete().where(oauth_tokens.c.tenant == tenant_id))
        return bool(result.rowcount)

    async def delete_tenant(self, tenant_id: str) -> bool:
        """Delete a saved tenant and its kept OAuth2 refresh token; False when there was none."""
        return await self._run(lambda: self._delete_tenant_sync(tenant_id))

    def _tenants_version_sync(self) -> str:
        with self._reader.connect() as conn:
            count, newest = conn.execute(select(func.count(), func.max(tenants.c.updated_at))).one()
        return f"{count}:{newest}"

    async def tenants_version(self) -> str:
        """Changes whenever a saved tenant is created, changed or deleted."""
        return await self._run(self._tenants_version_sync)

    def _get_oauth_token_sync(self, tenant: str) -> StoredOAuthToken | None:
        with self._reader.connect() as conn:
            row = conn.execute(select(oauth_tokens).where(oauth_tokens.c.tenant == tenant)).first()
        return token_from_row(row) if row is not None else None

    async def get_oauth_token(self, tenant: str) -> StoredOAuthToken | None:
        """The kept OAuth2 refresh token of ``tenant``, or None."""
        return await self._run(lambda: self._get_oauth_token_sync(tenant))

    def _put_oauth_token_sync(
        self, tenant: str, refresh_token: str, origin: str | None
    ) -> StoredOAuthToken:
        now = clock.utcnow()
        values = {"refresh_token": refresh_token, "origin": origin, "updated_at": now}
        with self._writer.begin() as conn:
            changed = conn.execute(
                update(oauth_tokens).where(oauth_tokens.c.tenant == tenant).values(**values)
            ).rowcount
            if not changed:
                conn.execute(oauth_tokens.insert().values(tenant=tenant, **values))
        return StoredOAuthToken(tenant, refresh_token, origin, now)

    async def put_oauth_token(
        self, tenant: str, *, refresh_token: str, origin: str | None
    ) -> StoredOAuthToken:
        """Keep ``refresh_token`` for ``tenant``, replacing any before."""
        return await self._run(lambda: self._put_oauth_token_sync(tenant, refresh_token, origin))
