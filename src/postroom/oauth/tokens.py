"""What an OAuth2 grant produces and what the client needs from its callers: the access token,
the token endpoint's answer, the place a refresh token is kept, and the grant protocol.
Tokens never appear in a ``repr``."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Protocol


@dataclass(frozen=True, slots=True)
class AccessToken:
    """An access token and when it expires. ``fresh`` is True when it was fetched for this
    request rather than taken from the cache. The value never shows in a ``repr``."""

    value: str = field(repr=False)
    expires_at: datetime
    fresh: bool = True

    def describe(self, source: str) -> str:
        """What ``test-smtp`` shows of a token: where it came from and its expiry, never the
        token itself."""
        left = (self.expires_at - datetime.now(UTC)).total_seconds()
        when = f"valid until {self.expires_at:%Y-%m-%d %H:%M:%S} UTC ({_minutes(left)})"
        if self.fresh:
            return f"access token from {source}, {when}"
        return f"cached access token, {when}"


def _minutes(seconds: float) -> str:
    if seconds < 120:
        return f"{max(int(seconds), 0)} s left"
    return f"{int(seconds // 60)} min left"


@dataclass(frozen=True, slots=True)
class TokenAnswer:
    """What a token endpoint granted. Tokens never show in a ``repr``."""

    access_token: str = field(repr=False)
    expires_in: float
    refresh_token: str | None = field(default=None, repr=False)


class RefreshTokenKeeper(Protocol):
    """Where a delegated sign-in's refresh token lives (the store, for the worker)."""

    async def load(self) -> str | None:
        """The newest refresh token, or None when nobody has signed in yet."""

    async def save(self, token: str) -> None:
        """Keep ``token`` (a rotated refresh token) in place of the previous one."""


class Grant(Protocol):
    """One way to get an access token."""

    @property
    def source(self) -> str:
        """Where tokens come from, for people: the endpoint's host and the grant."""

    async def fetch(self) -> TokenAnswer:
        """Ask the endpoint for a token; raise ``OAuthError`` (stage ``token``)."""
