"""The admin API and the intake routes (docs/http-routes.md)."""

from __future__ import annotations

import uuid
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Body, Depends, Header, Query, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException

from postroom.errors import InputError
from postroom.events.model import DeliveryEvent
from postroom.intake import SendRequest, enqueue
from postroom.intake.ory import from_ory
from postroom.metrics import Metrics
from postroom.models import Message, Priority, Status, message_json
from postroom.service import messages, tenants
from postroom.store import MessageFilter
from postroom.store.records import events_of
from postroom.web.auth import Caller, require_admin, require_intake
from postroom.web.state import exposes_bodies
from postroom.web.state import registry as _tenants
from postroom.web.state import store as _store

router = APIRouter()
Admin = Annotated[Caller, Depends(require_admin)]
Intake = Annotated[Caller, Depends(require_intake)]
DEFAULT_PAGE_SIZE = 250
MAX_PAGE_SIZE = 500


class EnqueueBody(BaseModel):
    """``POST /admin/courier/messages``: a template with data, or a subject and body."""

    model_config = ConfigDict(extra="forbid")

    recipient: str
    template_type: str | None = None
    template_data: dict[str, Any] = Field(default_factory=dict)
    tenant: str = "default"
    subject: str | None = None
    body: str | None = None
    html_body: str | None = None
    priority: str | None = None  # urgent, normal or bulk; default by template type
    locale: str | None = None  # BCP 47, e.g. de or pt-BR; default: the tenant's courier.locale
    # The identity system's own id for the message, echoed in its webhooks.
    reference: str | None = Field(default=None, max_length=255)


async def _view(request: Request, message: Message) -> dict[str, Any]:
    expose = await exposes_bodies(request, message.tenant)
    return message_json(message, expose_bodies=expose)


async def _enqueue(request: Request, caller: Caller, send: SendRequest) -> JSONResponse:
    if not caller.may_enqueue_for(send.tenant):
        raise HTTPException(403, f"this token may not enqueue messages for tenant {send.tenant!r}")
    registry = _tenants(request)
    settings = await registry.settings()
    registry.check_usable(send.tenant)
    [(message, created)] = await enqueue(_store(request), settings, [send])
    if created:
        metrics: Metrics = request.app.state.metrics
        metrics.enqueued.labels(message.tenant).inc()
    return JSONResponse(await _view(request, message), status_code=202)


# -- messages ------------------------------------------------------------------------------


@router.post("/admin/courier/messages", status_code=202, tags=["messages"])
async def create_message(
    request: Request,
    caller: Intake,
    body: EnqueueBody,
    idempotency_key: Annotated[str | None, Header(alias="Idempotency-Key")] = None,
) -> JSONResponse:
    """Enqueue one message. The same ``Idempotency-Key`` (per tenant) returns the same
    message; the same key with a different body answers 409."""
    if body.template_type in (None, "stub") and (body.subject is None or body.body is None):
        raise InputError("give template_type (with template_data), or subject and body")
    send = SendRequest(
        to=body.recipient,
        template_type=body.template_type if body.template_type != "stub" else None,
        data=body.template_data
        if body.reference is None
        else {**body.template_data, "reference": body.reference},
        subject=body.subject,
        text=body.body,
        html=body.html_body,
        tenant=body.tenant,
        idempotency_key=idempotency_key,
        priority=body.priority,
        locale=body.locale,
    )
    return await _enqueue(request, caller, send)


@router.get("/admin/courier/messages", tags=["messages"])
async def list_messages(
    request: Request,
    response: Response,
    _caller: Admin,
    status: Status | None = None,
    recipient: str | None = None,
    tenant: str | None = None,
    template_type: str | None = None,
    priority: Priority | None = None,
    provider_message_id: str | None = None,
    page_size: Annotated[int, Query(ge=0)] = DEFAULT_PAGE_SIZE,
    page_token: str | None = None,
) -> list[dict[str, Any]]:
    """Messages newest first, like Kratos's admin API; ``Link: <...>; rel="next"`` pages on.
    As in Kratos, ``page_size`` above 500 is read as 500, and 0 as the default (250)."""
    page_size = min(page_size, MAX_PAGE_SIZE) or DEFAULT_PAGE_SIZE
    query = MessageFilter(
        status=status,
        recipient=recipient,
        tenant=tenant,
        template_type=template_type,
        priority=priority,
        provider_message_id=provider_message_id,
        limit=page_size,
    )
    page = await messages.list_page(_store(request), query, token=page_token)
    params: dict[str, str] = {"page_size": str(page_size)}
    for key, value in (
        ("status", status.value if status else None),
        ("recipient", recipient),
        ("tenant", tenant),
        ("template_type", template_type),
        ("priority", priority.value if priority else None),
        ("provider_message_id", provider_message_id),
    ):
        if value is not None:
            params[key] = value
    links = [f'</admin/courier/messages?{urlencode(params)}>; rel="first"']
    if page.next_token is not None:
        params["page_token"] = page.next_token
        links.append(f'</admin/courier/messages?{urlencode(params)}>; rel="next"')
    response.headers["Link"] = ", ".join(links)
    latest = await events_of(_store(request)).latest_events([m.id for m in page.messages])
    return [
        await _view(request, m) | {"delivery": _delivery(latest.get(m.id))} for m in page.messages
    ]


