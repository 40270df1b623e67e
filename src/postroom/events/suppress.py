"""The suppression list at intake: a ``normal`` or ``bulk`` message to a suppressed address is
refused and nothing is stored; ``urgent`` mail (a person waiting for a code or a link) goes
out unless the tenant sets ``suppression.urgent: true``."""

from __future__ import annotations

from collections.abc import Sequence

from postroom.config import Settings
from postroom.errors import SuppressedError
from postroom.events.webhooks import message_data, owed
from postroom.models import NewMessage, TemplateType
from postroom.store import Queue, utcnow
from postroom.store.events_base import Suppression
from postroom.store.records import events_of

URGENT_TYPES = frozenset(
    {
        TemplateType.LOGIN_CODE_VALID,
        TemplateType.REGISTRATION_CODE_VALID,
        TemplateType.VERIFICATION_INVALID,
        TemplateType.VERIFICATION_VALID,
        TemplateType.VERIFICATION_CODE_INVALID,
        TemplateType.VERIFICATION_CODE_VALID,
        TemplateType.RECOVERY_INVALID,
        TemplateType.RECOVERY_VALID,
        TemplateType.RECOVERY_CODE_INVALID,
        TemplateType.RECOVERY_CODE_VALID,
        TemplateType.TEST,
    }
)
"""Codes and links a person is waiting for: never held back by the list by default."""


def is_urgent(message: NewMessage, *, bulk: bool = False) -> bool:
    """True for mail a person is waiting for: by template type, and for mail relayed through
    the SMTP listener by its priority (the login's, or ``X-Postroom-Priority``); bulk mail
    never is."""
    if bulk:
        return False
    if message.template_type is TemplateType.RELAY:
        return message.template_data.get("priority") == "urgent"
    return message.template_type in URGENT_TYPES


async def admit(
    store: Queue, settings: Settings, prepared: Sequence[NewMessage], *, bulk: bool = False
) -> list[NewMessage]:
    """The messages that may be stored. A suppressed one raises :class:`SuppressedError`
    (with ``bulk``, it is left out instead); either way a ``message.suppressed`` webhook is
    owed for it."""
    records = events_of(store)
    now = utcnow()
    admitted: list[NewMessage] = []
    refused: list[tuple[NewMessage, Suppression]] = []
    for new in prepared:
        courier = settings.tenant(new.tenant)
        if is_urgent(new, bulk=bulk) and not courier.suppression.urgent:
            admitted.append(new)
            continue
        found = await records.suppression(new.tenant, new.recipient, now=now)
        if found is None:
            admitted.append(new)
        else:
            refused.append((new, found))
    for new, found in refused:
        data = message_data(
            message_id=None,
            recipient=new.recipient,
            template_type=new.template_type.value,
            template_data=new.template_data,
            event="suppressed",
            diagnosis=found.event,
        )
        courier = settings.tenant(new.tenant)
        await records.add_deliveries(owed(new.tenant, courier, "message.suppressed", data, now=now))
    if refused and not bulk:
        new, found = refused[0]
        since = found.created_at.isoformat(timespec="seconds").replace("+00:00", "Z")
        raise SuppressedError(found.address, reason=found.reason, since=since)
    return admitted
