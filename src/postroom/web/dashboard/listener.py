"""The SMTP listener in the dashboard: on a tenant's page, the settings to paste into
Keycloak's realm Email tab, the tenant's logins (made and deleted like the API's), and the
newest refusals; ``/listener`` shows the whole refusal log. The routes that make and delete
logins are the tenant page's (``tenants``)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request, Response

from postroom.service.smtp_logins import NewLogin, connection_settings, list_logins
from postroom.web.dashboard.pages import DashboardRoute, render
from postroom.web.dashboard.session import Session, require_viewer
from postroom.web.state import registry, store

router = APIRouter(route_class=DashboardRoute, include_in_schema=False)
Viewer = Annotated[Session, Depends(require_viewer)]


async def listener_section(
    request: Request, tenant_id: str, *, made: NewLogin | None = None, error: str | None = None
) -> dict[str, Any]:
    """What the tenant page shows about the SMTP listener."""
    tenants = registry(request)
    settings = await tenants.settings()
    if tenant_id not in settings.tenant_names():
        return {}
    return {
        "connection": connection_settings(settings, tenant_id, ports=_ports(request)),
        "logins": await list_logins(tenants, tenant_id),
        "file": tenants.is_file_tenant(tenant_id),
        "made": made,
        "made_yaml": made.yaml(tenant_id) if made is not None and not made.saved else "",
        "error": error,
        "refusals": [r.to_json() for r in await store(request).list_refusals(10)],
    }


@router.get("/listener")
async def refusal_log(request: Request, _viewer: Viewer) -> Response:
    """The newest refusals of the SMTP listener."""
    rows = [r.to_json() for r in await store(request).list_refusals(200)]
    return render(request, "listener.html", title="SMTP listener", nav="listener", rows=rows)


def _ports(request: Request) -> dict[str, int] | None:
    listener = getattr(request.app.state, "listener", None)
    return listener.ports if listener is not None else None
