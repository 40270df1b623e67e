"""Ory's HTTP email delivery format: whatever JSON Ory Kratos (or Ory Network) posts.

Three shapes arrive, and all three are read here:

- the Kratos binary's own default body (the ``default`` of ``courier.http.request_config.body``
  in Kratos's configuration schema): nine keys, the codes of recovery and verification only,
  and Kratos's rendered ``subject`` and ``body``;
- the eleven-key body of Ory's documentation, which adds ``login_code`` and
  ``registration_code`` (its ``subject`` and ``body`` are ``null`` for Kratos's own messages);
- a custom body that passes Kratos's context on: ``recipient``, ``template_type`` and
  ``template_data`` (an object), perhaps with ``subject``, ``body`` and ``html_body``.

Which text is sent is the tenant's ``courier.ory.render``: ``auto`` (Postroom's template when
the payload carries the value it needs, else Kratos's subject and body), ``postroom`` (always
Postroom's template: a payload without its value is refused) or ``kratos`` (Kratos's subject and
body whenever they are there, so customised Kratos templates are kept).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any, Literal

from postroom.errors import InputError
from postroom.intake.enqueue import SendRequest
from postroom.intake.validate import REQUIRED_DATA
from postroom.models import TemplateType, default_priority
from postroom.render.locales import is_locale_tag

Render = Literal["postroom", "kratos", "auto"]

_TEMPLATES = {t.value for t in TemplateType} - {
    TemplateType.STUB.value,
    TemplateType.TEST.value,
    TemplateType.RELAY.value,
}
# Top-level keys that are Kratos's envelope, not template data.
_ENVELOPE = {
    "recipient",
    "template_type",
    "template_data",
    "to",
    "subject",
    "body",
    "html_body",
    "message_type",
    "priority",
}


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


def _present(value: Any) -> bool:
    return value is not None and str(value).strip() != ""


def _template_data(payload: dict[str, Any]) -> dict[str, Any]:
    """``template_data`` (a custom body) overlaid with the flat keys (Ory's bodies), nulls
    dropped: a flat ``null`` never hides a value that ``template_data`` carries."""
    nested = payload.get("template_data")
    if nested is not None and not isinstance(nested, dict):
        raise InputError("must be a JSON object when given", field="template_data")
    data = {k: v for k, v in (nested or {}).items() if v is not None}
    data.update({k: v for k, v in payload.items() if k not in _ENVELOPE and v is not None})
    return data


def _kratos_text(
    payload: dict[str, Any], *, recipient: str, tenant: str, template_type: Any
) -> SendRequest | None:
    """The message as Kratos rendered it, or None when the payload carries no subject and body."""
    subject, body, html = payload.get("subject"), payload.get("body"), payload.get("html_body")
    if not isinstance(subject, str) or not isinstance(body, str) or not subject.strip():
        return None
    data = {"kratos_template_type": template_type} if isinstance(template_type, str) else {}
    return SendRequest(
        to=recipient,
        data=data,
        # A subject template's trailing newline (or a folded line) is not worth a refusal:
        # one line, as Kratos itself would send it.
        subject=" ".join(subject.split()),
        text=body,
        html=html if isinstance(html, str) and html.strip() else None,
        tenant=tenant,
    )


def from_ory(payload: Any, *, tenant: str, render: Render = "auto") -> SendRequest:
    """Turn what Kratos posted into a request: Postroom's template with the payload's values,
    or Kratos's own ``subject`` and ``body``, as the tenant's ``render`` says (module docstring).
    Its lane is the payload's ``priority`` (urgent, normal or bulk), else its template type's
    (a login code rendered by Kratos is as urgent as one rendered by Postroom).

    Raise :class:`InputError` naming the missing or wrong field, and what to change.
    """
    request = _from_ory(payload, tenant=tenant, render=render)
    priority = payload.get("priority")
    if priority is not None and not isinstance(priority, str):
        raise InputError("must be urgent, normal or bulk", field="priority")
    kind = payload.get("template_type")
    if priority is None and isinstance(kind, str) and kind in _TEMPLATES:
        priority = default_priority(TemplateType(kind)).value
    return replace(request, priority=priority)


def _from_ory(payload: Any, *, tenant: str, render: Render) -> SendRequest:
    if not isinstance(payload, dict):
        raise InputError("the body must be a JSON object (Ory's HTTP email delivery payload)")
    data = _template_data(payload)
    recipient = payload.get("recipient") or payload.get("to") or data.get("to")
    if not isinstance(recipient, str) or not recipient:
        raise InputError("is required", field="recipient")
    template_type = payload.get("template_type")
    locale = ory_locale(payload)
    data.pop("locale", None)
    kratos = _kratos_text(payload, recipient=recipient, tenant=tenant, template_type=template_type)
    if kratos is not None:
        kratos = replace(kratos, locale=locale)
    if render == "kratos" and kratos is not None:
        return kratos
    if isinstance(template_type, str) and template_type in _TEMPLATES:
        needed = REQUIRED_DATA.get(TemplateType(template_type))
        has_data = needed is None or _present(data.get(needed))
        if has_data or render == "postroom" or kratos is None:
            data.pop("to", None)
            if not has_data and render == "postroom":
                raise InputError(
                    f"{template_type} needs {needed!r}, which this payload does not carry, and "
                    "this tenant's courier.ory.render is 'postroom'; send a body that carries "
                    f"{needed!r} (Ory's documented eleven-key body does), or set "
                    "courier.ory.render to 'auto' to send Kratos's subject and body instead",
                    field=needed,
                )
            return SendRequest(
                to=recipient, template_type=template_type, data=data, tenant=tenant, locale=locale
            )
    if kratos is None:
        raise InputError(
            f"template type {template_type!r} is not one Postroom renders, so the payload must "
            "carry 'subject' and 'body' (add them to your Jsonnet payload)",
            field="template_type",
        )
    return kratos
