"""Mail submitted ready-made through the SMTP listener, turned into stored messages.

The MIME is kept as received and only parsed (for the subject, text and HTML that HTTP
delivery and the dashboard use). What changes it: ``X-Postroom-*`` headers are read and
removed, the tenant's configured headers are set, a missing ``Date`` or ``Message-ID`` is
added (as a submission server may, RFC 6409 section 8), and ``rewrite_from`` replaces the
``From`` header. Every recipient gets its own stored message, each with its own status. The
final MIME is DKIM-signed once, when the listener accepts it (:func:`store_submission`), so that
retries and every transport send the same signed bytes.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field, replace
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from email.utils import format_datetime, formataddr, make_msgid
from typing import Any

from postroom.config import CourierSettings, Settings
from postroom.deliverability.signer import dkim_sign
from postroom.errors import InputError
from postroom.intake.enqueue import enqueue_prepared
from postroom.intake.priority import listener_message
from postroom.models import Message, NewMessage, TemplateType
from postroom.render.mime import envelope_address
from postroom.store import Intake, utcnow
from postroom.text import header_line_problem

PRIORITIES = ("urgent", "normal", "bulk")
_BARE = re.compile(rb"\r(?!\n)|(?<!\r)\n")
_HEADER_NAME = re.compile(rb"([!-9;-~]+)[ \t]*:")


def bare_line_break(raw: bytes) -> bool:
    """True when ``raw`` holds a CR or LF that is not part of a CRLF pair (the stuff of SMTP
    smuggling: a receiver that ends lines differently would read a second message)."""
    return _BARE.search(raw) is not None


@dataclass(frozen=True, slots=True)
class Submission:
    """One DATA transaction as the listener accepted it."""

    tenant: str
    mail_from: str
    recipients: tuple[str, ...]
    raw: bytes
    priority: str = "urgent"
    extra: dict[str, str] = field(default_factory=dict)  # X-Postroom-* read, lower-case names


def _split(raw: bytes) -> tuple[list[bytes], bytes]:
    """Header fields (each with its folded lines and CRLFs) and the rest (blank line on)."""
    end = raw.find(b"\r\n\r\n")
    head, rest = (raw, b"") if end < 0 else (raw[: end + 2], raw[end + 2 :])
    if raw.startswith(b"\r\n"):
        return [], raw
    fields: list[bytes] = []
    for line in head.split(b"\r\n")[:-1]:
        if line[:1] in (b" ", b"\t") and fields:
            fields[-1] += line + b"\r\n"
        else:
            fields.append(line + b"\r\n")
    return fields, rest if end >= 0 else b"\r\n"


def _name(header: bytes) -> str:
    match = _HEADER_NAME.match(header)
    return match.group(1).decode("ascii").lower() if match else ""


def _value(header: bytes) -> str:
    text = header.split(b":", 1)[1].decode("utf-8", "replace")
    return re.sub(r"\r\n[ \t]+", " ", text).strip()


def read_postroom_headers(raw: bytes) -> tuple[bytes, dict[str, str]]:
    """Remove every ``X-Postroom-*`` header; return the rest and what they said (names
    lower-case, without the prefix)."""
    fields, rest = _split(raw)
    kept, found = [], {}
    for header in fields:
        name = _name(header)
        if name.startswith("x-postroom-"):
            found[name.removeprefix("x-postroom-")] = _value(header)
        else:
            kept.append(header)
    return b"".join(kept) + rest, found


def _set_headers(raw: bytes, values: dict[str, str], *, only_missing: bool = False) -> bytes:
    fields, rest = _split(raw)
    names = {n.lower() for n in values}
    present = {_name(h) for h in fields}
    if not only_missing:
        fields = [h for h in fields if _name(h) not in names]
    added = [
        f"{name}: {text}\r\n".encode()
        for name, text in values.items()
        if not (only_missing and name.lower() in present)
    ]
    return b"".join(added + fields) + rest


def priority_of(extra: dict[str, str], default: str) -> str:
    """The message's priority: ``X-Postroom-Priority`` when given, else ``default``. Raise
    :class:`InputError` for a value that is not one of :data:`PRIORITIES`."""
    wanted = extra.get("priority", default).strip().lower()
    if wanted not in PRIORITIES:
        raise InputError(
            f"X-Postroom-Priority is {wanted!r}; write one of {', '.join(PRIORITIES)}",
            field="X-Postroom-Priority",
        )
    return wanted


def _parts(message: EmailMessage) -> tuple[str, str, str | None]:
    subject = str(message.get("subject", "") or "")
    texts: dict[str, str | None] = {"plain": None, "html": None}
    for kind in texts:
        part = message.get_body(preferencelist=(kind,))
        if part is None:
            continue
        try:
            texts[kind] = str(part.get_content())
        except (LookupError, ValueError, AssertionError):
            payload = part.get_payload(decode=True)
            texts[kind] = payload.decode("utf-8", "replace") if isinstance(payload, bytes) else ""
    html = texts["html"].replace("\r\n", "\n") if texts["html"] is not None else None
    return " ".join(subject.split()), (texts["plain"] or "").replace("\r\n", "\n"), html


def build_messages(submission: Submission, courier: CourierSettings) -> list[NewMessage]:
    """One stored message per recipient, sharing the same final MIME bytes.

    Raise :class:`InputError` for an ``X-Postroom-*`` header with a bad value.
    """
    raw = submission.raw
    sender = submission.mail_from
    reference = submission.extra.get("reference")
    if reference is not None:
        problem = header_line_problem(reference)
        if problem is not None or len(reference) > 255:
            raise InputError(
                problem or "is longer than 255 characters", field="X-Postroom-Reference"
            )
    priority = priority_of(submission.extra, submission.priority)
    setting: dict[str, str] = dict(courier.smtp.headers)
    if courier.listener.rewrite_from:
        address = courier.smtp.from_address
        setting["From"] = formataddr((courier.smtp.from_name or "", address))
        sender = envelope_address(address)
    if setting:
        raw = _set_headers(raw, setting)
    domain = envelope_address(courier.smtp.from_address).rpartition("@")[2] or "postroom"
    raw = _set_headers(
        raw,
        {"Date": format_datetime(utcnow()), "Message-ID": make_msgid(domain=domain)},
        only_missing=True,
    )
    parsed = BytesParser(policy=policy.default).parsebytes(raw)
    assert isinstance(parsed, EmailMessage)
    subject, text, html = _parts(parsed)
    # Subject and text as a ready message carries them, for HTTP bodies written for Kratos.
    data: dict[str, Any] = {"mail_from": sender, "priority": priority, "subject": subject}
    data["body"] = text
    if html is not None:
        data["html_body"] = html
    if reference is not None:
        data["reference"] = reference
    # Several recipients share one stored copy of the MIME.
    shared = hashlib.sha256(raw).hexdigest() if len(submission.recipients) > 1 else None
    # In its lane, with the hash that folds a re-sent copy (Date and Message-ID aside).
    return [
        listener_message(
            NewMessage(
                tenant=submission.tenant,
                recipient=recipient,
                template_type=TemplateType.RELAY,
                template_data=data | {"to": recipient},
                subject=subject,
                body=text,
                html_body=html,
                mime=raw,
                mime_ref=shared,
            ),
            header=priority,
        )
        for recipient in submission.recipients
    ]


async def store_submission(
    store: Intake, settings: Settings, messages: list[NewMessage]
) -> list[tuple[Message, bool]]:
    """Store what :func:`build_messages` made of one submission, its MIME signed first with
    the tenant's DKIM key (:func:`~postroom.deliverability.signer.dkim_sign`) when its From
    domain is the tenant's DKIM domain: signed once for every recipient, and the stored MIME
    (one shared copy, under the signed bytes' hash) is what every attempt sends.

    Raise :class:`~postroom.errors.ConfigError` when the tenant's key cannot be loaded, and
    what :func:`~postroom.intake.enqueue.enqueue_prepared` raises.
    """
    if messages:
        first = messages[0]
        mime = await dkim_sign(store, settings, first.tenant, first.mime)
        if mime != first.mime:
            shared = hashlib.sha256(mime).hexdigest() if first.mime_ref is not None else None
            messages = [replace(new, mime=mime, mime_ref=shared) for new in messages]
    return await enqueue_prepared(store, settings, messages, sign=False)
