"""Tenants: the list, the provider settings form with its preset picker (API tenants; file
tenants are shown read-only), and "Send test email" with the step-by-step transcript."""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import urlsplit

from fastapi import APIRouter, Depends, Request, Response

from postroom.config.settings import CourierSettings
from postroom.deliverability.service import verdict
from postroom.errors import ConfigError, ConflictError, InputError, NotFoundError
from postroom.presets import PRESETS
from postroom.service.smtp_logins import create_login, delete_login
from postroom.service.tenants import IntakeToken, smtp_test, with_intake_token
from postroom.transports.smtp_probe import SmtpTestReport
from postroom.web.dashboard import tenant_form
from postroom.web.dashboard.listener import listener_section
from postroom.web.dashboard.pages import (
    NOTICES,
    DashboardRoute,
    duration,
    form_value,
    query,
    read_form,
    redirect,
    render,
)
from postroom.web.dashboard.session import Session, require_viewer
from postroom.web.dashboard.tenant_form import TenantForm
from postroom.web.state import registry, store

router = APIRouter(route_class=DashboardRoute, include_in_schema=False)
Viewer = Annotated[Session, Depends(require_viewer)]


def _target(courier: CourierSettings) -> str:
    """Where the tenant delivers, safe to show: the redacted URI, the API URL, the outbox."""
    strategy = courier.strategy
    if strategy == "smtp":
        uri = courier.smtp.uri()
        return uri.redacted() if uri else ""
    if strategy == "http":
        url = urlsplit(courier.http.request_config.url or "")
        host = url.hostname or ""
        port = f":{url.port}" if url.port else ""
        return f"{url.scheme}://{host}{port}{url.path}" if host else ""  # no userinfo, no query
    return courier.outbox_path


@router.get("/tenants")
async def tenant_list(request: Request, _viewer: Viewer) -> Response:
    """Every tenant: where it delivers and from which address."""
    tenants = registry(request)
    settings = await tenants.settings()
    rows = []
    for name in settings.tenant_names():
        courier = settings.tenant(name)
        rows.append(
            {
                "id": name,
                "file": tenants.is_file_tenant(name),
                "strategy": courier.strategy,
                "preset": courier.preset or "",
                "target": _target(courier),
                "from_address": courier.smtp.from_address,
                "limits": [
                    f"{r.count:,} {r.unit} per {duration(r.per)}"
                    for r in courier.effective_rate_limits
                ],
                "error": "",
            }
        )
    for name, reason in tenants.broken_tenants().items():
        rows.append(
            {
                "id": name,
                "file": False,
                "strategy": "",
                "preset": "",
                "target": "",
                "from_address": "",
                "limits": [],
                "error": reason,
            }
        )
    return render(request, "tenants.html", title="Tenants", nav="tenants", rows=rows)


async def _tenant_page(
    request: Request,
    tenant_id: str | None,
    *,
    form: TenantForm | None = None,
    status: int = 200,
    **extra: Any,
) -> Response:
    tenants = registry(request)
    source = "new"
    if tenant_id is not None:
        described = await tenants.describe(tenant_id)
        source = described["source"]
        extra.setdefault("error", described.get("error"))
        if form is None:
            form = tenant_form.form_from_courier(described["courier"])
    form = form or TenantForm()
    settings = await tenants.settings()
    usable = tenant_id is not None and tenant_id in settings.tenant_names()
    courier = settings.tenant(tenant_id) if usable and tenant_id is not None else None
    preset = PRESETS.get(form.preset)
    if "listener" not in extra:
        extra["listener"] = await listener_section(request, tenant_id) if tenant_id else {}
    extra.setdefault("report", None)
    extra.setdefault("deliverability", None)
    extra.setdefault("test_to", "")
    extra.setdefault("new_id", "")
    extra.setdefault("new_token", None)
    return render(
        request,
        "tenant.html",
        status=status,
        title=f"Tenant {tenant_id}" if tenant_id else "New tenant",
        nav="tenants",
        tenant_id=tenant_id,
        source=source,
        readonly=source == "file",
        form=form,
        preset=tenant_form.preset_choice(preset) if preset else None,
        presets=tenant_form.preset_choices(),
        security_modes=tenant_form.SECURITY_MODES,
        strategies=tenant_form.STRATEGIES,
        methods=tenant_form.HTTP_METHODS,
        auth_kinds=tenant_form.HTTP_AUTH,
        can_test=bool(courier and courier.smtp.connection_uri),
        target=_target(courier) if courier else "",
        **extra,
    )


@router.get("/tenants/new")
async def new_tenant(request: Request, _viewer: Viewer) -> Response:
    """An empty form for a tenant saved through the dashboard (like ``PUT /admin/tenants``)."""
    return await _tenant_page(request, None)


