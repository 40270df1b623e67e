"""Routes of what happens after the hand-off: the providers' event webhooks (no admin token:
each is verified the way its provider signs it), the suppression list and the webhook
deliveries owed to the identity system."""

from __future__ import annotations

import logging
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.responses import JSONResponse

from postroom.config.tenants import TenantRegistry
from postroom.errors import NotFoundError
from postroom.events.intake import EventIntake
from postroom.events.parse import PayloadError
from postroom.events.verify import Refused
from postroom.store import utcnow
from postroom.store.records import events_of
from postroom.web.auth import Caller, require_admin
from postroom.web.errors import error_response

log = logging.getLogger("postroom.events")
router = APIRouter()
Admin = Annotated[Caller, Depends(require_admin)]


@router.post("/webhooks/{provider}/{tenant}", tags=["events"])
async def provider_events(request: Request, provider: str, tenant: str) -> JSONResponse:
    """A provider's delivery events for ``tenant``: 200 when taken (duplicates are stored
    once), 401 when the request is not proven to be the provider's, stale or replayed."""
    intake: EventIntake = request.app.state.event_intake
    body = await request.body()
    try:
        done = await intake.take(provider, tenant, body, dict(request.headers))
    except Refused as exc:
        log.warning("refused %s events for tenant %s: %s", provider, tenant, exc)
        return error_response(401, "the request is not signed as the provider signs it")
    except PayloadError as exc:
        return error_response(400, str(exc))
    request.app.state.webhook_sender.nudge()
    return JSONResponse(done)


async def _known_tenant(request: Request, tenant_id: str) -> None:
    registry: TenantRegistry = request.app.state.tenants
    if tenant_id not in (await registry.settings()).tenant_names():
        raise NotFoundError(f"no tenant {tenant_id!r}")


@router.get("/admin/tenants/{tenant_id}/suppressions", tags=["suppressions"])
async def list_suppressions(
    request: Request,
    _caller: Admin,
    tenant_id: str,
    search: str | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[dict[str, Any]]:
    """The tenant's suppressed addresses, newest first; ``search`` matches part of one."""
    await _known_tenant(request, tenant_id)
    found = await events_of(request.app.state.store).list_suppressions(
        tenant_id, search=search, now=utcnow(), limit=limit
    )
    return [s.to_json() for s in found]


@router.get("/admin/tenants/{tenant_id}/suppressions/{address}", tags=["suppressions"])
async def get_suppression(
    request: Request, _caller: Admin, tenant_id: str, address: str
) -> dict[str, Any]:
    """One suppressed address; 404 when it is not suppressed."""
    await _known_tenant(request, tenant_id)
    found = await events_of(request.app.state.store).suppression(tenant_id, address, now=utcnow())
    if found is None:
        raise NotFoundError(f"{address} is not suppressed for tenant {tenant_id!r}")
    return found.to_json()


@router.delete(
    "/admin/tenants/{tenant_id}/suppressions/{address}", status_code=204, tags=["suppressions"]
)
async def delete_suppression(
    request: Request, _caller: Admin, tenant_id: str, address: str
) -> Response:
    """Mail the address again."""
    await _known_tenant(request, tenant_id)
    if not await events_of(request.app.state.store).remove_suppression(tenant_id, address):
        raise NotFoundError(f"{address} is not suppressed for tenant {tenant_id!r}")
    return Response(status_code=204)


@router.get("/admin/webhooks/deliveries", tags=["webhooks"])
async def list_deliveries(
    request: Request,
    _caller: Admin,
    tenant: str | None = None,
    message_id: str | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[dict[str, Any]]:
    """Webhook deliveries to the identity system, newest first, with their last answer."""
    found = await events_of(request.app.state.store).list_deliveries(
        tenant=tenant, message_id=message_id, limit=limit
    )
    return [d.to_json() for d in found]
