"""The worker's side of priority lanes: claimed messages handed to the senders most urgent
first, and rate-limit slots asked for in each message's lane, sparing the store the question
while a tenant's bulk mail is held back."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import heapq
import itertools
import math
import time
from dataclasses import dataclass
from datetime import datetime

from postroom.clock import utcnow
from postroom.config import Settings
from postroom.config.settings import CourierSettings
from postroom.models import Message, Priority
from postroom.store import Queue
from postroom.store.base import SlotWait

URGENT_PEEK = 0.1
"""While stocked with less urgent mail, how often (seconds) a worker looks for urgent mail."""

URGENT_PAUSE = 0.1
"""How long (seconds) bulk sends and status writes wait at most for urgent mail under way."""


PACED_CLAIM = 0.01
"""The bulk mail a claim takes of a tenant with a rate limit: what its limit paces out in
this many seconds, at least one message."""


def held_window(per: float) -> float:
    """How long a rate-limit slot is held for a window of ``per`` seconds: a little longer
    than the window, because the provider counts when a message arrives, and arrivals lag
    the slot by a connection and a DATA exchange, which vary by tens of milliseconds (more on
    a busy host). Without the margin, a slow hand-off at a window's start and a fast one at
    its end land inside one window of the provider's. 0.1 s plus 2% of the window, at most
    1 s: 6 a second becomes 6 in 1.12 s, 30 a minute 30 in 61 s."""
    return per + min(0.1 + 0.02 * per, 1.0)


@dataclass(frozen=True, slots=True)
class Route:
    """What every message of a tenant needs, worked out once per settings version."""

    courier: CourierSettings
    limits: list[tuple[int, float]]
    sender: str

    @property
    def bulk_per_claim(self) -> int | None:
        """How many of this tenant's bulk messages a claim takes (None: as many as there is
        room for). A limit paces bulk mail at its share's rate, one slot at a time, so a
        claim takes what it paces out in ``PACED_CLAIM``: a full batch sent one and wrote
        the rest straight back, hundreds of rows a second on the database for a limit of
        ten messages a second."""
        if not self.limits:
            return None
        rate = min(self.courier.bulk_share * count / per for count, per in self.limits)
        return max(1, math.ceil(rate * PACED_CLAIM))

    def lane(self, message: Message, now: datetime) -> Priority:
        """The lane a message takes a slot in: a normal message that has waited longer than
        ``priority_aging`` counts as urgent, so a flood of codes cannot starve it."""
        aging = self.courier.priority_aging
        waited = (now - message.created_at).total_seconds()
        if message.priority is Priority.NORMAL and aging > 0 and waited > aging:
            return Priority.URGENT
        return message.priority


class Ready:
    """Claimed messages not started yet: the most urgent lane first, then in claim order.

    A sender that waits is handed the next message it may take at once. A sender that takes
    no bulk mail (the one a worker keeps free for codes) is never handed any."""

    def __init__(self) -> None:
        self._heap: list[tuple[int, int, Message]] = []
        self._order = itertools.count()
        self._waiting: collections.deque[tuple[asyncio.Future[Message], bool]] = collections.deque()
        self.urgent = 0  # how many urgent ones wait
        self._peeked = 0.0  # when the worker last looked for urgent mail while stocked

    def put(self, message: Message) -> None:
        """Queue a claimed message, or hand it to the first waiting sender that takes it."""
        bulk = message.priority is Priority.BULK
        for entry in list(self._waiting):
            waiter, takes_bulk = entry
            if waiter.done():  # its sender was cancelled: it takes nothing more
                self._waiting.remove(entry)
            elif takes_bulk or not bulk:
                self._waiting.remove(entry)
                waiter.set_result(message)
                return
        heapq.heappush(self._heap, (message.priority.rank, next(self._order), message))
        self.urgent += message.priority is Priority.URGENT

    async def get(self, *, bulk: bool = True) -> Message:
        """The next message to send (with ``bulk=False``, the next that is not bulk mail),
        waiting for one."""
        if self._heap and (bulk or self._heap[0][2].priority is not Priority.BULK):
            return self._took(*heapq.heappop(self._heap))
        waiter: asyncio.Future[Message] = asyncio.get_running_loop().create_future()
        entry = (waiter, bulk)
        self._waiting.append(entry)
        try:
            return await waiter
        except asyncio.CancelledError:
            if entry in self._waiting:
                self._waiting.remove(entry)
            elif waiter.done() and not waiter.cancelled():
                self.put(waiter.result())  # handed over as the sender was cancelled: keep it
            raise

    def take_all(self) -> list[Message]:
        """Every message still waiting (at shutdown)."""
        out = []
        while self._heap:
            out.append(self._took(*heapq.heappop(self._heap)))
        return out

    def time_to_peek(self, every: float = URGENT_PEEK) -> bool:
        """True (and noted) when no urgent message waits here and the last look for urgent
        mail due in the store was ``every`` seconds ago or more."""
        now = time.monotonic()
        if self.urgent or now < self._peeked + every:
            return False
        self._peeked = now
        return True

    def _took(self, rank: int, _order: int, message: Message) -> Message:
        self.urgent -= rank == Priority.URGENT.rank
        return message


class CodesFirst:
    """While urgent mail is on its way through this worker (enqueued and noticed, claimed or
    being sent), bulk sends wait to start and status writes wait to be written, each at most
    ``URGENT_PAUSE`` after the pause began. On a busy host a code's claim and hand-off
    otherwise queue for the processor and the database behind the newsletter's sends, which
    doubled a code's time with 100,000 bulk messages being sent (bench/priority.py)."""

    def __init__(self) -> None:
        self._open = asyncio.Event()
        self._open.set()
        self._since = 0.0  # when the pause began (the event loop's clock)
        self._notices = 0  # urgent enqueues noticed so far
        self._claimed_up_to = 0  # notices that a claim begun after them has answered
        self._under_way = 0  # urgent messages claimed and not finished

    def noticed(self) -> None:
        """Urgent mail was enqueued: pause (again) until a claim begun from now has taken it."""
        self._notices += 1
        self._open.clear()
        self._since = asyncio.get_running_loop().time()

    def claim_begins(self) -> int:
        """Note that a claim begins; pass what this returns to :meth:`claimed`."""
        return self._notices

    def claimed(self, messages: list[Message], begun_at: int) -> None:
        """A claim begun at ``begun_at`` took ``messages``."""
        self._claimed_up_to = max(self._claimed_up_to, begun_at)
        self._under_way += sum(m.priority is Priority.URGENT for m in messages)
        self._update()

    def finished(self, message: Message) -> None:
        """A claimed message was sent, or failed, or was given back."""
        if message.priority is Priority.URGENT:
            self._under_way -= 1
            self._update()

    async def wait(self) -> None:
        """Return when no urgent mail is under way, or when the pause has lasted
        ``URGENT_PAUSE``."""
        if self._open.is_set():
            return
        left = self._since + URGENT_PAUSE - asyncio.get_running_loop().time()
        if left > 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._open.wait(), left)

    def _update(self) -> None:
        if self._under_way > 0 or self._notices > self._claimed_up_to:
            if self._open.is_set():
                self._open.clear()
                self._since = asyncio.get_running_loop().time()
        else:
            self._open.set()


