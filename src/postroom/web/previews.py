"""``GET /admin/templates/preview``: a template type rendered for a tenant in a locale with
sample data, as HTML, plain text or the raw ``.eml`` (admin token required)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request, Response

from postroom.config.tenants import TenantRegistry
from postroom.intake.preview import preview_body, render_preview
from postroom.web.api import Admin

router = APIRouter()

PREVIEW_CSP = (
    "sandbox; default-src 'none'; style-src 'unsafe-inline'; img-src https: data:; "
    "frame-ancestors 'self'"
)
"""A preview may show the tenant's https logo; nothing else loads and nothing runs."""


@router.get("/admin/templates/preview", tags=["templates"])
async def template_preview(
    request: Request,
    _caller: Admin,
    template_type: str,
    tenant: str = "default",
    locale: Annotated[str | None, Query(max_length=35)] = None,
    format: Annotated[str, Query(pattern="^(html|text|eml)$")] = "html",
) -> Response:
    """The template as it would be sent (nothing is stored); ``Content-Language`` names the
    locale it was rendered in after the fallback (``pt-BR`` -> ``pt`` -> tenant -> ``en``)."""
    registry: TenantRegistry = request.app.state.tenants
    settings = await registry.settings()
    registry.check_usable(tenant)
    message = render_preview(settings, template_type, tenant=tenant, locale=locale)
    body, media_type = preview_body(message, format)
    headers = {"Content-Language": message.locale or "en"}
    if format == "html":
        headers["Content-Security-Policy"] = PREVIEW_CSP
    if format == "eml":
        headers["Content-Disposition"] = f'attachment; filename="{message.template_type.value}.eml"'
    return Response(body, media_type=media_type, headers=headers)
