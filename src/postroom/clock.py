"""The clock: one place that says what time it is, so that every module agrees (timezone-aware
UTC). The stores read it as ``clock.utcnow()``, so a test moves their time (leases, expiries,
rate windows) by replacing this one function."""

from __future__ import annotations

from datetime import UTC, datetime


def utcnow() -> datetime:
    """The current time, timezone-aware UTC."""
    return datetime.now(UTC)
