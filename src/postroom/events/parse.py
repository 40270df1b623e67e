"""Each provider's event payload, read into :class:`ProviderEvent` values.

Events that say nothing about delivery (opens, clicks, ``processed``...) are skipped; a
payload of the wrong shape raises :class:`PayloadError` (answered 400).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

from postroom.events.model import EventKind, ProviderEvent, bare_message_id, diagnose_bounce


class PayloadError(ValueError):
    """The verified body does not have the shape the provider documents."""


def _when(value: Any, default: datetime) -> datetime:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return datetime.fromtimestamp(float(value), tz=UTC)
    if isinstance(value, str) and value:
        try:
            return datetime.fromtimestamp(float(value), tz=UTC)
        except ValueError:
            pass
        try:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return default
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    return default


def _digest(*parts: Any) -> str:
    return hashlib.sha256(json.dumps(parts, default=str).encode()).hexdigest()[:40]


def _obj(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _text(value: Any) -> str | None:
    return str(value) if value not in (None, "") else None


def _event(
    provider: str,
    kind: EventKind,
    *,
    event_id: str,
    recipient: Any,
    at: datetime,
    provider_id: Any = None,
    header_id: Any = None,
    hard: bool | None = None,
    reply: Any = None,
    status: Any = None,
) -> ProviderEvent:
    reply_text = _text(reply)
    diagnosis = None
    if kind in (EventKind.BOUNCED, EventKind.DEFERRED, EventKind.DROPPED):
        diagnosis = diagnose_bounce(reply_text, status=_text(status))
    elif kind is EventKind.COMPLAINED:
        diagnosis = "complaint"
    return ProviderEvent(
        provider=provider,
        event_id=event_id[:255],
        kind=kind,
        recipient=str(recipient or "").strip().lower(),
        occurred_at=at,
        provider_message_id=bare_message_id(_text(provider_id)),
        header_message_id=bare_message_id(_text(header_id)),
        hard=hard,
        reply=reply_text[:1000] if reply_text else None,
        diagnosis=diagnosis,
    )


_SENDGRID = {
    "delivered": EventKind.DELIVERED,
    "deferred": EventKind.DEFERRED,
    "bounce": EventKind.BOUNCED,
    "dropped": EventKind.DROPPED,
    "spamreport": EventKind.COMPLAINED,
}


def sendgrid(body: Any, now: datetime) -> Iterator[ProviderEvent]:
    """SendGrid posts a JSON array of events; ``sg_message_id`` is the ``X-Message-Id`` of
    the hand-off followed by ``.filter...``: the part before it is the provider's id."""
    if not isinstance(body, list):
        raise PayloadError("SendGrid posts a JSON array of events")
    for item in body:
        kind = _SENDGRID.get(str(item.get("event"))) if isinstance(item, dict) else None
        if kind is None:
            continue
        sg_id = str(item.get("sg_message_id") or "")
        yield _event(
            "sendgrid",
            kind,
            event_id=str(item.get("sg_event_id") or _digest(item)),
            recipient=item.get("email"),
            at=_when(item.get("timestamp"), now),
            provider_id=sg_id.split(".filter", 1)[0] or None,
            header_id=item.get("smtp-id"),
            hard=(item.get("type", "bounce") == "bounce") if kind is EventKind.BOUNCED else None,
            reply=item.get("reason") or item.get("response"),
            status=item.get("status"),
        )


def mailgun(body: Any, now: datetime) -> Iterator[ProviderEvent]:
    """Mailgun posts one event as ``event-data``; a ``failed`` event is a bounce when its
    severity is ``permanent`` and a deferral when ``temporary``."""
    data = body.get("event-data") if isinstance(body, dict) else None
    if not isinstance(data, dict):
        raise PayloadError("Mailgun posts an object with event-data")
    name = str(data.get("event"))
    severity = str(data.get("severity", ""))
    kind = {
        "delivered": EventKind.DELIVERED,
        "complained": EventKind.COMPLAINED,
        "rejected": EventKind.DROPPED,
    }.get(name)
    if name == "failed":
        kind = EventKind.BOUNCED if severity == "permanent" else EventKind.DEFERRED
    if kind is None:
        return
    status = _obj(data.get("delivery-status"))
    headers = _obj(_obj(data.get("message")).get("headers"))
    code = status.get("code")
    words = status.get("message") or status.get("description")
    reply = f"{code} {words}".strip() if code and words else words or None
    header_id = headers.get("message-id")
    yield _event(
        "mailgun",
        kind,
        event_id=str(data.get("id") or _digest(data)),
        recipient=data.get("recipient"),
        at=_when(data.get("timestamp"), now),
        provider_id=header_id,  # Mailgun's message id is the Message-ID header
        header_id=header_id,
        hard=(severity == "permanent") if kind is EventKind.BOUNCED else None,
        reply=reply,
        status=status.get("enhanced-code"),
    )


_POSTMARK_SOFT = {"SoftBounce", "Transient", "DnsError", "AutoResponder", "Blocked"}


