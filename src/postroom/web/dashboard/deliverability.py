"""A tenant's deliverability page: ``doctor``'s checks of its sender domain (or ``?domain=``)
with the record to publish for each problem, and its DKIM keys with their state and record."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response

from postroom.deliverability.service import doctor, record_of
from postroom.errors import InputError, NotFoundError
from postroom.web.dashboard.pages import DashboardRoute, ago, render
from postroom.web.dashboard.session import Session, require_viewer
from postroom.web.state import registry, store

router = APIRouter(route_class=DashboardRoute, include_in_schema=False)
Viewer = Annotated[Session, Depends(require_viewer)]


@router.get("/tenants/{tenant_id}/deliverability")
async def deliverability_page(
    request: Request, _viewer: Viewer, tenant_id: str, domain: str | None = None
) -> Response:
    """Every check of the tenant's sender domain, with its status, code and fix."""
    settings = await registry(request).settings()
    if tenant_id not in settings.tenant_names():
        raise NotFoundError(f"no tenant {tenant_id!r}")
    courier = settings.tenant(tenant_id)
    checked = (domain or courier.smtp.from_address.rpartition("@")[2]).strip().lower()
    error = None
    report = None
    try:
        report = await doctor(store(request), settings, checked, tenant=tenant_id)
    except InputError as exc:
        error = str(exc)
    keys = await store(request).list_dkim_keys(tenant_id)
    now = datetime.now(UTC)
    rows = [
        {
            "selector": k.selector,
            "algorithm": k.algorithm,
            "domain": k.domain,
            "state": k.state,
            "age": ago(k.created_at, now),
            "record": record_of(k),
        }
        for k in keys
    ]
    return render(
        request,
        "deliverability.html",
        title=f"Deliverability of {tenant_id}",
        nav="tenants",
        tenant_id=tenant_id,
        domain=checked,
        report=report,
        keys=rows,
        signs_with=courier.dkim.private_key_path and courier.dkim.selector,
        dkim_domain=courier.dkim.domain,
        error=error,
    )