@router.get("/tenants/{tenant_id}")
async def tenant_page(request: Request, _viewer: Viewer, tenant_id: str) -> Response:
    """One tenant's settings; editable for API tenants, read-only for the file's."""
    return await _tenant_page(request, tenant_id)


async def _save(request: Request, tenant_id: str | None) -> Response:
    form = await read_form(request)
    tenants = registry(request)
    name = tenant_id if tenant_id is not None else form_value(form, "id")
    stored_courier: dict[str, Any] = {}
    if tenant_id is not None:
        stored_courier = (await tenants.describe(tenant_id))["courier"]
    try:
        if tenant_id is None:
            if not name:
                raise InputError("give the new tenant an id", field="id")
            if name in (await tenants.settings()).tenant_names():
                raise InputError(f"a tenant {name!r} exists already; edit it instead", field="id")
        courier = tenant_form.courier_from_form(form, stored_courier)
        token = tenant_form.intake_token_from_form(form)
        if token is not None:
            courier = with_intake_token(courier, token)
        await tenants.save(name, courier)
    except (InputError, ConfigError, ConflictError) as exc:
        shown = tenant_form.form_from_submission(
            form, tenant_form.form_from_courier(stored_courier)
        )
        return await _tenant_page(
            request, tenant_id, form=shown, status=400, error=str(exc), new_id=name
        )
    if token is None:
        return redirect(query(f"/tenants/{name}", notice="saved"))
    return await _saved_with_token(request, name, token)


async def _saved_with_token(request: Request, name: str, token: IntakeToken) -> Response:
    """The saved tenant's page, answered at once instead of a redirect: a made token is shown
    this once, with what to paste into Ory Kratos."""
    return await _tenant_page(
        request,
        name,
        notice=NOTICES["saved"],
        new_token=token,
        intake_url=f"{str(request.base_url).rstrip('/')}/intake/ory/{name}",
    )


@router.post("/tenants/new")
async def create_tenant(request: Request, _viewer: Viewer) -> Response:
    """Save a new API tenant."""
    return await _save(request, None)


@router.post("/tenants/{tenant_id}")
async def save_tenant(request: Request, _viewer: Viewer, tenant_id: str) -> Response:
    """Save an API tenant's settings; a file tenant answers with the read-only page."""
    return await _save(request, tenant_id)


@router.post("/tenants/{tenant_id}/test")
async def test_tenant(request: Request, _viewer: Viewer, tenant_id: str) -> Response:
    """``test-smtp`` with the tenant's saved settings; the page shows the transcript."""
    form = await read_form(request)
    to = form_value(form, "to")
    report: SmtpTestReport | None = None
    error = None
    try:
        report = await smtp_test(
            registry(request), tenant_id, to=to or None, no_send=form.get("no_send") == "on"
        )
    except (InputError, ConfigError) as exc:
        error = str(exc)
    checked = None
    if report is not None:
        settings = await registry(request).settings()
        sender = report.sender or settings.tenant(tenant_id).smtp.from_address
        checked = await verdict(store(request), settings, tenant_id, sender)
    return await _tenant_page(
        request,
        tenant_id,
        status=200 if error is None else 400,
        report=report,
        deliverability=checked,
        test_to=to,
        error=error,
    )


@router.post("/tenants/{tenant_id}/smtp-logins")
async def add_login(request: Request, _viewer: Viewer, tenant_id: str) -> Response:
    """Make an SMTP listener login with a generated password, shown on the page this once
    (for a tenant of the file: with the lines to paste there)."""
    form = await read_form(request)
    try:
        made = await create_login(
            registry(request), tenant_id, username=form_value(form, "username") or None
        )
    except (InputError, ConflictError, NotFoundError) as exc:
        section = await listener_section(request, tenant_id, error=str(exc))
        return await _tenant_page(request, tenant_id, status=400, listener=section)
    section = await listener_section(request, tenant_id, made=made)
    return await _tenant_page(request, tenant_id, listener=section)


@router.post("/tenants/{tenant_id}/smtp-logins/{username}/delete")
async def remove_login(
    request: Request, _viewer: Viewer, tenant_id: str, username: str
) -> Response:
    """Delete an SMTP listener login; a client using it is refused from its next AUTH on."""
    await read_form(request)
    try:
        await delete_login(registry(request), tenant_id, username)
    except (ConflictError, NotFoundError) as exc:
        section = await listener_section(request, tenant_id, error=str(exc))
        return await _tenant_page(request, tenant_id, status=400, listener=section)
    listener = getattr(request.app.state, "listener", None)
    if listener is not None:
        listener.auth.forget(username)
    return redirect(query(f"/tenants/{tenant_id}", notice="login deleted") + "#smtp-listener")
