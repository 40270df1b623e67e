"""OAuth2 access tokens for the SMTP XOAUTH2 login.

A :class:`TokenCache` holds one tenant's access token for every connection of its transport:
fetched on first use, reused until shortly before it expires, then fetched again; when the
server refuses a token, the connection drops it (:meth:`TokenCache.drop`) and asks once more.
Where the token comes from is a grant:

- :class:`ClientCredentialsGrant` (Microsoft Entra ID and any ``generic`` provider),
- :class:`JwtBearerGrant` (Google service accounts with domain-wide delegation, RFC 7523; the
  assertion is signed RS256 with the key file's private key),
- :class:`RefreshTokenGrant` (Microsoft's device-code sign-in: ``postroom oauth login`` keeps
  the refresh token, this grant turns it into access tokens and keeps the rotated one through
  a :class:`RefreshTokenKeeper` the caller supplies, since transports never touch the store).

:func:`request_device_code` and :func:`poll_device_code` are the sign-in itself, for the CLI.

Every failure is an :class:`~postroom.errors.OAuthError` at stage ``token`` with the
endpoint's HTTP status and OAuth2 error; ``diagnosis.oauth`` explains it. Tokens, secrets and
keys never appear in an error, a log line or a ``repr``.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import math
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol
from urllib.parse import urlsplit

import httpx
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from postroom.codes import DiagnosisCode
from postroom.config.oauth2 import OAuth2Settings
from postroom.errors import ConfigError, DeliveryError, OAuthError, exception_chain
from postroom.net.client import excerpt, make_client, read_limited

log = logging.getLogger("postroom.oauth")

REFRESH_MARGIN = 300.0
"""Seconds before its expiry that a token is replaced (at most a tenth of its lifetime)."""
DEFAULT_LIFETIME = 3600.0
"""Assumed lifetime of a token whose answer has no ``expires_in``."""
MAX_ANSWER = 64 * 1024
"""Bytes of a token endpoint's answer read at most."""
JWT_LIFETIME = 3600
"""Lifetime of a Google JWT bearer assertion (Google accepts at most an hour)."""
JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
DEVICE_CODE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"
_DESCRIPTION_LIMIT = 400


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


# -- the token endpoint -------------------------------------------------------------------


def host_of(url: str) -> str:
    """The host of ``url``, for messages (never the query, which could hold a key)."""
    try:
        return urlsplit(url).hostname or url
    except ValueError:
        return "the token endpoint"


class TokenEndpoint:
    """POSTs forms to one OAuth2 token endpoint and reads its JSON answer.

    TLS is verified against the system trust store; redirects are not followed; proxies from
    the environment are not used; a tenant saved through the API may not reach private
    addresses (the same guard as HTTP delivery).
    """

    def __init__(
        self,
        url: str,
        *,
        provider: str | None,
        timeout: float,
        allow_private_targets: bool = True,
        secrets: tuple[str, ...] = (),
    ) -> None:
        self.url = url
        self.provider = provider
        self.timeout = timeout
        self.allow_private_targets = allow_private_targets
        self._secrets = tuple(s for s in secrets if s)

    @property
    def host(self) -> str:
        """The endpoint's host name."""
        return host_of(self.url)

    async def post(self, form: Mapping[str, str]) -> dict[str, Any]:
        """POST ``form``; return the JSON object of a 2xx answer, else raise ``OAuthError``
        with the HTTP status and the OAuth2 ``error`` and ``error_description``."""
        where = f"the token endpoint {self.host}"
        async with make_client(
            timeout=self.timeout, connections=1, allow_private_targets=self.allow_private_targets
        ) as client:
            try:
                async with client.stream(
                    "POST", self.url, data=dict(form), headers={"Accept": "application/json"}
                ) as response:
                    content = (await read_limited(response, MAX_ANSWER))[:MAX_ANSWER]
            except DeliveryError as exc:  # the SSRF guard or DNS, raised inside httpcore
                raise self._error(f"{where}: {exc}", hint=exc.hint) from exc
            except httpx.TransportError as exc:
                guard = next(
                    (e for e in exception_chain(exc) if isinstance(e, DeliveryError)), None
                )
                hint = guard.hint if guard is not None else None
                raise self._error(f"cannot reach {where}: {_transport_text(exc)}", hint=hint) from (
                    exc
                )
        status = response.status_code
        data = _json_object(content)
        if 200 <= status < 300 and data is not None:
            return data
        error = _text(data.get("error")) if data else None
        description = _text(data.get("error_description")) if data else None
        if 200 <= status < 300:
            reply = "the answer is not a JSON object"
        elif error:
            reply = f"{error}: {description}" if description else error
        else:
            reply = (" ".join(excerpt(content, 300).split()) or response.reason_phrase).strip()
        reply = self._scrub(_shorten(reply))
        raise OAuthError(
            f"{where} refused the token request ({status} {error or response.reason_phrase})",
            stage="token",
            reply_code=status,
            reply_text=reply,
            error=error,
            description=self._scrub(_shorten(description)) if description else None,
            provider=self.provider,
            endpoint=self.host,
        )

    def _error(self, message: str, *, hint: DiagnosisCode | None = None) -> OAuthError:
        return OAuthError(
            self._scrub(message),
            stage="token",
            hint=hint,
            provider=self.provider,
            endpoint=self.host,
        )

    def _scrub(self, text: str) -> str:
        for secret in self._secrets:
            if len(secret) >= 4:
                text = text.replace(secret, "***")
        return text


