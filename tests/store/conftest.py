"""Fixtures of the store contract suites."""

from __future__ import annotations

import pytest
from store_support import Clock

from postroom import clock


@pytest.fixture
def clock_at(monkeypatch: pytest.MonkeyPatch) -> Clock:
    """Stop the stores' clock at the current time; ``advance`` moves it on."""
    stopped = Clock(clock.utcnow())
    monkeypatch.setattr(clock, "utcnow", stopped)
    return stopped
