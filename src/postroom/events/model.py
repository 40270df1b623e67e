"""Delivery events as Postroom keeps them, whichever provider reported them."""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from postroom.diagnosis.replies import classify_reply


class EventKind(enum.StrEnum):
    """What a provider said became of a message after it took it."""

    DELIVERED = "delivered"
    DEFERRED = "deferred"
    BOUNCED = "bounced"
    COMPLAINED = "complained"
    DROPPED = "dropped"


@dataclass(frozen=True, slots=True)
class ProviderEvent:
    """One event as a provider reported it, before it is matched to a message.

    ``event_id`` is unique per provider and tenant (the provider's own id, else a hash of
    what identifies the event), so that an event sent twice is stored once.
    ``provider_message_id`` is the id the provider gave at the hand-off; ``header_message_id``
    the Message-ID header, when the provider echoes it (without angle brackets).
    """

    provider: str
    event_id: str
    kind: EventKind
    recipient: str
    occurred_at: datetime
    provider_message_id: str | None = None
    header_message_id: str | None = None
    hard: bool | None = None  # bounces: True when permanent
    reply: str | None = None
    diagnosis: str | None = None


@dataclass(frozen=True, slots=True)
class DeliveryEvent:
    """A stored event; ``message_id`` is None while no message matches it (kept for a day)."""

    id: str
    tenant: str
    message_id: str | None
    provider: str
    event_id: str
    kind: EventKind
    recipient: str
    occurred_at: datetime
    received_at: datetime
    provider_message_id: str | None = None
    header_message_id: str | None = None
    hard: bool | None = None
    reply: str | None = None
    diagnosis: str | None = None

    def to_json(self) -> dict[str, Any]:
        """The ``events[]`` entry of the message JSON (``delivery`` is the latest one)."""
        return {
            "event": self.kind.value,
            "at": _time(self.occurred_at),
            "provider": self.provider,
            "hard": self.hard,
            "reply": self.reply,
            "diagnosis": self.diagnosis,
        }


def _time(value: datetime) -> str:
    return value.isoformat().replace("+00:00", "Z")


_REPLY = re.compile(r"\b([245]\d\d)\b[ -]?(?:([245]\.\d{1,3}\.\d{1,3})\b)?")
_ENHANCED = re.compile(r"\b([245])\.(\d{1,3})\.(\d{1,3})\b")


def diagnose_bounce(reply: str | None, *, status: str | None = None) -> str:
    """The diagnosis code of a bounce, from the remote server's reply (``550 5.1.1 ...``,
    ``smtp; 550 ...``) or, without one, the enhanced status (``5.2.2``):
    ``recipient_rejected``, ``mailbox_full``, ``message_too_large``, ... or ``unknown``."""
    text = reply or ""
    found = _REPLY.search(text)
    if found is not None:
        return classify_reply(int(found.group(1)), text[found.start() :], stage="rcpt").code
    enhanced = _ENHANCED.search(status or text)
    if enhanced is not None:
        klass = enhanced.group(1)
        code = 550 if klass == "5" else 450
        return classify_reply(code, f"{code} {enhanced.group(0)} {text}", stage="rcpt").code
    return "unknown"


def bare_message_id(value: str | None) -> str | None:
    """A Message-ID without angle brackets or spaces; None for nothing."""
    if not value:
        return None
    return value.strip().strip("<>").strip() or None


def header_message_id(mime: bytes) -> str | None:
    """The Message-ID header of stored MIME bytes (without angle brackets), or None."""
    head = mime.split(b"\r\n\r\n", 1)[0].split(b"\n\n", 1)[0]
    found = _MESSAGE_ID.search(head)
    return bare_message_id(found.group(1).decode("ascii", "replace")) if found else None


_MESSAGE_ID = re.compile(rb"^Message-ID:[ \t]*(<[^>\r\n]*>|\S+)", re.I | re.M)