def postmark(body: Any, now: datetime) -> Iterator[ProviderEvent]:
    """Postmark posts one record: ``Delivery``, ``Bounce`` or ``SpamComplaint``."""
    if not isinstance(body, dict):
        raise PayloadError("Postmark posts one JSON object")
    record = str(body.get("RecordType") or ("Bounce" if "BouncedAt" in body else ""))
    bounce_type = str(body.get("Type", ""))
    if record == "Delivery":
        kind, at_key, who = EventKind.DELIVERED, "DeliveredAt", body.get("Recipient")
    elif record == "SpamComplaint" or bounce_type == "SpamComplaint":
        kind, at_key, who = EventKind.COMPLAINED, "BouncedAt", body.get("Email")
    elif record == "Bounce":
        kind, at_key, who = EventKind.BOUNCED, "BouncedAt", body.get("Email")
    else:
        return
    yield _event(
        "postmark",
        kind,
        event_id=f"{record}:{body.get('ID') or _digest(body)}",
        recipient=who,
        at=_when(body.get(at_key), now),
        provider_id=body.get("MessageID"),
        hard=(bounce_type not in _POSTMARK_SOFT) if kind is EventKind.BOUNCED else None,
        reply=body.get("Details"),
        status=body.get("Description"),
    )


def ses(message: dict[str, Any], now: datetime) -> Iterator[ProviderEvent]:
    """The SES notification inside a verified SNS ``Notification``: one event per
    recipient of a ``Bounce``, ``Complaint``, ``Delivery``, ``DeliveryDelay`` or ``Reject``."""
    try:
        data = json.loads(str(message.get("Message", "")))
    except ValueError:
        raise PayloadError("the SNS Message is not an SES notification (JSON)") from None
    if not isinstance(data, dict):
        raise PayloadError("the SNS Message is not an SES notification (JSON object)")
    name = str(data.get("notificationType") or data.get("eventType") or "")
    mail = _obj(data.get("mail"))
    common = _obj(mail.get("commonHeaders"))
    base = {"provider_id": mail.get("messageId"), "header_id": common.get("messageId")}
    sns_id = str(message.get("MessageId", ""))
    if name == "Bounce":
        bounce = _obj(data.get("bounce"))
        hard = bounce.get("bounceType") == "Permanent"
        for r in bounce.get("bouncedRecipients") or []:
            yield _event(
                "ses",
                EventKind.BOUNCED,
                event_id=f"{bounce.get('feedbackId') or sns_id}:{r.get('emailAddress')}",
                recipient=r.get("emailAddress"),
                at=_when(bounce.get("timestamp"), now),
                hard=hard,
                reply=r.get("diagnosticCode"),
                status=r.get("status"),
                **base,
            )
    elif name == "Complaint":
        complaint = _obj(data.get("complaint"))
        for r in complaint.get("complainedRecipients") or []:
            yield _event(
                "ses",
                EventKind.COMPLAINED,
                event_id=f"{complaint.get('feedbackId') or sns_id}:{r.get('emailAddress')}",
                recipient=r.get("emailAddress"),
                at=_when(complaint.get("timestamp"), now),
                reply=complaint.get("complaintFeedbackType"),
                **base,
            )
    elif name in ("Delivery", "DeliveryDelay", "Reject"):
        section = (
            data.get({"Delivery": "delivery", "DeliveryDelay": "deliveryDelay"}.get(name, "reject"))
            or {}
        )
        kind = {"Delivery": EventKind.DELIVERED, "DeliveryDelay": EventKind.DEFERRED}.get(
            name, EventKind.DROPPED
        )
        recipients = (
            section.get("recipients")
            or [r.get("emailAddress") for r in section.get("delayedRecipients") or []]
            or mail.get("destination")
            or []
        )
        for address in recipients:
            yield _event(
                "ses",
                kind,
                event_id=f"{sns_id}:{address}",
                recipient=address,
                at=_when(section.get("timestamp"), now),
                reply=section.get("smtpResponse") or section.get("reason"),
                **base,
            )


def generic(body: Any, now: datetime, *, request_id: str) -> Iterator[ProviderEvent]:
    """The generic form: one event object or an array of them, each
    ``{event, recipient, provider_message_id | message_id_header, reply?, hard?, timestamp?, id?}``
    with ``event`` one of delivered, deferred, bounced, complained, dropped."""
    items = body if isinstance(body, list) else [body]
    for index, item in enumerate(items):
        if not isinstance(item, dict):
            raise PayloadError("each event must be a JSON object")
        try:
            kind = EventKind(str(item.get("event")))
        except ValueError:
            raise PayloadError(
                f"event {item.get('event')!r} is not one of "
                + ", ".join(k.value for k in EventKind)
            ) from None
        yield _event(
            "generic",
            kind,
            event_id=str(item.get("id") or f"{request_id}:{index}"),
            recipient=item.get("recipient"),
            at=_when(item.get("timestamp"), now),
            provider_id=item.get("provider_message_id"),
            header_id=item.get("message_id_header"),
            hard=bool(item.get("hard", True)) if kind is EventKind.BOUNCED else None,
            reply=item.get("reply"),
        )
