"""Where the refresh token of an OAuth2 device-code sign-in lives.

``postroom oauth login`` signs a person in once. For a tenant saved through the API the
refresh token goes into its settings (``smtp.oauth2.refresh_token``, encrypted like every
credential); a tenant from the configuration file cannot be written, so its token is kept in
the store's ``oauth_tokens`` table. When the provider rotates the token, the worker keeps the
new one in that table too, for both kinds: rewriting an API tenant's settings at every
rotation would reopen its connections each time.

A kept token remembers which configured token it descends from (``origin``). When an
operator configures another refresh token, or signs in again for an API tenant, the kept
one is out of date and the settings win.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

from postroom.config.secrets import Crypter
from postroom.config.settings import CourierSettings
from postroom.store import Tenants


def origin_of(configured: str | None) -> str | None:
    """A short fingerprint of the configured refresh token (None when there is none)."""
    if not configured:
        return None
    return hashlib.sha256(b"postroom-refresh-token\x00" + configured.encode()).hexdigest()[:32]


class StoredRefreshToken:
    """A :class:`~postroom.oauth.tokens.RefreshTokenKeeper` over the store: the newest
    refresh token of one tenant, encrypted with ``secrets.default``."""

    def __init__(
        self, store: Tenants, crypter: Crypter, tenant: str, *, configured: str | None
    ) -> None:
        self.store = store
        self.crypter = crypter
        self.tenant = tenant
        self.configured = configured

    async def load(self) -> str | None:
        """The kept token when it descends from the configured one, else the configured."""
        kept = await self.store.get_oauth_token(self.tenant)
        if kept is not None and kept.origin == origin_of(self.configured):
            return self.crypter.decrypt(kept.refresh_token)
        return self.configured

    async def save(self, token: str) -> None:
        """Keep ``token`` encrypted; raise ``ConfigError`` when no secret is configured."""
        await self.store.put_oauth_token(
            self.tenant,
            refresh_token=self.crypter.encrypt(token),
            origin=origin_of(self.configured),
        )


def refresh_token_keeper(
    store: Tenants, courier: CourierSettings, tenant: str, *, secrets: Sequence[str]
) -> StoredRefreshToken | None:
    """The keeper for ``tenant`` when its SMTP login is a device-code sign-in, else None.

    ``secrets`` is ``secrets.default`` of the configuration.
    """
    oauth = courier.smtp.oauth2
    if not oauth.configured or oauth.effective_flow != "device_code":
        return None
    return StoredRefreshToken(store, Crypter(secrets), tenant, configured=oauth.refresh_token)
