"""The clock: one place that says what time it is, so that every module agrees (timezone-aware
UTC) and tests can move time by replacing one function where it is used."""

from __future__ import annotations

from datetime import UTC, datetime


def utcnow() -> datetime:
    """The current time, timezone-aware UTC."""
    return datetime.now(UTC)
