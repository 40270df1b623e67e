"""``GET /admin/templates/preview``: a template type rendered for a tenant in a locale with
sample data, as HTML, plain text or the raw ``.eml`` (admin token required)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request, Response

from postroom.intake.preview import PREVIEW_CSP, preview_body, render_preview
from postroom.web.api import Admin
from postroom.web.state import registry

router = APIRouter()


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
    tenants = registry(request)
    settings = await tenants.settings()
    tenants.check_usable(tenant)
    message = render_preview(settings, template_type, tenant=tenant, locale=locale)
    body, media_type = preview_body(message, format)
    headers = {"Content-Language": message.locale or "en"}
    if format == "html":
        headers["Content-Security-Policy"] = PREVIEW_CSP
    if format == "eml":
        headers["Content-Disposition"] = f'attachment; filename="{message.template_type.value}.eml"'
    return Response(body, media_type=media_type, headers=headers)
