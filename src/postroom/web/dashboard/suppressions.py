"""The suppression list page: the addresses each tenant no longer mails, with why and until
when; search by part of an address, and remove one so that it is mailed again."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response

from postroom.store import utcnow
from postroom.store.records import events_of
from postroom.web.dashboard.pages import (
    DashboardRoute,
    form_value,
    query,
    read_form,
    redirect,
    render,
)
from postroom.web.dashboard.session import Session, require_viewer
from postroom.web.state import registry, store

router = APIRouter(route_class=DashboardRoute, include_in_schema=False)
Viewer = Annotated[Session, Depends(require_viewer)]
SHOWN = 200


@router.get("/suppressions")
async def suppression_list(
    request: Request, _viewer: Viewer, tenant: str = "", search: str = ""
) -> Response:
    """Suppressed addresses, newest first."""
    settings = await registry(request).settings()
    found = await events_of(store(request)).list_suppressions(
        tenant.strip() or None, search=search.strip() or None, now=utcnow(), limit=SHOWN
    )
    return render(
        request,
        "suppressions.html",
        title="Suppressions",
        nav="suppressions",
        rows=found,
        tenants=settings.tenant_names(),
        tenant=tenant.strip(),
        search=search.strip(),
    )


@router.post("/suppressions/remove")
async def remove(request: Request, _viewer: Viewer) -> Response:
    """Take one address off a tenant's list."""
    form = await read_form(request)
    tenant, address = form_value(form, "tenant"), form_value(form, "address")
    removed = await events_of(store(request)).remove_suppression(tenant, address)
    return redirect(query("/suppressions", notice="unsuppressed" if removed else "not-suppressed"))
