"""The suppression list at intake: a ``normal`` or ``bulk`` message to a suppressed address is
refused and nothing is stored; ``urgent`` mail (a person waiting for a code or a link) goes
out unless the tenant sets ``suppression.urgent: true``."""

from __future__ import annotations

from collections.abc import Sequence

from postroom.config import Settings
from postroom.errors import SuppressedError
from postroom.events.webhooks import message_data, owed
from postroom.models import NewMessage, Priority
from postroom.store import Queue, utcnow
from postroom.store.events_base import Suppression
from postroom.store.records import events_of


def is_urgent(message: NewMessage, *, bulk: bool = False) -> bool:
    """True for mail a person is waiting for: the message's priority lane (set by template
    type, the caller, or for listener mail the login or ``X-Postroom-Priority``); mail sent
    with ``send --bulk`` never is."""
    if bulk:
        return False
    return message.priority is Priority.URGENT


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
    checks = [
        not is_urgent(new, bulk=bulk) or settings.tenant(new.tenant).suppression.urgent
        for new in prepared
    ]
    # One read for the whole batch (a bulk send, a batched intake request), not one a message.
    checked = [new for new, check in zip(prepared, checks, strict=True) if check]
    suppressed = await records.suppressions_of({(n.tenant, n.recipient) for n in checked}, now=now)
    for new, check in zip(prepared, checks, strict=True):
        entry = suppressed.get((new.tenant, new.recipient)) if check else None
        if entry is None:
            admitted.append(new)
        else:
            refused.append((new, entry))
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
