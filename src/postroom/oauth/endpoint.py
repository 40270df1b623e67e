"""One OAuth2 token endpoint: POST a form, read the JSON answer, turn a refusal into an
:class:`~postroom.errors.OAuthError` (stage ``token``) with the HTTP status and the OAuth2
error, never a token or a secret. Every request goes through :mod:`postroom.net.client`."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

import httpx

from postroom.codes import DiagnosisCode
from postroom.errors import DeliveryError, OAuthError, exception_chain
from postroom.net.client import excerpt, make_client, read_limited
from postroom.oauth.tokens import TokenAnswer

DEFAULT_LIFETIME = 3600.0
"""Assumed lifetime of a token whose answer has no ``expires_in``."""
MAX_ANSWER = 64 * 1024
"""Bytes of a token endpoint's answer read at most."""
_DESCRIPTION_LIMIT = 400


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


def parse_answer(data: Mapping[str, Any], endpoint: TokenEndpoint) -> TokenAnswer:
    """The token in a token endpoint's answer ``data``; raise ``OAuthError`` when it has no
    access token or one that is not a Bearer token. A missing or unreadable ``expires_in``
    counts as :data:`DEFAULT_LIFETIME`."""
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
