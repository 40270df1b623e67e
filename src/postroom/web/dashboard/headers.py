"""Mail headers as the dashboard shows them: decoded where they can be, as written where they
cannot (a header a strict parser chokes on, such as ``Resent-To: a@[``, never breaks a page),
with the subject hidden unless bodies are exposed and credential-named headers masked."""

from __future__ import annotations

from email.header import decode_header, make_header
from email.message import Message

from postroom.config.credentials import is_credential_name
from postroom.config.secrets import MASK
from postroom.errors import readable
from postroom.models import REDACTED

MAX_SHOWN = 2000
"""Characters of one header value shown; the rest is cut (and marked)."""


def _decoded(raw: str) -> str:
    try:
        text = str(make_header(decode_header(raw)))
    except (ValueError, LookupError, UnicodeError, TypeError, AssertionError):
        text = raw
    text = readable(" ".join(text.split()))
    return text if len(text) <= MAX_SHOWN else text[:MAX_SHOWN] + " [...]"


def shown_headers(message: Message, *, exposed: bool) -> list[tuple[str, str]]:
    """``(name, value)`` for every header of ``message`` (parsed with the lenient compat32
    policy), ready to show: the subject reads ``[redacted]`` unless ``exposed``, and a header
    whose name looks like a credential (``X-Auth-Token``, set by ``smtp.headers``) reads
    ``***`` (it still went to the recipient, as every header does)."""
    out = []
    for name, value in message.raw_items():
        if name.lower() == "subject" and not exposed:
            out.append((name, REDACTED))
        elif is_credential_name(name):
            out.append((name, MASK))
        else:
            out.append((name, _decoded(str(value))))
    return out


def header_text(message: Message, name: str) -> str:
    """One header's shown value, or ``""`` when absent."""
    raw = message.get(name)
    return "" if raw is None else _decoded(str(raw))
