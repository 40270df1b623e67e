"""How a store wakes the workers of its process: every enqueue or requeue rings, and an
enqueue that carries urgent mail (a code a person is waiting for) also calls the workers'
urgent watchers at once, so that a worker busy with bulk mail claims the code now instead of
at its next look. On PostgreSQL the rings of other processes arrive through LISTEN/NOTIFY.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Iterable

from postroom.models import NewMessage, Priority

URGENT_PAYLOAD = "urgent"
"""The NOTIFY payload of an enqueue that stored urgent mail."""


def carries_urgent(messages: Iterable[NewMessage]) -> bool:
    """Whether an enqueue of ``messages`` is one that urgent watchers hear of."""
    return any(new.priority is Priority.URGENT for new in messages)


class Wakeup:
    """One store's wake-ups: :meth:`wait` for any work, :meth:`on_urgent` for urgent mail."""

    def __init__(self) -> None:
        self._any = asyncio.Event()
        self._urgent: list[Callable[[], None]] = []

    def ring(self, *, urgent: bool = False) -> None:
        """Work may have arrived; with ``urgent``, urgent mail has."""
        self._any.set()
        if urgent:
            for call in self._urgent:
                call()

    def on_urgent(self, call: Callable[[], None]) -> Callable[[], None]:
        """Call ``call`` (in the event loop, without waiting) whenever urgent mail arrives,
        until the function returned is called."""
        self._urgent.append(call)
        return lambda: self._urgent.remove(call)

    async def wait(self, timeout: float) -> None:
        """Return after a ring, or after ``timeout`` seconds."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._any.wait(), timeout=max(timeout, 0))
        self._any.clear()