def _transport_text(exc: httpx.TransportError) -> str:
    if isinstance(exc, httpx.TimeoutException):
        return "no answer in time"
    root = exception_chain(exc)[-1]
    return str(getattr(root, "reason", None) or root or type(root).__name__)


def _json_object(content: bytes) -> dict[str, Any] | None:
    try:
        data = json.loads(content)
    except (ValueError, UnicodeDecodeError):
        return None
    return data if isinstance(data, dict) else None


def _text(value: object) -> str | None:
    return " ".join(value.split()) if isinstance(value, str) and value.strip() else None


def _shorten(text: str) -> str:
    # Microsoft appends trace and correlation ids and a timestamp: noise for a person.
    for marker in (" Trace ID:", " Trace ID :"):
        text = text.split(marker, 1)[0]
    text = " ".join(text.split())
    return text if len(text) <= _DESCRIPTION_LIMIT else text[: _DESCRIPTION_LIMIT - 1] + "…"


def _answer(data: Mapping[str, Any], endpoint: TokenEndpoint) -> TokenAnswer:
    token = data.get("access_token")
    if not isinstance(token, str) or not token:
        raise OAuthError(
            f"the token endpoint {endpoint.host} answered without an access_token",
            stage="token",
            reply_code=200,
            reply_text="the answer has no access_token",
            provider=endpoint.provider,
            endpoint=endpoint.host,
        )
    token_type = data.get("token_type", "Bearer")
    if isinstance(token_type, str) and token_type.lower() != "bearer":
        raise OAuthError(
            f"the token endpoint {endpoint.host} issued a {token_type} token; XOAUTH2 needs "
            "a Bearer token",
            stage="token",
            reply_code=200,
            reply_text=f"token_type {token_type}",
            provider=endpoint.provider,
            endpoint=endpoint.host,
        )
    try:
        expires_in = float(data.get("expires_in", DEFAULT_LIFETIME))
    except (TypeError, ValueError):
        expires_in = DEFAULT_LIFETIME
    if not math.isfinite(expires_in) or expires_in <= 0:
        expires_in = DEFAULT_LIFETIME
    refresh = data.get("refresh_token")
    return TokenAnswer(token, expires_in, refresh if isinstance(refresh, str) and refresh else None)


