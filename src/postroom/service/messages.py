"""Messages as the API, the dashboard and the CLI handle them: newest-first pages with page
tokens, one message, retry with its tenant's budget, cancel with code ``cancelled``."""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass, replace
from datetime import UTC, datetime

from postroom.config.settings import Settings
from postroom.diagnosis import diagnose
from postroom.errors import InputError
from postroom.models import Message, Priority
from postroom.service.tenants import courier_for
from postroom.store import MessageFilter, Records
from postroom.text import data_problem


@dataclass(frozen=True, slots=True)
class Page:
    """One page of messages, newest first; ``next_token`` reads the next one (None: last)."""

    messages: list[Message]
    next_token: str | None


def page_token(message: Message) -> str:
    """The token of the page that starts after ``message`` (opaque to callers)."""
    raw = f"{message.created_at.isoformat()}|{message.id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def parse_page_token(token: str) -> tuple[datetime, str]:
    """The ``(created_at, id)`` a page token carries (a UTC time); raise :class:`InputError`
    for anything :func:`page_token` would not have written."""
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
        created, _, message_id = raw.partition("|")
        when = datetime.fromisoformat(created)
        if when.tzinfo is None or data_problem(message_id) is not None:
            raise ValueError("not one of ours")
        return when.astimezone(UTC), message_id
    except (ValueError, OverflowError, binascii.Error):  # UnicodeDecodeError is a ValueError
        raise InputError("is not a page token this server gave out", field="page_token") from None


async def list_page(records: Records, query: MessageFilter, *, token: str | None = None) -> Page:
    """Up to ``query.limit`` messages matching ``query``, newest first, starting after the
    page ``token`` names (the first page without one); raise :class:`InputError` for a token
    this server did not give out."""
    before = parse_page_token(token) if token else query.before
    rows = await records.list_messages(replace(query, limit=query.limit + 1, before=before))
    page = rows[: query.limit]
    more = len(rows) > query.limit
    return Page(page, page_token(page[-1]) if more else None)


async def get(records: Records, message_id: str) -> Message:
    """One message with its dispatches, newest first; raise ``NotFoundError``."""
    return await records.get(message_id)


async def retry(records: Records, settings: Settings, message_id: str) -> Message:
    """Queue an abandoned message again now, with its tenant's attempt budget and TTL (the
    default's for a tenant that is gone); ``NotFoundError`` or ``ConflictError`` otherwise."""
    current = await records.get(message_id)
    courier = courier_for(settings, current.tenant)
    ttl = courier.bulk_ttl if current.priority is Priority.BULK else courier.message_ttl
    return await records.retry(message_id, attempts=courier.message_retries + 1, ttl=ttl)


async def cancel(records: Records, message_id: str) -> Message:
    """Abandon a queued message with code ``cancelled``; ``ConflictError`` when not queued."""
    return await records.cancel(message_id, error=diagnose("cancelled"))
