"""The memory store's tenants and sessions roles (see :class:`~postroom.store.Tenants` and
:class:`~postroom.store.Sessions`)."""

from __future__ import annotations

import copy
from datetime import datetime
from typing import Any

from postroom import clock
from postroom.store.base import StoredOAuthToken, StoredTenant
from postroom.store.memory.state import MemoryState


class MemoryTenants(MemoryState):
    """The tenants verbs in a dict."""

    async def list_tenants(self) -> list[StoredTenant]:
        """Saved tenants by id."""
        return [self._tenants[k] for k in sorted(self._tenants)]

    async def get_tenant(self, tenant_id: str) -> StoredTenant | None:
        """One saved tenant."""
        return self._tenants.get(tenant_id)

    async def put_tenant(self, tenant_id: str, courier: dict[str, Any]) -> StoredTenant:
        """Create or replace a saved tenant."""
        now = clock.utcnow()
        old = self._tenants.get(tenant_id)
        tenant = StoredTenant(
            tenant_id, copy.deepcopy(courier), old.created_at if old else now, now
        )
        self._tenants[tenant_id] = tenant
        self._tenant_changes += 1
        return tenant

    async def delete_tenant(self, tenant_id: str) -> bool:
        """Delete a saved tenant and its kept OAuth2 refresh token."""
        self._tenant_changes += 1
        self._oauth_tokens.pop(tenant_id, None)
        return self._tenants.pop(tenant_id, None) is not None

    async def tenants_version(self) -> str:
        """A counter of tenant changes."""
        return str(self._tenant_changes)

    async def get_oauth_token(self, tenant: str) -> StoredOAuthToken | None:
        """The kept OAuth2 refresh token of ``tenant``."""
        return self._oauth_tokens.get(tenant)

    async def put_oauth_token(
        self, tenant: str, *, refresh_token: str, origin: str | None
    ) -> StoredOAuthToken:
        """Keep ``refresh_token`` for ``tenant``."""
        kept = StoredOAuthToken(tenant, refresh_token, origin, clock.utcnow())
        self._oauth_tokens[tenant] = kept
        return kept


class MemorySessions(MemoryState):
    """The sessions verbs in a dict."""

    async def start_session(self, session_id: str, *, expires_at: datetime) -> None:
        """Record a dashboard session; forget the expired ones."""
        now = clock.utcnow()
        self._sessions = {k: v for k, v in self._sessions.items() if v > now}
        self._sessions[session_id] = expires_at

    async def session_active(self, session_id: str) -> bool:
        """True while the session is recorded and not expired."""
        expires_at = self._sessions.get(session_id)
        return expires_at is not None and expires_at > clock.utcnow()

    async def end_session(self, session_id: str) -> None:
        """Forget the session."""
        self._sessions.pop(session_id, None)
