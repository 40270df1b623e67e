"""MIME assembly: a rendered email becomes the exact bytes that are sent."""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime
from email.errors import HeaderParseError
from email.headerregistry import Address
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime, make_msgid

from postroom.errors import InputError
from postroom.models import RenderedEmail

# Headers Postroom sets itself (or that would change who receives the message or how it is
# decoded); configured headers may not replace them.
_OWN = {
    "from",
    "to",
    "cc",
    "bcc",
    "subject",
    "date",
    "message-id",
    "reply-to",
    "mime-version",
    "content-type",
    "content-transfer-encoding",
}
# RFC 5322 field names: printable ASCII except the colon.
_HEADER_NAME = re.compile(r"[!-9;-~]+")


def check_header_value(name: str, value: str) -> None:
    """Refuse CR or LF in a header value (header injection)."""
    if "\r" in value or "\n" in value:
        raise InputError(
            "contains a line break (CR or LF); header values must be one line", field=name
        )


def check_configured_header(name: str, value: str) -> None:
    """Refuse a configured header that is not one valid line or that Postroom sets itself."""
    if not isinstance(name, str) or not _HEADER_NAME.fullmatch(name):
        raise InputError(
            f"{name!r} is not a valid header name; use letters, digits and dashes, like X-Campaign",
            field="headers",
        )
    check_header_value(f"headers.{name}", value)
    if name.lower() in _OWN:
        raise InputError(
            "is set by Postroom and cannot be configured; configure from_address, from_name "
            "or reply_to instead where that is what you mean",
            field=f"headers.{name}",
        )


def header_address(address: str, *, field: str, display_name: str = "") -> Address:
    """The address for a header (IDN domain in its ASCII form); raise :class:`InputError`."""
    local, _, domain = address.rpartition("@")
    if not local.isascii():
        # Without SMTPUTF8 such a local part cannot be written into a header at all.
        raise InputError(
            f"{address!r} has non-ASCII characters before the @, which Postroom cannot send yet",
            field=field,
        )
    try:
        ascii_domain = domain.encode("idna").decode("ascii")
        parsed = Address(addr_spec=f"{local}@{ascii_domain}")
    except (UnicodeError, ValueError, IndexError, HeaderParseError):
        raise InputError(f"{address!r} is not a valid email address", field=field) from None
    return Address(display_name=display_name, username=parsed.username, domain=parsed.domain)


def envelope_address(address: str) -> str:
    """The address as SMTP's MAIL FROM / RCPT TO carry it: an IDN domain in its ASCII form."""
    local, _, domain = address.rpartition("@")
    try:
        return f"{local}@{domain.encode('idna').decode('ascii')}"
    except UnicodeError:
        return address


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
    sender_box = header_address(sender, field="from_address", display_name=sender_name or "")
    msg["From"] = sender_box
    msg["To"] = header_address(recipient, field="recipient")
    msg["Subject"] = email.subject
    msg["Date"] = format_datetime(date)
    msg["Message-ID"] = make_msgid(domain=message_id_domain or sender_box.domain)
    if reply_to:
        msg["Reply-To"] = header_address(reply_to, field="reply_to")
    for name, value in (headers or {}).items():
        check_configured_header(name, value)
        msg[name] = value
    msg.set_content(email.text, charset="utf-8")
    if email.html:
        msg.add_alternative(email.html, subtype="html", charset="utf-8")
    return msg.as_bytes()
