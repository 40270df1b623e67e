"""The hand-off evidence a dispatch row carries (migration 0009), kept apart from the rest of
the store: the columns a success writes, the fields a read gives back, and the search by the
provider's message id."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import ColumnElement, RowMapping, select

from postroom.models import Handoff
from postroom.store.schema import dispatches, messages

COLUMNS = ("transport", "host", "reply", "provider_message_id")


def handoff_values(handoff: Handoff | None) -> dict[str, str | None]:
    """The evidence columns of a dispatch row (all None for a failed attempt)."""
    return {name: getattr(handoff, name) if handoff else None for name in COLUMNS}


def handoff_fields(row: Mapping[str, Any] | RowMapping) -> dict[str, str | None]:
    """The evidence fields of a :class:`~postroom.models.Dispatch` from a stored row."""
    return {name: row.get(name) for name in COLUMNS}


def with_provider_message_id(provider_message_id: str) -> ColumnElement[bool]:
    """Messages one of whose dispatches carries ``provider_message_id`` (read along
    ``ix_dispatches_provider_message_id``)."""
    return messages.c.id.in_(
        select(dispatches.c.message_id).where(
            dispatches.c.provider_message_id == provider_message_id
        )
    )
