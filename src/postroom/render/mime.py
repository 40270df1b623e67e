"""MIME assembly: a rendered email becomes the exact bytes that are sent."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from email.headerregistry import Address
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime, make_msgid

from postroom.errors import InputError
from postroom.models import RenderedEmail

# Headers Postroom sets itself; configured headers may not replace them.
_OWN = {"from", "to", "subject", "date", "message-id", "reply-to", "mime-version", "content-type"}


def check_header_value(name: str, value: str) -> None:
    """Refuse CR or LF in a header value (header injection)."""
    if "\r" in value or "\n" in value:
        raise InputError(
            "contains a line break (CR or LF); header values must be one line", field=name
        )


def build_mime(
    email: RenderedEmail,
    *,
    sender: str,
    sender_name: str | None,
    recipient: str,
    reply_to: str | None = None,
    headers: Mapping[str, str] | None = None,
    date: datetime,
    message_id_domain: str | None = None,
) -> bytes:
    """Return the RFC 5322 bytes: multipart/alternative when there is HTML, CRLF line ends.

    Raise :class:`InputError` for CR/LF in any header value or a header Postroom sets itself.
    """
    check_header_value("subject", email.subject)
    check_header_value("recipient", recipient)
    check_header_value("from_address", sender)
    if sender_name:
        check_header_value("from_name", sender_name)
    if reply_to:
        check_header_value("reply_to", reply_to)
    msg = EmailMessage(policy=SMTP)
    domain = message_id_domain or sender.rpartition("@")[2] or "postroom.localhost"
    msg["From"] = Address(display_name=sender_name or "", addr_spec=sender)
    msg["To"] = recipient
    msg["Subject"] = email.subject
    msg["Date"] = format_datetime(date)
    msg["Message-ID"] = make_msgid(domain=domain)
    if reply_to:
        msg["Reply-To"] = reply_to
    for name, value in (headers or {}).items():
        check_header_value(f"headers.{name}", name)
        check_header_value(f"headers.{name}", value)
        if name.lower() in _OWN or not name or ":" in name or " " in name:
            raise InputError("is not a header that can be configured", field=f"headers.{name}")
        msg[name] = value
    msg.set_content(email.text, charset="utf-8")
    if email.html:
        msg.add_alternative(email.html, subtype="html", charset="utf-8")
    return msg.as_bytes()
