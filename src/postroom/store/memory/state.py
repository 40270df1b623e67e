"""What every role of the memory store shares: the dicts, the due-time index and the wake-up.
Methods never await anything slow, so each one is atomic with respect to the others on the
event loop. Nothing survives the process; one process only."""

from __future__ import annotations

import heapq
from collections.abc import Callable, Collection
from datetime import UTC, datetime

from postroom.models import Dispatch, Message, Priority, Status
from postroom.store.base import StoredOAuthToken, StoredTenant
from postroom.store.wakeup import Wakeup


class MemoryState:
    """The memory store's data, and the verbs that are not any one role's."""

    def __init__(self) -> None:
        self._messages: dict[str, Message] = {}
        self._dispatches: dict[str, list[Dispatch]] = {}
        self._tenants: dict[str, StoredTenant] = {}
        self._oauth_tokens: dict[str, StoredOAuthToken] = {}
        self._sessions: dict[str, datetime] = {}  # dashboard session -> its expiry
        self._tenant_changes = 0
        # Per tenant: (time, message id until its hand-off, lane), as the SQL store keeps them.
        self._rate: dict[str, list[tuple[datetime, str | None, Priority]]] = {}
        self._last = datetime.min.replace(tzinfo=UTC)
        self._wake = Wakeup()
        # (next attempt, created, id) of queued messages; stale entries are skipped at claim.
        self._due: list[tuple[datetime, datetime, str]] = []
        self._leased: set[str] = set()  # ids of messages in processing

    async def migrate(self) -> None:
        """Nothing to create."""

    def _put(self, message: Message) -> None:
        """Keep ``message``; index it as due or as leased."""
        self._messages[message.id] = message
        if message.status is Status.PROCESSING:
            self._leased.add(message.id)
        else:
            self._leased.discard(message.id)
        if message.status is Status.QUEUED and message.next_attempt_at is not None:
            heapq.heappush(self._due, (message.next_attempt_at, message.created_at, message.id))

    def _slots_handed_off(self, ids: Collection[str], now: datetime) -> None:
        """The slots of ``ids`` count from ``now``, as hand-offs (see ``_MOVE_SLOTS``)."""
        if ids:
            for events in self._rate.values():
                events[:] = [(now, None, ln) if m in ids else (t, m, ln) for t, m, ln in events]

    def _forget_slots_of(self, ids: Collection[str]) -> None:
        """Delete the slots of messages given up or given back without a send."""
        if ids:
            for events in self._rate.values():
                events[:] = [e for e in events if e[1] not in ids]

    async def wait(self, timeout: float) -> None:
        """Return on an enqueue or requeue, or after ``timeout``."""
        await self._wake.wait(timeout)

    def on_urgent(self, call: Callable[[], None]) -> Callable[[], None]:
        """Call ``call`` whenever urgent mail is enqueued, until the function returned is
        called."""
        return self._wake.on_urgent(call)

    async def ping(self) -> None:
        """Always reachable."""

    async def close(self) -> None:
        """Nothing to release."""
