"""Where access tokens come from: the grants behind a :class:`~postroom.oauth.client.TokenCache`.

- :class:`ClientCredentialsGrant` (Microsoft Entra ID and any ``generic`` provider),
- :class:`JwtBearerGrant` (Google service accounts with domain-wide delegation, RFC 7523; the
  assertion is signed by :mod:`postroom.oauth.signing`),
- :class:`RefreshTokenGrant` (Microsoft's device-code sign-in: ``postroom oauth login`` keeps
  the refresh token, this grant turns it into access tokens and keeps the rotated one through
  a :class:`~postroom.oauth.tokens.RefreshTokenKeeper` the caller supplies, since transports
  never touch the store).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from postroom.errors import OAuthError
from postroom.oauth.endpoint import TokenEndpoint, parse_answer
from postroom.oauth.signing import jwt_assertion
from postroom.oauth.tokens import RefreshTokenKeeper, TokenAnswer

log = logging.getLogger("postroom.oauth")

JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"


class ClientCredentialsGrant:
    """OAuth2 client credentials (RFC 6749 4.4): the app's own identity, no user involved."""

    def __init__(
        self, endpoint: TokenEndpoint, *, client_id: str, client_secret: str, scope: str
    ) -> None:
        self.endpoint = endpoint
        self._form = {
            "grant_type": "client_credentials",
            "client_id": client_id,
            "client_secret": client_secret,
            "scope": scope,
        }

    @property
    def source(self) -> str:
        """The endpoint's host and the grant."""
        return f"{self.endpoint.host} (client credentials)"

    async def fetch(self) -> TokenAnswer:
        """One token request."""
        return parse_answer(await self.endpoint.post(self._form), self.endpoint)


class JwtBearerGrant:
    """Google's service account flow: a signed JWT exchanged for an access token that acts
    as ``subject`` (domain-wide delegation)."""

    def __init__(
        self,
        key: Mapping[str, Any],
        *,
        subject: str | None,
        scope: str,
        timeout: float,
        allow_private_targets: bool = True,
    ) -> None:
        self.key = key
        self.subject = subject
        self.scope = scope
        self.endpoint = TokenEndpoint(
            str(key["token_uri"]),
            provider="google",
            timeout=timeout,
            allow_private_targets=allow_private_targets,
        )

    @property
    def source(self) -> str:
        """The endpoint's host and the grant."""
        who = f" as {self.subject}" if self.subject else ""
        return f"{self.endpoint.host} (service account {self.key['client_email']}{who})"

    async def fetch(self) -> TokenAnswer:
        """Sign a fresh assertion and exchange it."""
        assertion = jwt_assertion(self.key, subject=self.subject, scope=self.scope)
        data = await self.endpoint.post({"grant_type": JWT_BEARER, "assertion": assertion})
        return parse_answer(data, self.endpoint)


class RefreshTokenGrant:
    """Access tokens from a delegated sign-in's refresh token (``postroom oauth login``).

    A rotated refresh token from the answer is kept in memory at once and handed to the
    keeper; when the endpoint refuses ours (``invalid_grant``), a newer one another worker
    kept is tried once.
    """

    def __init__(
        self,
        endpoint: TokenEndpoint,
        *,
        client_id: str,
        client_secret: str | None,
        scope: str,
        keeper: RefreshTokenKeeper | None,
        configured: str | None,
    ) -> None:
        self.endpoint = endpoint
        self.client_id = client_id
        self.client_secret = client_secret
        self.scope = scope
        self.keeper = keeper
        self._current = configured
        self._loaded = keeper is None

    @property
    def source(self) -> str:
        """The endpoint's host and the grant."""
        return f"{self.endpoint.host} (refresh token from `postroom oauth login`)"

    async def _latest(self) -> str | None:
        if self.keeper is not None and not self._loaded:
            self._current = await self.keeper.load() or self._current
            self._loaded = True
        return self._current

    async def fetch(self) -> TokenAnswer:
        """Redeem the refresh token; keep the rotated one."""
        token = await self._latest()
        if not token:
            raise OAuthError(
                "nobody has signed in for this tenant yet: run `postroom oauth login`",
                stage="token",
                error="login_required",
                provider=self.endpoint.provider,
                endpoint=self.endpoint.host,
            )
        try:
            answer = await self._redeem(token)
        except OAuthError as exc:
            newer = await self.keeper.load() if self.keeper is not None else None
            if exc.error != "invalid_grant" or not newer or newer == token:
                raise
            self._current = newer
            answer = await self._redeem(newer)
        if answer.refresh_token and answer.refresh_token != self._current:
            self._current = answer.refresh_token
            if self.keeper is not None:
                try:
                    await self.keeper.save(answer.refresh_token)
                except Exception as exc:  # the token works; keeping it is best effort
                    log.warning(
                        "could not keep the rotated refresh token (%s); it is kept in memory "
                        "until this worker stops",
                        type(exc).__name__,
                    )
        return answer

    async def _redeem(self, refresh_token: str) -> TokenAnswer:
        form = {
            "grant_type": "refresh_token",
            "client_id": self.client_id,
            "refresh_token": refresh_token,
            "scope": self.scope,
        }
        if self.client_secret:
            form["client_secret"] = self.client_secret
        return parse_answer(await self.endpoint.post(form), self.endpoint)