class BulkHolds:
    """Per tenant, until when its bulk mail has no slot: learnt from the last refusal, so that
    the rest of a claimed batch is held back without asking the store, and not claimed."""

    def __init__(self, lease: float) -> None:
        self._until: dict[str, SlotWait] = {}
        self._lease = lease  # how long a slot taken for a send may wait for its outcome

    def holding(self) -> list[str]:
        """Tenants whose bulk mail is held back now."""
        now = utcnow()
        return [tenant for tenant, wait in self._until.items() if now < wait.free_at]

    def idle_wait(self, wait: float) -> float:
        """How long an idle worker waits when ``wait`` is until the next message falls due:
        what falls due may be held-back bulk, so no sooner than the first hold ends (at most
        ``wait``'s ceiling of one poll)."""
        now = utcnow()
        ends = [w.free_at for w in self._until.values() if w.free_at > now]
        if not ends:
            return wait
        return max(wait, min(1.0, (min(ends) - now).total_seconds()))

    async def take(
        self, store: Queue, route: Route, message: Message, now: datetime
    ) -> SlotWait | None:
        """Take a slot for ``message`` in its lane (None), or say how long it waits."""
        lane = route.lane(message, now)
        held = self._until.get(message.tenant)
        if lane is Priority.BULK and held is not None and now < held.free_at:
            return held  # no bulk message of this tenant gets a slot before then
        wait = await store.take_slot(
            message.tenant,
            route.limits,
            message_id=message.id,
            lane=lane,
            bulk_share=route.courier.bulk_share,
            lease=self._lease,
        )
        if wait is not None and lane is Priority.BULK:
            self._until[message.tenant] = wait
        return wait


def lanes_of(settings: Settings) -> dict[str, float]:
    """Every tenant with its ``priority_aging``: claims share their room between them."""
    return {name: settings.tenant(name).priority_aging for name in settings.tenant_names()}
