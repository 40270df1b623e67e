"""What every web module reads from the app's state: the store, the tenant registry and
whether a tenant's bodies may be shown (dev mode shows them all). The API and the dashboard
both use these; neither imports the other."""

from __future__ import annotations

from fastapi import Request

from postroom.config.tenants import TenantRegistry
from postroom.service import tenants as tenant_service
from postroom.store import Store


def store(request: Request) -> Store:
    """The app's store."""
    value: Store = request.app.state.store
    return value


def registry(request: Request) -> TenantRegistry:
    """The app's tenant registry."""
    value: TenantRegistry = request.app.state.tenants
    return value


async def exposes_bodies(request: Request, tenant: str) -> bool:
    """Subjects and bodies are shown in dev mode or when the tenant sets
    ``expose_message_bodies``, and read ``<redacted>`` otherwise (API and dashboard alike)."""
    if request.app.state.dev:
        return True
    settings = await registry(request).settings()
    return tenant_service.exposes_bodies(settings, tenant)
