"""Admin routes of the SMTP listener: a tenant's logins, and the log of refusals."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response
from pydantic import BaseModel, ConfigDict

from postroom.config.listener import Priority
from postroom.config.tenants import TenantRegistry
from postroom.errors import ConflictError
from postroom.service.smtp_logins import (
    connection_settings,
    create_login,
    delete_login,
    list_logins,
)
from postroom.store import Store
from postroom.web.auth import Caller, require_admin

router = APIRouter()
Admin = Annotated[Caller, Depends(require_admin)]


class LoginBody(BaseModel):
    """``POST /admin/tenants/{id}/smtp-logins``: both optional."""

    model_config = ConfigDict(extra="forbid")

    username: str | None = None
    priority: Priority = "urgent"


def _tenants(request: Request) -> TenantRegistry:
    registry: TenantRegistry = request.app.state.tenants
    return registry


@router.post("/admin/tenants/{tenant_id}/smtp-logins", status_code=201, tags=["listener"])
async def add_smtp_login(
    request: Request, _caller: Admin, tenant_id: str, body: LoginBody | None = None
) -> dict[str, Any]:
    """A new login with a generated password, shown in this answer only."""
    options = body or LoginBody()
    registry = _tenants(request)
    if registry.is_file_tenant(tenant_id):
        raise ConflictError(
            f"tenant {tenant_id!r} is declared in the configuration file; add its logins "
            "there (`postroom listener add-login` prints the lines to paste)"
        )
    login = await create_login(
        registry, tenant_id, username=options.username, priority=options.priority
    )
    return {"username": login.username, "password": login.password}


@router.get("/admin/tenants/{tenant_id}/smtp-logins", tags=["listener"])
async def get_smtp_logins(request: Request, _caller: Admin, tenant_id: str) -> dict[str, Any]:
    """The tenant's logins (never a password) and the settings to give an SMTP client."""
    registry = _tenants(request)
    logins = await list_logins(registry, tenant_id)
    settings = await registry.settings()
    listener = getattr(request.app.state, "listener", None)
    ports = listener.ports if listener is not None else None
    return {
        "logins": logins,
        "connection": connection_settings(settings, tenant_id, ports=ports),
    }


@router.delete(
    "/admin/tenants/{tenant_id}/smtp-logins/{username}", status_code=204, tags=["listener"]
)
async def delete_smtp_login(
    request: Request, _caller: Admin, tenant_id: str, username: str
) -> Response:
    """Delete a login; a client using it is refused from its next AUTH on."""
    await delete_login(_tenants(request), tenant_id, username)
    listener = getattr(request.app.state, "listener", None)
    if listener is not None:
        listener.auth.forget(username)
    return Response(status_code=204)


@router.get("/admin/listener/refusals", tags=["listener"])
async def get_refusals(
    request: Request, _caller: Admin, limit: Annotated[int, Query(ge=1, le=1000)] = 50
) -> dict[str, Any]:
    """The newest refusals of the SMTP listener, newest first."""
    store: Store = request.app.state.store
    return {"refusals": [r.to_json() for r in await store.list_refusals(limit)]}
