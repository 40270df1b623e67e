"""Microsoft's device-code sign-in (RFC 8628), for ``postroom oauth login``:
:func:`request_device_code` shows the person where to sign in, :func:`poll_device_code` waits
until they have and returns the tokens."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from postroom.config.oauth2 import OAuth2Settings
from postroom.errors import OAuthError
from postroom.oauth.endpoint import TokenEndpoint, parse_answer
from postroom.oauth.tokens import TokenAnswer

DEVICE_CODE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"


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
            return parse_answer(await endpoint.post(form), endpoint)
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
