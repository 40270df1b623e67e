"""Logging in on an open SMTP session: AUTH PLAIN or LOGIN with the URI's user and password,
or SASL XOAUTH2 with an OAuth2 access token (fetching the token is the caller's step)."""

from __future__ import annotations

import base64
import binascii
import json

import aiosmtplib
from aiosmtplib import SMTPResponse

from postroom.codes import DiagnosisCode
from postroom.config.smtp_uri import Security, SmtpUri
from postroom.errors import DeliveryError, OAuthError
from postroom.oauth.client import AccessToken


def require_auth(client: aiosmtplib.SMTP, security: Security) -> None:
    """Refuse a session whose server offers no AUTH; on a cleartext session that offers
    STARTTLS, the hint says AUTH is likely behind it."""
    if not client.supports_extension("auth"):
        hint: DiagnosisCode = "auth_unsupported"
        if security is Security.CLEARTEXT and client.supports_extension("starttls"):
            hint = "starttls_required"
        raise DeliveryError(
            "the server offers no AUTH command on this connection", stage="auth", hint=hint
        )


async def login(client: aiosmtplib.SMTP, uri: SmtpUri) -> SMTPResponse:
    """AUTH PLAIN, else AUTH LOGIN, with the URI's user name and password."""
    assert uri.username is not None
    methods = client.server_auth_methods
    require_auth(client, uri.security)
    password = uri.password or ""
    if "plain" in methods:
        return await client.auth_plain(uri.username, password)
    if "login" in methods:
        return await client.auth_login(uri.username, password)
    raise DeliveryError(
        f"the server offers AUTH {' '.join(m.upper() for m in methods)}, "
        "but Postroom logs in with PLAIN or LOGIN",
        stage="auth",
        hint="auth_unsupported",
    )


async def xoauth2(
    client: aiosmtplib.SMTP,
    security: Security,
    user: str,
    token: AccessToken,
    *,
    provider: str | None,
) -> SMTPResponse:
    """SASL XOAUTH2: ``user=<user>^Aauth=Bearer <token>^A^A``. A server that refuses
    the way Gmail does (a 334 challenge carrying a base64 JSON error) is answered with an
    empty line, after which its final reply (535) follows."""
    require_auth(client, security)
    methods = client.server_auth_methods
    if "xoauth2" not in methods:
        raise DeliveryError(
            f"the server offers AUTH {' '.join(m.upper() for m in methods)}, but not "
            "XOAUTH2, which the oauth2 settings need",
            stage="auth",
            hint="auth_unsupported",
        )
    blob = f"user={user}\x01auth=Bearer {token.value}\x01\x01".encode()
    response = await client.execute_command(b"AUTH", b"XOAUTH2", base64.b64encode(blob))
    challenge: str | None = None
    if response.code == 334:
        challenge = xoauth2_challenge(response.message)
        response = await client.execute_command(b"")
    if response.code == 235:
        return response
    text = " ".join(response.message.split())
    if challenge:
        text = f"{text} [XOAUTH2 error: {challenge}]"
    raise OAuthError(
        "the server refused the OAuth2 access token",
        stage="auth",
        reply_code=response.code,
        reply_text=text,
        provider=provider,
    )


def xoauth2_challenge(message: str) -> str | None:
    """The JSON error of a 334 XOAUTH2 challenge as one line, e.g.
    ``status 401, schemes bearer, scope https://mail.google.com/``."""
    try:
        data = json.loads(base64.b64decode(message.strip(), validate=True))
    except (binascii.Error, ValueError):
        return " ".join(message.split())[:200] or None
    if not isinstance(data, dict):
        return None
    parts = [f"{key} {value}" for key, value in data.items() if isinstance(value, (str, int))]
    return ", ".join(parts)[:300] or None
