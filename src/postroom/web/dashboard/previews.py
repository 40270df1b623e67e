"""Templates: every template type of a tenant in any locale, its HTML beside its plain text,
and "Send me this", which sends the preview through the tenant's SMTP test path (or, for a
tenant without SMTP, enqueues it as a message)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response

from postroom.errors import ConfigError, InputError, NotFoundError
from postroom.intake import enqueue_prepared
from postroom.intake.preview import PREVIEW_CSP, render_preview
from postroom.models import RenderedEmail, TemplateType
from postroom.render.locales import BUILTIN_LOCALES
from postroom.service.tenants import smtp_test
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
TYPES = [t.value for t in TemplateType if t is not TemplateType.RELAY]  # relay: no template


async def _page(
    request: Request,
    *,
    tenant: str,
    locale: str,
    only: str,
    status: int = 200,
    notice: str | None = None,
    error: str | None = None,
) -> Response:
    settings = await registry(request).settings()
    if tenant not in settings.tenant_names():
        raise NotFoundError(f"no tenant {tenant!r}")
    previews = []
    for kind in [only] if only in TYPES else TYPES:
        try:
            message = render_preview(settings, kind, tenant=tenant, locale=locale or None)
        except InputError as exc:
            previews.append({"type": kind, "error": str(exc)})
            continue
        previews.append(
            {
                "type": kind,
                "error": "",
                "locale": message.locale or "en",
                "subject": message.subject,
                "text": message.body,
                "frame": query(
                    "/templates/frame", tenant=tenant, locale=locale, template_type=kind
                ),
            }
        )
    return render(
        request,
        "templates.html",
        status=status,
        title="Templates",
        nav="templates",
        previews=previews,
        tenants=settings.tenant_names(),
        locales=BUILTIN_LOCALES,
        types=TYPES,
        chosen={"tenant": tenant, "locale": locale, "type": only},
        default_locale=settings.tenant(tenant).locale,
        notice=notice,
        error=error,
    )


@router.get("/templates")
async def templates_page(
    request: Request,
    _viewer: Viewer,
    tenant: str = "default",
    locale: str = "",
    template_type: str = "",
) -> Response:
    """Every template type (or one) for a tenant in a locale (default: the tenant's)."""
    return await _page(request, tenant=tenant, locale=locale, only=template_type)


@router.get("/templates/frame")
async def template_frame(
    request: Request, _viewer: Viewer, template_type: str, tenant: str = "default", locale: str = ""
) -> Response:
    """One preview's HTML for the page's sandboxed iframe: no scripts, an opaque origin, and
    no remote content but ``https`` images (the tenant's logo)."""
    settings = await registry(request).settings()
    message = render_preview(settings, template_type, tenant=tenant, locale=locale or None)
    return Response(
        message.html_body or "",
        media_type="text/html; charset=utf-8",
        headers={"Content-Security-Policy": PREVIEW_CSP, "X-Frame-Options": "SAMEORIGIN"},
    )


@router.post("/templates/send")
async def send_preview(request: Request, _viewer: Viewer) -> Response:
    """Send one preview to the address in the form."""
    form = await read_form(request)
    tenant, locale = form_value(form, "tenant"), form_value(form, "locale")
    kind, to = form_value(form, "template_type"), form_value(form, "to")
    tenants = registry(request)
    settings = await tenants.settings()
    try:
        if not to:
            raise InputError("give the address to send the preview to", field="to")
        message = render_preview(settings, kind, tenant=tenant, locale=locale or None, to=to)
        if settings.tenant(tenant).strategy != "smtp":
            tenants.check_usable(tenant)
            [(stored, _created)] = await enqueue_prepared(store(request), settings, [message])
            return redirect(f"/messages/{stored.id}")
        email = RenderedEmail(subject=message.subject, text=message.body, html=message.html_body)
        report = await smtp_test(tenants, tenant, to=to, no_send=False, email=email)
    except (InputError, ConfigError) as exc:
        return await _page(
            request, tenant=tenant, locale=locale, only=kind, status=400, error=str(exc)
        )
    if report.diagnosis is not None:
        diagnosis = report.diagnosis
        return await _page(
            request,
            tenant=tenant,
            locale=locale,
            only=kind,
            status=502,
            error=f"Not sent: {diagnosis.cause} {diagnosis.fix}",
        )
    return await _page(
        request,
        tenant=tenant,
        locale=locale,
        only=kind,
        notice=f"Sent {kind} ({message.locale}) to {to}: the server accepted it.",
    )
