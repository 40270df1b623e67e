"""Ory's HTTP email delivery format: the JSON that Kratos (or Ory Network) posts with the
default Jsonnet payload of Ory's documentation."""

from __future__ import annotations

from typing import Any

from postroom.errors import InputError
from postroom.intake.enqueue import SendRequest
from postroom.models import TemplateType
from postroom.render.locales import is_locale_tag

_TEMPLATES = {t.value for t in TemplateType} - {TemplateType.STUB.value, TemplateType.TEST.value}


def _traits_locale(data: Any) -> Any:
    """``identity.traits.locale``, or ``traits.locale`` (Kratos's registration models)."""
    if not isinstance(data, dict):
        return None
    identity = data.get("identity")
    traits = identity.get("traits") if isinstance(identity, dict) else data.get("traits")
    return traits.get("locale") if isinstance(traits, dict) else None


def ory_locale(payload: dict[str, Any]) -> str | None:
    """The locale a Kratos payload asks for: ``locale`` or ``template_data.locale``, else the
    identity's ``traits.locale`` (or ``traits.locale`` where Kratos sends traits alone). A
    value that is not a language tag is ignored (the tenant's default applies) rather than
    refused: Kratos would retry a refused message for ever."""
    nested = payload.get("template_data")
    for value in (
        payload.get("locale"),
        nested.get("locale") if isinstance(nested, dict) else None,
        _traits_locale(nested),
        _traits_locale(payload),
    ):
        if is_locale_tag(value):
            return str(value)
    return None


def from_ory(payload: Any, *, tenant: str) -> SendRequest:
    """Turn Ory's payload into a request: Postroom's own template for a known type with the
    payload's values, or the payload's ``subject`` and ``body`` for ``stub`` and unknown types.

    A ``template_data`` object in the payload (a custom Kratos body passing
    ``ctx.template_data``) is merged into the data; see :func:`ory_locale` for the locale.
    Raise :class:`InputError` naming the missing or wrong field.
    """
    if not isinstance(payload, dict):
        raise InputError("the body must be a JSON object (Ory's HTTP email delivery payload)")
    recipient = payload.get("recipient") or payload.get("to")
    if not isinstance(recipient, str) or not recipient:
        raise InputError("is required", field="recipient")
    template_type = payload.get("template_type")
    locale = ory_locale(payload)
    if isinstance(template_type, str) and template_type in _TEMPLATES:
        nested = payload.get("template_data")
        merged = {**(nested if isinstance(nested, dict) else {}), **payload}
        data = {
            key: value
            for key, value in merged.items()
            if key
            not in {
                "recipient",
                "template_type",
                "to",
                "subject",
                "body",
                "template_data",
                "locale",
            }
            and value is not None
        }
        return SendRequest(
            to=recipient, template_type=template_type, data=data, tenant=tenant, locale=locale
        )
    subject, body = payload.get("subject"), payload.get("body")
    if not isinstance(subject, str) or not isinstance(body, str):
        raise InputError(
            f"template type {template_type!r} is not one Postroom renders, so the payload must "
            "carry 'subject' and 'body' (add them to your Jsonnet payload)",
            field="template_type",
        )
    return SendRequest(to=recipient, subject=subject, text=body, tenant=tenant, locale=locale)
