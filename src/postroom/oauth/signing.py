"""Signing a Google service account's JWT bearer assertion (RFC 7523, RS256) with the key
file's private key. The key never appears in an error."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Mapping
from typing import Any

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from postroom.errors import ConfigError

JWT_LIFETIME = 3600
"""Lifetime of a Google JWT bearer assertion (Google accepts at most an hour)."""


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
