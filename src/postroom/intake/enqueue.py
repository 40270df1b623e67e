"""Intake: validate a request, render it, and store it durably before saying yes.

The API and the CLI are thin adapters over :func:`prepare` and :func:`enqueue`.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from postroom.clock import utcnow
from postroom.config import Settings
from postroom.deliverability.signer import sign_all, signing_key
from postroom.errors import DuplicateRequestError, InputError, TemplateError
from postroom.events.suppress import admit
from postroom.intake.priority import content_hash, parse_priority, tenant_budget
from postroom.intake.validate import (
    MAX_BODY,
    MAX_SUBJECT,
    validate_address,
    validate_required_data,
    validate_template_type,
    validate_text,
)
from postroom.models import Message, NewMessage, TemplateType
from postroom.render.locales import fallback_chain, normalize_locale
from postroom.render.mime import build_mime
from postroom.render.templates import render_email
from postroom.store import Intake
from postroom.text import check_data

MAX_DATA = 64 * 1024  # bytes of template_data JSON


@dataclass(frozen=True, slots=True)
class SendRequest:
    """One message as a caller asks for it: a template with data, or a ready subject and body."""

    to: str
    template_type: str | None = None
    data: dict[str, Any] = field(default_factory=dict)
    subject: str | None = None
    text: str | None = None
    html: str | None = None
    tenant: str = "default"
    idempotency_key: str | None = None
    priority: str | None = None  # None: the template type's default
    locale: str | None = None  # BCP 47; None: the tenant's courier.locale

    @classmethod
    def from_mapping(cls, raw: Any) -> SendRequest:
        """Build from a JSON object with the documented bulk keys; raise :class:`InputError`."""
        if not isinstance(raw, dict):
            raise InputError("each line must be a JSON object")
        allowed = {
            "to",
            "template",
            "data",
            "subject",
            "text",
            "html",
            "tenant",
            "idempotency_key",
            "priority",
            "locale",
            "reference",
        }
        unknown = sorted(set(raw) - allowed)
        if unknown:
            raise InputError(
                f"unknown key; allowed: {', '.join(sorted(allowed))}", field=unknown[0]
            )
        data = raw.get("data") or {}
        if raw.get("reference") is not None and isinstance(data, dict):
            # The identity system's own id, echoed in its webhooks (template_data.reference).
            data = {**data, "reference": raw["reference"]}
        return cls(
            to=raw.get("to", ""),
            template_type=raw.get("template"),
            data=data,
            subject=raw.get("subject"),
            text=raw.get("text"),
            html=raw.get("html"),
            tenant=raw.get("tenant") or "default",
            idempotency_key=raw.get("idempotency_key"),
            priority=raw.get("priority"),
            locale=raw.get("locale"),
        )


def prepare(request: SendRequest, settings: Settings) -> NewMessage:
    """Validate and render one request into the exact message that will be sent.

    Raise :class:`InputError` naming the field for anything invalid: also for text that is
    not text (a NUL, a lone surrogate), NaN or Infinity, or data nested too deeply, anywhere.
    """
    for name, value in (
        ("to", request.to),
        ("tenant", request.tenant),
        ("template", request.template_type),
        ("data", request.data),
        ("subject", request.subject),
        ("text", request.text),
        ("html", request.html),
        ("idempotency_key", request.idempotency_key),
        ("priority", request.priority),
        ("locale", request.locale),
    ):
        check_data(value, field=name)
    recipient = validate_address(request.to, field="to")
    if request.tenant not in settings.tenant_names():
        raise InputError(
            f"unknown tenant {request.tenant!r}; configured: {', '.join(settings.tenant_names())}",
            field="tenant",
        )
    courier = settings.tenant(request.tenant)
    if not isinstance(request.data, dict):
        raise InputError("must be a JSON object", field="data")
    data = dict(request.data)
    if len(json.dumps(data, default=str)) > MAX_DATA:
        raise InputError(f"is larger than {MAX_DATA // 1024} KiB", field="data")
    if request.template_type is None or request.template_type == TemplateType.STUB.value:
        if request.subject is None or request.text is None:
            raise InputError(
                "give either a template type, or a subject and a text body", field="template"
            )
        template_type = TemplateType.STUB
        data["subject"] = validate_text(
            request.subject, field="subject", limit=MAX_SUBJECT, one_line=True
        )
        data["body"] = validate_text(request.text, field="text", limit=MAX_BODY)
        if request.html is not None:
            data["html_body"] = validate_text(request.html, field="html", limit=MAX_BODY)
    else:
        template_type = validate_template_type(request.template_type, field="template")
        validate_required_data(template_type, data)
        if request.subject is not None or request.text is not None:
            raise InputError(
                "give either a template or a subject and text, not both", field="subject"
            )
    data["to"] = recipient
    key = request.idempotency_key
    if key is not None:
        key = validate_text(key, field="idempotency_key", limit=255, one_line=True)
    requested = normalize_locale(request.locale) if request.locale is not None else None
    try:
        rendered = render_email(
            template_type,
            data,
            override_path=courier.template_override_path,
            locales=fallback_chain(requested, courier.locale),
            branding=courier.branding.model_dump(),
        )
    except TemplateError as exc:
        raise InputError(str(exc), field="template") from exc
    validate_text(rendered.subject, field="subject", limit=MAX_SUBJECT, one_line=True)
    for part in (rendered.text, rendered.html or ""):
        check_data(part, field="template")
    mime = build_mime(
        rendered,
        sender=courier.smtp.from_address,
        sender_name=courier.smtp.from_name,
        recipient=recipient,
        reply_to=courier.smtp.reply_to,
        headers=courier.smtp.headers,
        date=utcnow(),
    )
    priority = parse_priority(request.priority, template_type=template_type)
    parts = (rendered.subject, rendered.text, rendered.html or "")
    return NewMessage(
        tenant=request.tenant,
        recipient=recipient,
        template_type=template_type,
        template_data=data,
        subject=rendered.subject,
        body=rendered.text,
        html_body=rendered.html,
        mime=mime,
        idempotency_key=key,
        request_hash=_request_hash(request),
        priority=priority,
        content_hash=content_hash(request.tenant, recipient, template_type, parts),
        locale=rendered.locale,
    )


def _request_hash(request: SendRequest) -> str:
    canonical = json.dumps(
        [
            request.to,
            request.template_type,
            request.data,
            request.subject,
            request.text,
            request.html,
            request.tenant,
            # Only when given: keys stored before lanes existed keep matching their retries.
            *([request.priority] if request.priority is not None else []),
            *([request.locale] if request.locale is not None else []),
        ],
        sort_keys=True,
        default=str,
    )
    return hashlib.sha256(canonical.encode()).hexdigest()


async def enqueue(
    store: Intake, settings: Settings, requests: Sequence[SendRequest]
) -> list[tuple[Message, bool]]:
    """Validate, render and store every request in one transaction (all or nothing).

    Returns each message with ``created`` (False when an idempotency key matched an earlier
    message). Raise :class:`DuplicateRequestError` when a key matches a different request.
    """
    return await enqueue_prepared(store, settings, [prepare(r, settings) for r in requests])


async def enqueue_prepared(
    store: Intake,
    settings: Settings,
    prepared: Sequence[NewMessage],
    *,
    bulk: bool = False,
    sign: bool = True,
) -> list[tuple[Message, bool]]:
    """Store messages that :func:`prepare` returned; the same promises as :func:`enqueue`.

    A message to an address on its tenant's suppression list raises ``SuppressedError``
    (nothing is stored), unless it is urgent (see ``events.suppress``); with ``bulk``, such
    messages are left out of the result instead and the others stored. Each is DKIM-signed
    first, unless ``sign`` is False: the SMTP listener signs the mail it accepts itself, once
    for all its recipients."""
    prepared = await admit(store, settings, prepared, bulk=bulk)
    # A key repeated within the batch: the first occurrence is stored, the others return it.
    first: dict[tuple[str, str], int] = {}
    repeats: dict[int, int] = {}
    for index, new in enumerate(prepared):
        if new.idempotency_key is None:
            continue
        seen = first.setdefault((new.tenant, new.idempotency_key), index)
        if seen != index:
            if prepared[seen].request_hash != new.request_hash:
                raise DuplicateRequestError()
            repeats[index] = seen
    fresh = [new for index, new in enumerate(prepared) if index not in repeats]
    if sign:
        fresh = await _signed(store, settings, fresh)
    # One transaction for the whole batch, each message with its tenant's attempt budget and
    # TTL; a key already used for a different request refuses the batch before anything is
    # written.
    budgets = {
        tenant: tenant_budget(settings.tenant(tenant)) for tenant in {n.tenant for n in fresh}
    }
    default = tenant_budget(settings.courier)
    stored = iter(
        await store.enqueue(
            fresh,
            max_attempts=default.max_attempts,
            ttl=default.ttl,
            budgets=budgets,
            refuse_changed=True,
        )
    )
    out: list[tuple[Message, bool]] = []
    for index in range(len(prepared)):
        out.append((out[repeats[index]][0], False) if index in repeats else next(stored))
    return out


async def _signed(
    store: Intake, settings: Settings, messages: list[NewMessage]
) -> list[NewMessage]:
    """Each message signed with its tenant's DKIM key, once, now that its MIME is final:
    every attempt then sends these same bytes."""
    out = list(messages)
    for tenant in dict.fromkeys(new.tenant for new in out):
        key = await signing_key(store, settings, tenant)
        if key is None:
            continue
        indexes = [i for i, new in enumerate(out) if new.tenant == tenant]
        signed = await sign_all(key, [out[i].mime for i in indexes])
        for index, mime in zip(indexes, signed, strict=True):
            out[index] = replace(out[index], mime=mime)
    return out
