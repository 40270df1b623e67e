"""Template previews: every template type rendered for a tenant in a locale with sample data,
through the same :func:`~postroom.intake.enqueue.prepare` as a real message (nothing stored),
so what a preview shows is what would be sent."""

from __future__ import annotations

from typing import Any, Literal

from postroom.config import Settings
from postroom.errors import InputError
from postroom.intake.enqueue import SendRequest, prepare
from postroom.intake.validate import validate_template_type
from postroom.models import NewMessage, TemplateType

PREVIEW_RECIPIENT = "alex@example.org"
PREVIEW_CSP = (
    "sandbox; default-src 'none'; style-src 'unsafe-inline'; img-src https: data:; "
    "frame-ancestors 'self'"
)
"""How a preview's HTML is served: it may show the tenant's https logo; nothing else loads and
nothing runs (message pages, which show stored mail, allow no remote image at all)."""
Format = Literal["html", "text", "eml"]
FORMATS: tuple[Format, ...] = ("html", "text", "eml")

_SAMPLE: dict[str, Any] = {
    "identity": {"traits": {"name": {"first": "Alex", "last": "Example"}}},
    "expires_in_minutes": 15,
}
SAMPLES: dict[TemplateType, dict[str, Any]] = {
    TemplateType.LOGIN_CODE_VALID: {"login_code": "482913"},
    TemplateType.REGISTRATION_CODE_VALID: {"registration_code": "605177"},
    TemplateType.VERIFICATION_CODE_VALID: {
        "verification_code": "771204",
        "verification_url": "https://id.example.org/self-service/verification?flow=5f1e&code=771204",
    },
    TemplateType.VERIFICATION_VALID: {
        "verification_url": "https://id.example.org/self-service/verification?flow=5f1e&token=Zm9v",
    },
    TemplateType.RECOVERY_CODE_VALID: {"recovery_code": "319450"},
    TemplateType.RECOVERY_VALID: {
        "recovery_url": "https://id.example.org/self-service/recovery?flow=9a7c&token=YmFy",
    },
    TemplateType.RECOVERY_INVALID: {},
    TemplateType.RECOVERY_CODE_INVALID: {},
    TemplateType.VERIFICATION_INVALID: {},
    TemplateType.VERIFICATION_CODE_INVALID: {},
    TemplateType.VERIFIABLE_ADDRESS_CHANGED: {},
    TemplateType.AUTHENTICATOR_KEY_ADDED: {},
    TemplateType.TEST: {"uri": "smtp://user:***@smtp.example.org:587/"},
}
"""Sample data per type: what Kratos sends for it, with a name and an expiry."""


def preview_request(
    template_type: str, *, tenant: str, locale: str | None, to: str = PREVIEW_RECIPIENT
) -> SendRequest:
    """The request a preview renders: the type's sample data (a sample subject and body for
    ``stub``); raise :class:`InputError` for an unknown type."""
    kind = validate_template_type(template_type, field="template_type")
    if kind is TemplateType.STUB:
        return SendRequest(
            to=to,
            subject="Your weekly summary",
            text="Hello Alex,\n\nThis body was given by the caller, as Kratos's stub templates do.",
            tenant=tenant,
            locale=locale,
        )
    return SendRequest(
        to=to,
        template_type=kind.value,
        data={**_SAMPLE, **SAMPLES[kind]},
        tenant=tenant,
        locale=locale,
    )


def render_preview(
    settings: Settings,
    template_type: str,
    *,
    tenant: str = "default",
    locale: str | None = None,
    to: str = PREVIEW_RECIPIENT,
) -> NewMessage:
    """The message ``template_type`` would be for ``tenant`` in ``locale`` (the tenant's
    default when None), rendered with sample data and not stored; raise :class:`InputError`
    naming a bad tenant, type or locale."""
    return prepare(preview_request(template_type, tenant=tenant, locale=locale, to=to), settings)


def preview_body(message: NewMessage, fmt: str) -> tuple[bytes, str]:
    """The preview in ``fmt`` (html, text or eml) and its media type."""
    if fmt == "html":
        return (message.html_body or "").encode(), "text/html; charset=utf-8"
    if fmt == "text":
        return f"Subject: {message.subject}\n\n{message.body}".encode(), "text/plain; charset=utf-8"
    if fmt == "eml":
        return message.mime, "message/rfc822"
    raise InputError(f"unknown format {fmt!r}; use one of {', '.join(FORMATS)}", field="format")
