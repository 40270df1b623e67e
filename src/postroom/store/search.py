"""How people name messages: by a short id (or any unique part of the id) and by recipient,
case-insensitively or by domain (``@example.org``). The tests the memory store applies to each
message and the lookup every command shares; :mod:`postroom.store.search_sql` has the same
rules as SQL conditions."""

from __future__ import annotations

import re

from postroom.errors import InputError, NotFoundError
from postroom.store.base import MessageFilter
from postroom.store.roles import Records

SHORT_ID = 12
"""Characters of the short id: the id's last group, 48 random bits of a UUIDv7 (the first 48
bits are the clock, shared by every message of the same millisecond)."""

_ID_PART = re.compile(r"^[0-9a-f-]{4,36}$")
_FULL_ID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


def short_id(message_id: str) -> str:
    """The short form of a message id, unique in practice (see :data:`SHORT_ID`)."""
    return message_id[-SHORT_ID:]


def recipient_matches(recipient: str, value: str) -> bool:
    """:func:`~postroom.store.search_sql.recipient_condition` for one recipient."""
    wanted, have = value.strip().lower(), recipient.lower()
    return have.endswith(wanted) if wanted.startswith("@") else have == wanted


def id_matches(message_id: str, fragment: str) -> bool:
    """:func:`~postroom.store.search_sql.id_condition` for one id."""
    part = fragment.lower()
    return message_id.startswith(part) or message_id.endswith(part)


async def resolve_message_id(records: Records, text: str) -> str:
    """The full id of the one message whose id is ``text``, or starts or ends with it (the
    short id of ``messages list`` is its end). Raises :class:`InputError` when several
    messages match, :class:`NotFoundError` when none does (or the text cannot be an id)."""
    wanted = text.strip().lower()
    if _FULL_ID.match(wanted):
        return wanted
    if not _ID_PART.match(wanted):
        raise NotFoundError(
            f"no message has the id {text!r}; give the id, its short form from `messages list` "
            "or at least its first or last 4 characters"
        )
    found = await records.list_messages(MessageFilter(id_fragment=wanted, limit=6))
    if not found:
        raise NotFoundError(f"no message id starts or ends with {wanted}")
    if len(found) > 1:
        shown = ", ".join(m.id for m in found[:5])
        raise InputError(
            f"{wanted} matches several messages ({shown}{', ...' if len(found) > 5 else ''}); "
            "give more characters",
            field="ID",
        )
    return found[0].id
