"""How people name messages, as SQL conditions for the SQL store: recipients in any case or
by domain, ids by any start or end. :mod:`postroom.store.search` applies the same rules to one
message at a time, for the memory store."""

from __future__ import annotations

from sqlalchemy import ColumnElement, func, or_

from postroom.store.schema import messages


def _escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def recipient_condition(value: str) -> ColumnElement[bool]:
    """Recipients equal to ``value`` in any case, or at the domain ``@example.org``."""
    wanted = value.strip().lower()
    column = func.lower(messages.c.recipient)
    if wanted.startswith("@"):
        return column.like(f"%{_escape(wanted)}", escape="\\")
    return column == wanted  # read along ix_messages_recipient_lower (migration 0009)


def id_condition(fragment: str) -> ColumnElement[bool]:
    """Ids that start or end with ``fragment``."""
    part = _escape(fragment.lower())
    return or_(
        messages.c.id.like(f"{part}%", escape="\\"), messages.c.id.like(f"%{part}", escape="\\")
    )
