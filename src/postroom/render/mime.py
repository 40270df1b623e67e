"""MIME assembly: a rendered email becomes the exact bytes that are sent."""

from __future__ import annotations

import random
import re
import sys
from collections.abc import Mapping
from datetime import datetime
from email.charset import QP, Charset
from email.errors import HeaderParseError
from email.header import Header
from email.headerregistry import Address
from email.policy import compat32
from email.utils import format_datetime, formataddr, make_msgid
from functools import lru_cache

from postroom.errors import InputError
from postroom.models import RenderedEmail
from postroom.text import check_header_line

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


def check_configured_header(name: str, value: str) -> None:
    """Refuse a configured header that is not one valid line or that Postroom sets itself."""
    if not isinstance(name, str) or not _HEADER_NAME.fullmatch(name):
        raise InputError(
            f"{name!r} is not a valid header name; use letters, digits and dashes, like X-Campaign",
            field="headers",
        )
    check_header_line(value, field=f"headers.{name}")
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


_UTF8 = Charset("utf-8")
_UTF8.header_encoding = QP
_UTF8.body_encoding = QP
_CRLF = compat32.clone(linesep="\r\n")
_MAX_LINE = 78  # where compat32 folds a header line

# A header value the email package would write exactly as it is: printable ASCII, words
# separated by single spaces. Anything else (and anything too long for one line) is folded by
# the email package itself, so the bytes are the same as ever.
_PLAIN_VALUE = re.compile(r"[!-~]+(?: [!-~]+)*")
# An address that is its own header form: a dot-atom local part and an ASCII domain of
# letters, digits and dashes (what almost every recipient is).
_PLAIN_ADDRESS = re.compile(
    r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*"
    r"@[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*"
)
_PART_HEADERS = {
    subtype: (
        f'Content-Type: text/{subtype}; charset="utf-8"\r\n'
        "MIME-Version: 1.0\r\nContent-Transfer-Encoding: quoted-printable\r\n"
    ).encode("ascii")
    for subtype in ("plain", "html")
}


def _fold(name: str, value: str) -> bytes:
    """One header line as compat32 writes it (folded at 78 characters, CRLF); ``value`` may
    be a :class:`Header` (see :func:`_header`)."""
    short = isinstance(value, str) and len(name) + 2 + len(value) <= _MAX_LINE
    if short and _PLAIN_VALUE.fullmatch(value):
        return f"{name}: {value}\r\n".encode("ascii")
    return _CRLF.fold_binary(name, value)


@lru_cache(maxsize=1024)
def _fold_cached(name: str, value: str) -> bytes:
    """:func:`_fold` for values that repeat from message to message (sender, tenant headers)."""
    return _fold(name, value)


def _boundary() -> str:
    """A boundary as the email package makes one. No part can hold it: it starts with "=",
    which quoted-printable always writes as "=3D", so the package's search of the parts for a
    clash (and its renaming) is not needed."""
    return "=" * 15 + f"{random.randrange(sys.maxsize):019d}" + "=="


def _header(value: str) -> str:
    """ASCII as it is; anything else as RFC 2047 encoded words (folded as needed)."""
    if value.isascii():
        return value
    # Message accepts a Header where typeshed says str.
    return Header(value, _UTF8)  # type: ignore[return-value]


def _body(text: str) -> bytes:
    """A UTF-8 text part's body, quoted-printable so that codes stay readable in the raw
    message: the bytes MIMEText writes, without building one."""
    encoded = _UTF8.body_encode(text.encode("utf-8")) if text else ""
    return "\r\n".join(_NEWLINES.split(encoded)).encode("ascii")


_NEWLINES = re.compile(r"\r\n|\r|\n")


@lru_cache(maxsize=256)
def _sender(address: str, name: str | None) -> tuple[bytes, str]:
    """The From line and the Message-ID domain of a tenant's sender."""
    box = header_address(address, field="from_address")
    return _fold("From", formataddr((name or "", box.addr_spec), charset="utf-8")), box.domain


def _addr_spec(address: str, *, field: str) -> str:
    if len(address) <= 254 and _PLAIN_ADDRESS.fullmatch(address):
        return address
    return header_address(address, field=field).addr_spec


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

    Raise :class:`InputError` for a line break (any that ``str.splitlines()`` knows), NUL or a
    lone surrogate in any header value, or for a header Postroom sets itself.
    """
    check_header_line(email.subject, field="subject")
    check_header_line(recipient, field="recipient")
    check_header_line(sender, field="from_address")
    if sender_name:
        check_header_line(sender_name, field="from_name")
    if reply_to:
        check_header_line(reply_to, field="reply_to")
    # Written directly, byte for byte what the email package's compat32 classes write for
    # this shape of message (tests/render/test_mime.py holds them side by side): building
    # and serialising Message objects cost more than rendering the templates.
    from_line, sender_domain = _sender(sender, sender_name)
    lines = [
        from_line,
        _fold("To", _addr_spec(recipient, field="recipient")),
        _fold("Subject", _header(email.subject)),
        _fold("Date", format_datetime(date)),
        _fold("Message-ID", make_msgid(domain=message_id_domain or sender_domain)),
    ]
    if reply_to:
        lines.append(_fold_cached("Reply-To", _addr_spec(reply_to, field="reply_to")))
    for name, value in (headers or {}).items():
        check_configured_header(name, value)
        lines.append(_fold_cached(name, value) if value.isascii() else _fold(name, _header(value)))
    text = _body(email.text)
    if not email.html:  # one text part: its own headers first, as MIMEText has them
        return b"".join([_PART_HEADERS["plain"], *lines, b"\r\n", text])
    parts = [
        _PART_HEADERS["plain"] + b"\r\n" + text,
        _PART_HEADERS["html"] + b"\r\n" + _body(email.html),
    ]
    boundary = _boundary()
    # Always longer than 78 characters with the parameter, so folded before it, as compat32 does.
    content_type = f'Content-Type: multipart/alternative;\r\n boundary="{boundary}"\r\n'.encode()
    return b"".join(
        [
            content_type,
            b"MIME-Version: 1.0\r\n",
            *lines,
            f"\r\n--{boundary}\r\n".encode("ascii"),
            f"\r\n--{boundary}\r\n".encode("ascii").join(parts),
            f"\r\n--{boundary}--\r\n".encode("ascii"),
        ]
    )
