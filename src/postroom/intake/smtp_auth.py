"""Who is who at the SMTP listener: logins (file and API), the lockout after repeated wrong
passwords, and the log of refusals that ``postroom listener log`` and the dashboard show."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import ipaddress
import logging
import os
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from postroom.config import Settings
from postroom.config.passwords import is_slow, keyed_hash, verify
from postroom.store import Store
from postroom.store.listener import Refusal, now

log = logging.getLogger("postroom.listener")

LOCKOUT_FAILURES = 10
LOCKOUT_WINDOW = 600.0
SLOW_CHECK_CACHE = 60.0
API_LOGIN_CACHE = 2.0
FAILURE_DELAY = 0.25
_DUMMY = keyed_hash("no such login")


@dataclass(frozen=True, slots=True)
class Login:
    """A client that logged in: whose mail it sends, and at which priority."""

    username: str
    tenant: str
    priority: str


class LockedOut(Exception):
    """Too many wrong passwords for this username from this client address."""

    def __init__(self, seconds: float) -> None:
        super().__init__(f"locked for {seconds:.0f}s")
        self.seconds = seconds


class Authenticator:
    """Checks listener logins quickly: generated passwords with a keyed hash, chosen ones
    with scrypt off the event loop and remembered for :data:`SLOW_CHECK_CACHE` seconds."""

    def __init__(self, settings: Callable[[], Awaitable[Settings]], store: Store) -> None:
        self._settings = settings
        self._store = store
        self._key = os.urandom(32)  # keys the cache of passed slow checks, in memory only
        self._passed: dict[bytes, float] = {}
        self._api: dict[str, tuple[float, tuple[str, str, str] | None]] = {}
        self._failures: dict[tuple[str, str], deque[float]] = {}

    async def _find(self, username: str) -> tuple[str, str, str] | None:
        """(tenant, stored hash, priority) of ``username``: the file's logins, then the API's."""
        settings = await self._settings()
        for name in settings.tenant_names():
            for login in settings.tenant(name).listener.logins:
                if login.username == username:
                    return name, login.password, login.priority
        clock = time.monotonic()
        cached = self._api.get(username)
        if cached is not None and cached[0] > clock:
            return cached[1]
        stored = await self._store.get_login(username)
        found = None
        if stored is not None and stored.tenant in settings.tenant_names():
            found = (stored.tenant, stored.password_hash, stored.priority)
        if len(self._api) > 10_000:
            self._api.clear()
        self._api[username] = (clock + API_LOGIN_CACHE, found)
        return found

    def forget(self, username: str) -> None:
        """Drop what is remembered of ``username`` (after it changed or was deleted here)."""
        self._api.pop(username, None)

    def locked_for(self, username: str, client: str) -> float:
        """Seconds ``username`` stays locked out from ``client`` (0 when it is not)."""
        failures = self._failures.get((username, client))
        clock = time.monotonic()
        if not failures:
            return 0.0
        while failures and failures[0] < clock - LOCKOUT_WINDOW:
            failures.popleft()
        if len(failures) < LOCKOUT_FAILURES:
            return 0.0
        return max(0.0, failures[-1] + LOCKOUT_WINDOW - clock)

    async def check(self, username: str, password: str, *, client: str) -> Login | None:
        """The login when ``password`` is right; None (after a short delay) when it is not.
        Raise :class:`LockedOut` after too many failures of this username from ``client``."""
        locked = self.locked_for(username, client)
        if locked > 0:
            raise LockedOut(locked)
        found = await self._find(username)
        ok = found is not None and await self._verify(username, password, found[1])
        if not ok:
            if found is None:
                verify(password, _DUMMY)  # the same work as for a known username
            failures = self._failures.setdefault((username, client), deque())
            failures.append(time.monotonic())
            if len(self._failures) > 100_000:
                self._failures.clear()
            await asyncio.sleep(FAILURE_DELAY)
            return None
        assert found is not None
        return Login(username, found[0], found[2])

    async def _verify(self, username: str, password: str, stored: str) -> bool:
        if not is_slow(stored):
            return verify(password, stored)
        key = hmac.new(
            self._key,
            b"\x00".join((username.encode(), stored.encode(), password.encode())),
            hashlib.sha256,
        ).digest()
        clock = time.monotonic()
        until = self._passed.get(key)
        if until is not None and until > clock:
            return True
        ok = await asyncio.to_thread(verify, password, stored)
        if ok:
            if len(self._passed) > 10_000:
                self._passed.clear()
            self._passed[key] = clock + SLOW_CHECK_CACHE
        return ok


def allow_from_tenant(settings: Settings, client: str) -> str | None:
    """The tenant whose ``allow_from`` holds ``client``'s address, or None."""
    try:
        address = ipaddress.ip_address(client)
    except ValueError:
        return None
    for name in settings.tenant_names():
        for network in settings.tenant(name).listener.allow_from:
            if address in ipaddress.ip_network(network):
                return name
    return None


class RefusalLog:
    """Refusals, written to the store in small batches so that a session never waits."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self._waiting: list[Refusal] = []
        self._task: asyncio.Task[None] | None = None

    def record(
        self,
        client: str,
        reply: str,
        reason: str,
        *,
        username: str | None = None,
        tenant: str | None = None,
    ) -> None:
        """Note one refusal (logged at once, stored within a moment)."""
        log.info("refused %s: %s (%s)", client, reply, reason)
        if len(self._waiting) < 1000:
            self._waiting.append(Refusal(now(), client, reply, reason, username, tenant))
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._flush())

    async def _flush(self) -> None:
        await asyncio.sleep(0.05)
        while self._waiting:
            batch, self._waiting = self._waiting, []
            try:
                await self._store.record_refusals(batch)
            except Exception as exc:  # the log must never break a session
                log.warning("could not store %d listener refusal(s): %s", len(batch), exc)

    async def close(self) -> None:
        """Write what is waiting."""
        if self._task is not None:
            with contextlib.suppress(Exception):
                await self._task
        await self._flush()
