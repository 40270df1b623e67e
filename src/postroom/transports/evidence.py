"""The provider's own id for a message it accepted, read from its acceptance.

Every success dispatch keeps where the message went and what the provider answered; the id
found here is what a provider's logs, support and event webhooks call the message. Each
pattern names the provider whose answer it reads (the answers are quoted in the tests).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping

# SMTP: the final reply to end-of-data. Order matters: the first pattern that matches wins.
_SMTP_PATTERNS: tuple[re.Pattern[str], ...] = (
    # Postfix "250 2.0.0 Ok: queued as 4Fh2kq0xQ", SendGrid "250 Ok: queued as <id>",
    # Postmark, Mailjet "250 OK queued as <uuid>", ZoneMTA "250 Message queued as <id>".
    re.compile(r"\bqueued as\s+<?([^\s<>]+)>?", re.IGNORECASE),
    # Exim "250 OK id=1qAbCd-0001Ab-Cd".
    re.compile(r"\bid=([^\s,;]+)", re.IGNORECASE),
    # Microsoft 365 "250 2.6.0 <...@...prod.outlook.com> [InternalId=...] Queued mail for
    # delivery", and any provider that answers with the Message-ID it gave the message.
    re.compile(r"<([^\s<>@]+@[^\s<>]+)>"),
    # Amazon SES "250 Ok 0100018c7ba3a8b1-...-000000": the id follows "Ok" alone.
    re.compile(r"^2\d\d(?:\s+2\.\d{1,3}\.\d{1,3})?\s+Ok\s+([0-9A-Za-z][\w.-]{9,})\s*$"),
    # Gmail / Google Workspace "250 2.0.0 OK  1700000000 a1-20020a05...gsmtp".
    re.compile(r"\s(\S+)\s+-\s+gsmtp\s*$|\s(\S+)\s+gsmtp\s*$"),
)

_HTTP_HEADER = "X-Message-Id"  # SendGrid's; header names are matched in any case
_JSON_KEYS = ("id", "message_id", "messageId", "MessageID", "MessageId")
MAX_ID = 255  # longer is not an id; kept within the column


def _clean(value: str | None) -> str | None:
    if not value:
        return None
    value = value.strip().strip("<>").strip()
    if not value or len(value) > MAX_ID or not value.isprintable():
        return None
    return value


def smtp_message_id(reply: str | None) -> str | None:
    """The provider's id in an SMTP acceptance (``250 ...``), or None when it names none."""
    if not reply or not reply.startswith("2"):
        return None
    for pattern in _SMTP_PATTERNS:
        match = pattern.search(reply)
        if match:
            return _clean(next(g for g in match.groups() if g))
    return None


def http_message_id(headers: Mapping[str, str], content: bytes) -> str | None:
    """The provider's id in an HTTP acceptance: the ``X-Message-Id`` header, else the JSON
    body's ``id``, ``MessageID`` or ``messageId`` (and their spellings); None otherwise."""
    if _HTTP_HEADER in headers:
        return _clean(headers[_HTTP_HEADER])
    if b"{" not in content[:64]:
        return None
    try:
        data = json.loads(content)
    except ValueError:
        return None
    if isinstance(data, dict):
        for key in _JSON_KEYS:
            value = data.get(key)
            if isinstance(value, (str, int)) and not isinstance(value, bool) and str(value):
                return _clean(str(value))
    return None
