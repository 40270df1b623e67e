"""Plain, frozen data that travels between the layers. No I/O lives here."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any


class Status(enum.StrEnum):
    """Where a message is in its life. ``sent`` means handed off to the provider."""

    QUEUED = "queued"
    PROCESSING = "processing"
    SENT = "sent"
    ABANDONED = "abandoned"


class DispatchStatus(enum.StrEnum):
    """The outcome of one delivery attempt."""

    SUCCESS = "success"
    FAILED = "failed"


class TemplateType(enum.StrEnum):
    """Kratos's template types, plus ``test`` for the test email and ``relay`` for mail that
    came in ready-made through the SMTP listener (its MIME is kept as received)."""

    RECOVERY_INVALID = "recovery_invalid"
    RECOVERY_VALID = "recovery_valid"
    RECOVERY_CODE_INVALID = "recovery_code_invalid"
    RECOVERY_CODE_VALID = "recovery_code_valid"
    VERIFICATION_INVALID = "verification_invalid"
    VERIFICATION_VALID = "verification_valid"
    VERIFICATION_CODE_INVALID = "verification_code_invalid"
    VERIFICATION_CODE_VALID = "verification_code_valid"
    LOGIN_CODE_VALID = "login_code_valid"
    REGISTRATION_CODE_VALID = "registration_code_valid"
    VERIFIABLE_ADDRESS_CHANGED = "verifiable_address_changed"
    AUTHENTICATOR_KEY_ADDED = "authenticator_key_added"
    STUB = "stub"
    TEST = "test"
    RELAY = "relay"


class WaitingFor(enum.StrEnum):
    """Why a queued message is not being sent right now: ``priority`` means the tenant's
    rate-limit slots are kept for more urgent mail."""

    BACKOFF = "backoff"
    RATE_LIMIT = "rate_limit"
    PRIORITY = "priority"


class Priority(enum.StrEnum):
    """A message's lane: ``urgent`` (a person is waiting for it), ``normal`` (notifications)
    or ``bulk`` (newsletters and other mass sends). Claims and rate-limit slots go to the
    most urgent lane first."""

    URGENT = "urgent"
    NORMAL = "normal"
    BULK = "bulk"

    @property
    def rank(self) -> int:
        """0 for urgent, 1 for normal, 2 for bulk: the order claims take the lanes in."""
        return _RANKS[self]


_RANKS = {Priority.URGENT: 0, Priority.NORMAL: 1, Priority.BULK: 2}


_NORMAL_TYPES = frozenset(
    {
        TemplateType.VERIFIABLE_ADDRESS_CHANGED,
        TemplateType.AUTHENTICATOR_KEY_ADDED,
        TemplateType.STUB,
    }
)


def default_priority(template_type: TemplateType) -> Priority:
    """The lane of a template type when the caller names none: ``normal`` for notifications
    (``verifiable_address_changed``, ``authenticator_key_added``, ``stub``), ``urgent`` for
    the codes and links a person is waiting for (every other type, ``test`` included)."""
    return Priority.NORMAL if template_type in _NORMAL_TYPES else Priority.URGENT


@dataclass(frozen=True, slots=True)
class RenderedEmail:
    """The three rendered parts of an email, before MIME assembly."""

    subject: str
    text: str
    html: str | None = None
    locale: str = "en"  # the locale it was rendered in


@dataclass(frozen=True, slots=True)
class Diagnosis:
    """A failure explained: one documented code, and what to do about it."""

    code: str
    transient: bool
    cause: str
    fix: str
    stage: str | None = None
    reply: str | None = None

    def to_json(self) -> dict[str, Any]:
        """The the documentation ``error`` object (``stage`` and ``reply`` only when known)."""
        out: dict[str, Any] = {"code": self.code, "transient": self.transient}
        if self.stage is not None:
            out["stage"] = self.stage
        if self.reply is not None:
            out["reply"] = self.reply
        out["cause"] = self.cause
        out["fix"] = self.fix
        return out

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Diagnosis:
        """Inverse of :meth:`to_json`."""
        return cls(
            code=str(data["code"]),
            transient=bool(data.get("transient", False)),
            cause=str(data.get("cause", "")),
            fix=str(data.get("fix", "")),
            stage=data.get("stage"),
            reply=data.get("reply"),
        )


@dataclass(frozen=True, slots=True)
class Handoff:
    """Where a message went and what the provider answered: the evidence of a hand-off.

    ``transport`` is ``smtp``, ``http`` or ``outbox``; ``host`` is ``host:port`` (None for the
    outbox); ``reply`` the acceptance (``250 2.0.0 Ok: queued as 4Fh2kq0xQ``, or an HTTP status
    and the start of the body); ``provider_message_id`` the provider's id found in it.
    """

    transport: str | None = None
    host: str | None = None
    reply: str | None = None
    provider_message_id: str | None = None


@dataclass(frozen=True, slots=True)
class Dispatch:
    """One delivery attempt of a message; a success carries its :class:`Handoff` fields."""

    id: str
    message_id: str
    status: DispatchStatus
    error: Diagnosis | None
    created_at: datetime
    updated_at: datetime
    reclaimed_from: str | None = None  # the attempt followed a worker that died mid-send
    transport: str | None = None
    host: str | None = None
    reply: str | None = None
    provider_message_id: str | None = None


@dataclass(frozen=True, slots=True)
class NewMessage:
    """A validated, rendered message ready to be stored (the output of intake)."""

    tenant: str
    recipient: str
    template_type: TemplateType
    template_data: dict[str, Any]
    subject: str
    body: str
    html_body: str | None
    mime: bytes
    idempotency_key: str | None = None
    request_hash: str | None = None
    priority: Priority = Priority.URGENT
    # A hash of what the recipient would see (tenant, recipient, type, rendered content):
    # an equal one within ``courier.dedupe_window`` folds into the earlier message.
    content_hash: str | None = None
    locale: str | None = None  # the locale it was rendered in (BCP 47)
    # Mail for several recipients (the SMTP listener's): the MIME is stored once, under this
    # SHA-256, and every recipient's message refers to it.
    mime_ref: str | None = None


@dataclass(frozen=True, slots=True)
class Message:
    """A stored message, as the store returns it."""

    id: str
    tenant: str
    status: Status
    recipient: str
    template_type: TemplateType
    template_data: dict[str, Any]
    subject: str
    body: str
    html_body: str | None
    mime: bytes
    send_count: int
    max_attempts: int
    idempotency_key: str | None
    created_at: datetime
    updated_at: datetime
    next_attempt_at: datetime | None
    expires_at: datetime | None
    waiting_for: WaitingFor | None
    last_error: Diagnosis | None
    lease_owner: str | None = None
    lease_until: datetime | None = None
    request_hash: str | None = None
    reclaimed_from: str | None = None
    dispatches: tuple[Dispatch, ...] = field(default_factory=tuple)
    priority: Priority = Priority.URGENT
    folded_duplicates: int = 0  # later identical enqueues answered with this message
    content_hash: str | None = None  # what a later duplicate is found by (never shown)
    locale: str | None = None  # None for messages stored before locales existed
    mime_ref: str | None = None  # see NewMessage; ``mime`` is filled in by claim and get

    def relay_sender(self) -> str | None:
        """The client's MAIL FROM of mail relayed from the SMTP listener (the tenant's address
        under ``rewrite_from``), which stays the envelope sender; None for other mail."""
        if self.template_type is TemplateType.RELAY:
            mail_from = self.template_data.get("mail_from")
            if isinstance(mail_from, str) and mail_from:
                return mail_from
        return None


REDACTED = "<redacted>"


def _time(value: datetime | None) -> str | None:
    return value.isoformat().replace("+00:00", "Z") if value is not None else None


def dispatch_json(dispatch: Dispatch) -> dict[str, Any]:
    """the documented dispatch object."""
    return {
        "id": dispatch.id,
        "message_id": dispatch.message_id,
        "status": dispatch.status.value,
        "error": dispatch.error.to_json() if dispatch.error else None,
        "created_at": _time(dispatch.created_at),
        "updated_at": _time(dispatch.updated_at),
        "transport": dispatch.transport,
        "host": dispatch.host,
        "reply": dispatch.reply,
        "provider_message_id": dispatch.provider_message_id,
    } | (
        # Only after a takeover: the dead worker may have handed the message off already.
        {"reclaimed_from": dispatch.reclaimed_from} if dispatch.reclaimed_from else {}
    )


def message_json(message: Message, *, expose_bodies: bool) -> dict[str, Any]:
    """the documented message object (a superset of Kratos's); bodies redacted unless exposed."""
    return {
        "id": message.id,
        "tenant": message.tenant,
        "status": message.status.value,
        "type": "email",
        "channel": "email",
        "recipient": message.recipient,
        "subject": message.subject if expose_bodies else REDACTED,
        "body": message.body if expose_bodies else REDACTED,
        "template_type": message.template_type.value,
        "priority": message.priority.value,
        "folded_duplicates": message.folded_duplicates,
        "locale": message.locale,
        "send_count": message.send_count,
        "idempotency_key": message.idempotency_key,
        "created_at": _time(message.created_at),
        "updated_at": _time(message.updated_at),
        "next_attempt_at": _time(message.next_attempt_at)
        if message.status is Status.QUEUED
        else None,
        "waiting_for": message.waiting_for.value if message.waiting_for else None,
        "last_error": message.last_error.to_json() if message.last_error else None,
        "dispatches": [dispatch_json(d) for d in message.dispatches],
    }