def _message_id(message_id: str) -> str:
    """A message id is a UUID, as in Kratos; anything else answers 400, naming the field."""
    try:
        return str(uuid.UUID(message_id))
    except ValueError:
        raise InputError(
            "is not a message id (a UUID like 0190d5c1-1f2a-7b3c-8d4e-5f6a7b8c9d0e)", field="id"
        ) from None


@router.get("/admin/courier/messages/{message_id}", tags=["messages"])
async def get_message(request: Request, _caller: Admin, message_id: str) -> dict[str, Any]:
    """One message with its dispatches, newest first, its ``delivery`` (the latest event a
    provider reported) and all its ``events``, oldest first; 400 for a malformed id."""
    message_id = _message_id(message_id)
    view = await _view(request, await messages.get(_store(request), message_id))
    events = await events_of(_store(request)).events_for(message_id)
    return view | {
        "delivery": _delivery(events[-1] if events else None),
        "events": [e.to_json() for e in events],
    }


def _delivery(event: DeliveryEvent | None) -> dict[str, Any] | None:
    """A message's ``delivery``: its latest event as ``{event, at, reply, diagnosis}``."""
    if event is None:
        return None
    shown = event.to_json()
    return {key: shown[key] for key in ("event", "at", "reply", "diagnosis")}


@router.post("/admin/courier/messages/{message_id}/retry", tags=["messages"])
async def retry_message(request: Request, _caller: Admin, message_id: str) -> dict[str, Any]:
    """Queue an abandoned message again now, with a fresh attempt budget and TTL."""
    settings = await _tenants(request).settings()
    message = await messages.retry(_store(request), settings, _message_id(message_id))
    return await _view(request, message)


@router.post("/admin/courier/messages/{message_id}/cancel", tags=["messages"])
async def cancel_message(request: Request, _caller: Admin, message_id: str) -> dict[str, Any]:
    """Abandon a queued message with code ``cancelled``."""
    message = await messages.cancel(_store(request), _message_id(message_id))
    return await _view(request, message)


# -- Ory intake ----------------------------------------------------------------------------


async def _ory(request: Request, caller: Caller, tenant: str, payload: Any) -> JSONResponse:
    settings = await _tenants(request).settings()
    known = tenant in settings.tenant_names()
    render = settings.tenant(tenant).ory.render if known else "auto"
    return await _enqueue(request, caller, from_ory(payload, tenant=tenant, render=render))


@router.post("/intake/ory", status_code=202, tags=["intake"])
async def ory_default(
    request: Request, caller: Intake, payload: Annotated[dict[str, Any], Body()]
) -> JSONResponse:
    """What Ory Kratos posts (its default body, Ory's documented body, or a custom one
    carrying ``template_data``), for tenant ``default``."""
    return await _ory(request, caller, "default", payload)


@router.post("/intake/ory/{tenant}", status_code=202, tags=["intake"])
async def ory_tenant(
    request: Request, caller: Intake, tenant: str, payload: Annotated[dict[str, Any], Body()]
) -> JSONResponse:
    """What Ory Kratos posts, for ``tenant``."""
    return await _ory(request, caller, tenant, payload)


# -- tenants -------------------------------------------------------------------------------


@router.get("/admin/tenants", tags=["tenants"])
async def list_tenants(request: Request, _caller: Admin) -> list[dict[str, Any]]:
    """Every tenant with its courier section; credentials read ``***``."""
    return await _tenants(request).list()


@router.get("/admin/tenants/{tenant_id}", tags=["tenants"])
async def get_tenant(request: Request, _caller: Admin, tenant_id: str) -> dict[str, Any]:
    """One tenant; credentials read ``***``."""
    return await _tenants(request).describe(tenant_id)


@router.put("/admin/tenants/{tenant_id}", tags=["tenants"])
async def put_tenant(
    request: Request,
    _caller: Admin,
    tenant_id: str,
    courier: Annotated[dict[str, Any], Body()],
) -> dict[str, Any]:
    """Create or replace a tenant from its courier section, or from what ``GET`` answers
    (``{"id", "source", "courier": {...}}``: the read-only fields are ignored); ``***``
    keeps a stored secret."""
    return await _tenants(request).save(tenant_id, _courier_section(courier))


_READ_ONLY = frozenset({"id", "source", "error"})


def _courier_section(body: dict[str, Any]) -> dict[str, Any]:
    """The courier section of a PUT body: the body itself, or its ``courier`` when the body
    is a tenant as ``GET`` shows it."""
    section = body.get("courier")
    if isinstance(section, dict) and set(body) - {"courier"} <= _READ_ONLY:
        return section
    return body


@router.delete("/admin/tenants/{tenant_id}", status_code=204, tags=["tenants"])
async def delete_tenant(request: Request, _caller: Admin, tenant_id: str) -> Response:
    """Delete a tenant saved through the API."""
    await _tenants(request).delete(tenant_id)
    return Response(status_code=204)


class SmtpTestBody(BaseModel):
    """``POST /admin/tenants/{id}/test-smtp``."""

    model_config = ConfigDict(extra="forbid")

    to: str | None = None
    no_send: bool = False


@router.post("/admin/tenants/{tenant_id}/test-smtp", tags=["tenants"])
async def test_smtp(
    request: Request, _caller: Admin, tenant_id: str, body: SmtpTestBody | None = None
) -> dict[str, Any]:
    """Walk the SMTP conversation with the tenant's settings; the test-smtp JSON."""
    options = body or SmtpTestBody()
    report = await tenants.smtp_test(
        _tenants(request), tenant_id, to=options.to, no_send=options.no_send
    )
    result: dict[str, Any] = report.to_json()
    return result
