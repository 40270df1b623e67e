"""Failed credential attempts, throttled per client address.

A wrong admin token or intake token in an API ``Authorization`` header, and a wrong token in
the dashboard's sign-in form, count as failures of the client's address. After
:data:`FAILURES` failures within :data:`WINDOW` seconds, that address gets 429 with
``Retry-After`` for every credential it presents, right or wrong, until the oldest of them
leaves the window. Successes do not count, and do not clear the count either (a valid intake
token cannot launder guesses at the admin token); other addresses are not affected.

The address is the connection's peer, or, when the peer is in ``serve.trusted_proxies``, the
right-most address of ``X-Forwarded-For`` that is not (uvicorn's proxy-headers middleware,
installed by the app, does that). IPv6 clients count per /64 network, the block one host
usually holds.

Counts live in the memory of each ``serve`` process: behind a load balancer with several
processes, an address may try ``FAILURES`` times per process.
"""

from __future__ import annotations

import ipaddress
import math
import time
from collections import OrderedDict, deque
from collections.abc import Callable

from fastapi import Request

FAILURES = 10
"""Failed attempts an address may make within :data:`WINDOW`."""
WINDOW = 600.0
"""Seconds a failure counts."""
MAX_CLIENTS = 10_000
"""Addresses remembered at most; beyond, the one that failed least recently is forgotten."""


def client_of(request: Request) -> str:
    """The address a request's failures count against: the peer (as the proxy middleware
    left it), an IPv4-mapped IPv6 address as IPv4, another IPv6 address as its /64."""
    host = request.client.host if request.client is not None else ""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return host  # not an address (a Unix socket, or what a trusted proxy wrote)
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Network((address, 64), strict=False))
    return str(address)


class Throttle:
    """Recent failures per client address (one per app, shared by the API and the
    dashboard)."""

    def __init__(
        self,
        *,
        failures: int = FAILURES,
        window: float = WINDOW,
        max_clients: int = MAX_CLIENTS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.failures = failures
        self.window = window
        self.max_clients = max_clients
        self._clock = clock
        self._recent: OrderedDict[str, deque[float]] = OrderedDict()

    def _pruned(self, client: str) -> deque[float]:
        stamps = self._recent.get(client)
        if stamps is None:
            return deque()
        horizon = self._clock() - self.window
        while stamps and stamps[0] <= horizon:
            stamps.popleft()
        if not stamps:
            del self._recent[client]
        return stamps

    def retry_after(self, client: str) -> int:
        """Seconds ``client`` must wait before presenting a credential again; 0 when it may
        now."""
        stamps = self._pruned(client)
        if len(stamps) < self.failures:
            return 0
        return max(1, math.ceil(stamps[-self.failures] + self.window - self._clock()))

    def failed(self, client: str) -> float:
        """Count a failed attempt of ``client``; return its time stamp."""
        stamps = self._pruned(client)
        stamp = self._clock()
        stamps.append(stamp)
        self._recent[client] = stamps
        self._recent.move_to_end(client)
        while len(self._recent) > self.max_clients:
            self._recent.popitem(last=False)
        return stamp


def throttle_of(request: Request) -> Throttle:
    """The app's throttle."""
    throttle: Throttle = request.app.state.throttle
    return throttle


def wait_text(seconds: int) -> str:
    """``45 seconds`` or ``7 minutes``: how long to wait, in words."""
    if seconds < 60:
        return f"{seconds} second{'s' if seconds != 1 else ''}"
    minutes = math.ceil(seconds / 60)
    return f"{minutes} minute{'s' if minutes != 1 else ''}"
