"""Ory's HTTP email delivery format: the JSON that Kratos (or Ory Network) posts with the
default Jsonnet payload of Ory's documentation."""

from __future__ import annotations

from typing import Any

from postroom.errors import InputError
from postroom.intake.enqueue import SendRequest
from postroom.models import TemplateType

_TEMPLATES = {t.value for t in TemplateType} - {
    TemplateType.STUB.value,
    TemplateType.TEST.value,
    TemplateType.RELAY.value,
}


def from_ory(payload: Any, *, tenant: str) -> SendRequest:
    """Turn Ory's payload into a request: Postroom's own template for a known type with the
    payload's values, or the payload's ``subject`` and ``body`` for ``stub`` and unknown types.

    Raise :class:`InputError` naming the missing or wrong field.
    """
    if not isinstance(payload, dict):
        raise InputError("the body must be a JSON object (Ory's HTTP email delivery payload)")
    recipient = payload.get("recipient") or payload.get("to")
    if not isinstance(recipient, str) or not recipient:
        raise InputError("is required", field="recipient")
    template_type = payload.get("template_type")
    if isinstance(template_type, str) and template_type in _TEMPLATES:
        data = {
            key: value
            for key, value in payload.items()
            if key not in {"recipient", "template_type", "to", "subject", "body"}
            and value is not None
        }
        return SendRequest(to=recipient, template_type=template_type, data=data, tenant=tenant)
    subject, body = payload.get("subject"), payload.get("body")
    if not isinstance(subject, str) or not isinstance(body, str):
        raise InputError(
            f"template type {template_type!r} is not one Postroom renders, so the payload must "
            "carry 'subject' and 'body' (add them to your Jsonnet payload)",
            field="template_type",
        )
    return SendRequest(to=recipient, subject=subject, text=body, tenant=tenant)
