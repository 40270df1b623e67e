"""The hand-off evidence a dispatch row carries (migration 0009), kept apart from the rest of
the store: the columns a success writes and the fields a read gives back, for either store.
The search by the provider's message id is SQL: :mod:`postroom.store.evidence_sql`."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from postroom.models import Handoff

COLUMNS = ("transport", "host", "reply", "provider_message_id")


def handoff_values(handoff: Handoff | None) -> dict[str, str | None]:
    """The evidence columns of a dispatch row (all None for a failed attempt)."""
    return {name: getattr(handoff, name) if handoff else None for name in COLUMNS}


def handoff_fields(row: Mapping[Any, Any]) -> dict[str, str | None]:
    """The evidence fields of a :class:`~postroom.models.Dispatch` from a stored row (a
    SQLAlchemy row mapping, or any mapping with those keys)."""
    return {name: row.get(name) for name in COLUMNS}
