"""The admin API and the intake routes (SPEC.md "HTTP API")."""

from __future__ import annotations

import base64
import binascii
from datetime import UTC, datetime
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Body, Depends, Header, Query, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException

from postroom.config.refresh_tokens import refresh_token_keeper
from postroom.config.tenants import TenantRegistry
from postroom.diagnosis import diagnose
from postroom.diagnosis.smtp_test import SmtpTestReport, run_smtp_test
from postroom.errors import InputError, NotFoundError
from postroom.events.model import DeliveryEvent
from postroom.intake import SendRequest, enqueue
from postroom.intake.ory import from_ory
from postroom.metrics import Metrics
from postroom.models import Message, Status, message_json
from postroom.store import MessageFilter, Store
from postroom.store.records import events_of
from postroom.text import data_problem
from postroom.web.auth import Caller, require_admin, require_intake

router = APIRouter()
Admin = Annotated[Caller, Depends(require_admin)]
Intake = Annotated[Caller, Depends(require_intake)]


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
    # The identity system's own id for the message, echoed in its webhooks.
    reference: str | None = Field(default=None, max_length=255)


def _store(request: Request) -> Store:
    store: Store = request.app.state.store
    return store


def _tenants(request: Request) -> TenantRegistry:
    registry: TenantRegistry = request.app.state.tenants
    return registry


async def exposes_bodies(request: Request, tenant: str) -> bool:
    """Subjects and bodies are shown in dev mode or when the tenant sets
    ``expose_message_bodies``, and read ``<redacted>`` otherwise (API and dashboard alike)."""
    if request.app.state.dev:
        return True
    settings = await _tenants(request).settings()
    return tenant in settings.tenant_names() and settings.tenant(tenant).expose_message_bodies


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
    )
    return await _enqueue(request, caller, send)


def _page_token(message: Message) -> str:
    raw = f"{message.created_at.isoformat()}|{message.id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _parse_page_token(token: str) -> tuple[datetime, str]:
    """The ``(created_at, id)`` a page token carries (a UTC time); raise :class:`InputError`
    for anything :func:`_page_token` would not have written."""
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
        created, _, message_id = raw.partition("|")
        when = datetime.fromisoformat(created)
        if when.tzinfo is None or data_problem(message_id) is not None:
            raise ValueError("not one of ours")
        return when.astimezone(UTC), message_id
    except (ValueError, OverflowError, binascii.Error):  # UnicodeDecodeError is a ValueError
        raise InputError("is not a page token this server gave out", field="page_token") from None


@router.get("/admin/courier/messages", tags=["messages"])
async def list_messages(
    request: Request,
    response: Response,
    _caller: Admin,
    status: Status | None = None,
    recipient: str | None = None,
    tenant: str | None = None,
    template_type: str | None = None,
    provider_message_id: str | None = None,
    page_size: Annotated[int, Query(ge=1, le=500)] = 250,
    page_token: str | None = None,
) -> list[dict[str, Any]]:
    """Messages newest first, like Kratos's admin API; ``Link: <...>; rel="next"`` pages on."""
    before = _parse_page_token(page_token) if page_token else None
    query = MessageFilter(
        status=status,
        recipient=recipient,
        tenant=tenant,
        template_type=template_type,
        provider_message_id=provider_message_id,
        limit=page_size + 1,
        before=before,
    )
    rows = await _store(request).list_messages(query)
    page, more = rows[:page_size], len(rows) > page_size
    params: dict[str, str] = {"page_size": str(page_size)}
    for key, value in (
        ("status", status.value if status else None),
        ("recipient", recipient),
        ("tenant", tenant),
        ("template_type", template_type),
        ("provider_message_id", provider_message_id),
    ):
        if value is not None:
            params[key] = value
    links = [f'</admin/courier/messages?{urlencode(params)}>; rel="first"']
    if more:
        params["page_token"] = _page_token(page[-1])
        links.append(f'</admin/courier/messages?{urlencode(params)}>; rel="next"')
    response.headers["Link"] = ", ".join(links)
    latest = await events_of(_store(request)).latest_events([m.id for m in page])
    return [await _view(request, m) | {"delivery": _delivery(latest.get(m.id))} for m in page]


@router.get("/admin/courier/messages/{message_id}", tags=["messages"])
async def get_message(request: Request, _caller: Admin, message_id: str) -> dict[str, Any]:
    """One message with its dispatches, newest first, its ``delivery`` (the latest event a
    provider reported) and all its ``events``, oldest first."""
    view = await _view(request, await _store(request).get(message_id))
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
    store = _store(request)
    current = await store.get(message_id)
    settings = await _tenants(request).settings()
    courier = (
        settings.tenant(current.tenant)
        if current.tenant in settings.tenant_names()
        else settings.courier
    )
    message = await store.retry(
        message_id, attempts=courier.message_retries + 1, ttl=courier.message_ttl
    )
    return await _view(request, message)


@router.post("/admin/courier/messages/{message_id}/cancel", tags=["messages"])
async def cancel_message(request: Request, _caller: Admin, message_id: str) -> dict[str, Any]:
    """Abandon a queued message with code ``cancelled``."""
    message = await _store(request).cancel(message_id, error=diagnose("cancelled"))
    return await _view(request, message)


# -- Ory intake ----------------------------------------------------------------------------


@router.post("/intake/ory", status_code=202, tags=["intake"])
async def ory_default(
    request: Request, caller: Intake, payload: Annotated[dict[str, Any], Body()]
) -> JSONResponse:
    """Ory's HTTP email delivery payload, for tenant ``default``."""
    return await _enqueue(request, caller, from_ory(payload, tenant="default"))


@router.post("/intake/ory/{tenant}", status_code=202, tags=["intake"])
async def ory_tenant(
    request: Request, caller: Intake, tenant: str, payload: Annotated[dict[str, Any], Body()]
) -> JSONResponse:
    """Ory's HTTP email delivery payload, for ``tenant``."""
    return await _enqueue(request, caller, from_ory(payload, tenant=tenant))


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
    """Create or replace a tenant from its courier section; ``***`` keeps a stored secret."""
    return await _tenants(request).save(tenant_id, courier)


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
    report = await tenant_smtp_test(
        _tenants(request), tenant_id, to=options.to, no_send=options.no_send
    )
    result: dict[str, Any] = report.to_json()
    return result


async def tenant_smtp_test(
    registry: TenantRegistry, tenant_id: str, *, to: str | None, no_send: bool
) -> SmtpTestReport:
    """``test-smtp`` with a tenant's saved settings, as the worker would send: with the
    tenant's private-target rule and its kept OAuth2 sign-in. Used by the API and the
    dashboard; raise ``NotFoundError`` for an unknown tenant."""
    settings = await registry.settings()
    if tenant_id not in settings.tenant_names():
        raise NotFoundError(f"no tenant {tenant_id!r}")
    courier = settings.tenant(tenant_id)
    return await run_smtp_test(
        courier,
        to=to,
        no_send=no_send,
        allow_private_targets=registry.allows_private_targets(tenant_id),
        refresh_tokens=refresh_token_keeper(
            registry.store, courier, tenant_id, secrets=settings.secrets.default
        ),
    )
