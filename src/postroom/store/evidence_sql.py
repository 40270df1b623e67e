"""The SQL store's search by the provider's message id, over the hand-off evidence columns
(:mod:`postroom.store.evidence`)."""

from __future__ import annotations

from sqlalchemy import ColumnElement, select

from postroom.store.schema import dispatches, messages


def with_provider_message_id(provider_message_id: str) -> ColumnElement[bool]:
    """Messages one of whose dispatches carries ``provider_message_id`` (read along
    ``ix_dispatches_provider_message_id``)."""
    return messages.c.id.in_(
        select(dispatches.c.message_id).where(
            dispatches.c.provider_message_id == provider_message_id
        )
    )