# -- grants -------------------------------------------------------------------------------


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
        return _answer(await self.endpoint.post(self._form), self.endpoint)


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def jwt_assertion(
    key: Mapping[str, Any], *, subject: str | None, scope: str, now: float | None = None
) -> str:
    """A Google service account's signed JWT (RS256) asking for ``scope`` on behalf of
    ``subject`` (RFC 7523). Raise ``ConfigError`` when the key cannot sign."""
    issued = int(time.time() if now is None else now)
    header: dict[str, Any] = {"alg": "RS256", "typ": "JWT"}
    if isinstance(key.get("private_key_id"), str):
        header["kid"] = key["private_key_id"]
    claims: dict[str, Any] = {
        "iss": key["client_email"],
        "scope": scope,
        "aud": key["token_uri"],
        "iat": issued,
        "exp": issued + JWT_LIFETIME,
    }
    if subject:
        claims["sub"] = subject
    signing_input = ".".join(
        _b64url(json.dumps(part, separators=(",", ":")).encode()) for part in (header, claims)
    ).encode("ascii")
    try:
        private_key = serialization.load_pem_private_key(
            str(key["private_key"]).encode(), password=None
        )
    except (ValueError, TypeError) as exc:
        raise ConfigError(
            "the service account key's private_key is not a PEM private key; download a new "
            "JSON key for the service account",
            path="courier.smtp.oauth2",
        ) from exc
    if not isinstance(private_key, rsa.RSAPrivateKey):
        raise ConfigError(
            "the service account key's private_key is not an RSA key; Google signs JWT "
            "bearer assertions with RS256",
            path="courier.smtp.oauth2",
        )
    signature = private_key.sign(signing_input, padding.PKCS1v15(), hashes.SHA256())
    return f"{signing_input.decode('ascii')}.{_b64url(signature)}"


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
        return _answer(data, self.endpoint)


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
        return _answer(await self.endpoint.post(form), self.endpoint)


# -- the cache ----------------------------------------------------------------------------


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


# -- device-code sign-in (RFC 8628), for `postroom oauth login` ----------------------------


@dataclass(frozen=True, slots=True)
class DeviceCode:
    """What a person needs to sign in: the URL to open and the code to type."""

    user_code: str
    verification_uri: str
    expires_in: float
    interval: float
    device_code: str = field(repr=False)


def _endpoint(settings: OAuth2Settings, url: str, timeout: float) -> TokenEndpoint:
    secrets = tuple(s for s in (settings.client_secret, settings.refresh_token) if s)
    return TokenEndpoint(url, provider=settings.provider, timeout=timeout, secrets=secrets)


async def request_device_code(settings: OAuth2Settings, *, timeout: float = 30.0) -> DeviceCode:
    """Start Microsoft's device-code sign-in for ``settings`` (provider microsoft, flow
    device_code); raise ``OAuthError`` when the endpoint refuses."""
    assert settings.client_id is not None
    endpoint = _endpoint(settings, settings.device_code_endpoint(), timeout)
    data = await endpoint.post(
        {"client_id": settings.client_id, "scope": settings.effective_scope()}
    )
    try:
        return DeviceCode(
            user_code=str(data["user_code"]),
            verification_uri=str(data.get("verification_uri") or data["verification_url"]),
            expires_in=float(data.get("expires_in", 900)),
            interval=float(data.get("interval", 5)),
            device_code=str(data["device_code"]),
        )
    except (KeyError, TypeError, ValueError):
        raise OAuthError(
            f"the device code endpoint {endpoint.host} answered without a user_code, "
            "verification_uri and device_code",
            stage="token",
            reply_code=200,
            reply_text="incomplete device authorization answer",
            provider=settings.provider,
            endpoint=endpoint.host,
        ) from None


async def poll_device_code(
    settings: OAuth2Settings,
    code: DeviceCode,
    *,
    timeout: float = 30.0,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> TokenAnswer:
    """Poll the token endpoint until the person has signed in (or declined, or the code
    expired); return the tokens. ``authorization_pending`` waits ``interval`` seconds and
    ``slow_down`` five more, as RFC 8628 says."""
    assert settings.client_id is not None
    endpoint = _endpoint(settings, settings.token_endpoint(), timeout)
    form = {
        "grant_type": DEVICE_CODE_GRANT,
        "client_id": settings.client_id,
        "device_code": code.device_code,
    }
    if settings.client_secret:
        form["client_secret"] = settings.client_secret
    interval = max(code.interval, 1.0)
    deadline = clock() + code.expires_in
    while True:
        await sleep(interval)
        try:
            return _answer(await endpoint.post(form), endpoint)
        except OAuthError as exc:
            if exc.error == "slow_down":
                interval += 5
            elif exc.error != "authorization_pending":
                raise
        if clock() > deadline:
            raise OAuthError(
                "the code expired before anyone signed in; run `postroom oauth login` again",
                stage="token",
                error="expired_token",
                provider=settings.provider,
                endpoint=endpoint.host,
            )
