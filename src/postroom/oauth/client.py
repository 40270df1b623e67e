"""OAuth2 access tokens for the SMTP XOAUTH2 login: the client a transport holds.

A :class:`TokenCache` holds one tenant's access token for every connection of its transport:
fetched on first use, reused until shortly before it expires, then fetched again; when the
server refuses a token, the connection drops it (:meth:`TokenCache.drop`) and asks once more.
Where the token comes from is a grant (:mod:`postroom.oauth.grants`); :func:`token_cache` picks
the grant a tenant's ``oauth2`` settings name.

Every failure is an :class:`~postroom.errors.OAuthError` at stage ``token`` with the
endpoint's HTTP status and OAuth2 error; ``diagnosis.oauth`` explains it. Tokens, secrets and
keys never appear in an error, a log line or a ``repr``.

:class:`~postroom.oauth.tokens.AccessToken` and
:class:`~postroom.oauth.tokens.RefreshTokenKeeper` are re-exported here: they are what a
transport hands to and gets from the client.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime

from postroom.config.oauth2 import OAuth2Settings
from postroom.oauth.endpoint import TokenEndpoint
from postroom.oauth.grants import ClientCredentialsGrant, JwtBearerGrant, RefreshTokenGrant
from postroom.oauth.tokens import AccessToken, Grant, RefreshTokenKeeper

__all__ = ["REFRESH_MARGIN", "AccessToken", "RefreshTokenKeeper", "TokenCache", "token_cache"]

log = logging.getLogger("postroom.oauth")

REFRESH_MARGIN = 300.0
"""Seconds before its expiry that a token is replaced (at most a tenth of its lifetime)."""


class TokenCache:
    """One tenant's access token, shared by every connection of its transport.

    :meth:`get` returns the cached token until shortly before it expires (``REFRESH_MARGIN``,
    at most a tenth of the token's lifetime), then fetches a new one; concurrent callers wait
    for the same request. ``requests`` counts the token requests made.
    """

    def __init__(self, grant: Grant, *, clock: Callable[[], float] = time.time) -> None:
        self.grant = grant
        self.clock = clock
        self.requests = 0
        self._token: AccessToken | None = None
        self._renew_at = 0.0
        self._lock = asyncio.Lock()

    @property
    def source(self) -> str:
        """Where the tokens come from, for people."""
        return self.grant.source

    async def get(self) -> AccessToken:
        """A token valid for a while yet; raise ``OAuthError`` (stage ``token``)."""
        token = self._token
        if token is not None and self.clock() < self._renew_at:
            return AccessToken(token.value, token.expires_at, fresh=False)
        async with self._lock:
            token = self._token
            if token is not None and self.clock() < self._renew_at:
                return AccessToken(token.value, token.expires_at, fresh=False)
            self.requests += 1
            started = self.clock()
            answer = await self.grant.fetch()
            lifetime = answer.expires_in
            expires = datetime.fromtimestamp(started + lifetime, UTC)
            self._token = AccessToken(answer.access_token, expires, fresh=True)
            self._renew_at = started + lifetime - min(REFRESH_MARGIN, lifetime / 10)
            log.debug("new access token from %s, valid until %s", self.source, expires)
            return self._token

    def drop(self, token: AccessToken) -> None:
        """Forget ``token`` (the server refused it) so the next :meth:`get` fetches anew."""
        if self._token is not None and self._token.value == token.value:
            self._token = None
            self._renew_at = 0.0


def token_cache(
    settings: OAuth2Settings,
    *,
    user: str | None,
    timeout: float,
    allow_private_targets: bool = True,
    refresh_tokens: RefreshTokenKeeper | None = None,
) -> TokenCache | None:
    """The token cache for a tenant's ``oauth2`` settings (None when none are configured).

    ``user`` is the mailbox that logs in (Google's default ``subject``). Raise
    ``ConfigError`` when a Google key file cannot be read.
    """
    if not settings.configured:
        return None
    scope = settings.effective_scope()
    if settings.provider == "google":
        key = settings.service_account()
        return TokenCache(
            JwtBearerGrant(
                key,
                subject=settings.subject or user,
                scope=scope,
                timeout=timeout,
                allow_private_targets=allow_private_targets,
            )
        )
    secrets = tuple(s for s in (settings.client_secret, settings.refresh_token) if s)
    endpoint = TokenEndpoint(
        settings.token_endpoint(),
        provider=settings.provider,
        timeout=timeout,
        allow_private_targets=allow_private_targets,
        secrets=secrets,
    )
    assert settings.client_id is not None  # the settings model requires it
    if settings.effective_flow == "device_code":
        return TokenCache(
            RefreshTokenGrant(
                endpoint,
                client_id=settings.client_id,
                client_secret=settings.client_secret,
                scope=scope,
                keeper=refresh_tokens,
                configured=settings.refresh_token,
            )
        )
    assert settings.client_secret is not None
    return TokenCache(
        ClientCredentialsGrant(
            endpoint,
            client_id=settings.client_id,
            client_secret=settings.client_secret,
            scope=scope,
        )
    )
