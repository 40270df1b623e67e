"""Amazon SNS message signatures (version 1: SHA1withRSA, version 2: SHA256withRSA), checked
against the signing certificate SNS names, fetched only from an allowed host (AWS's own
unless the operator widens ``serve.sns_cert_host_pattern``) through the guarded client, and
kept in a bounded cache. ``SubscriptionConfirmation`` is confirmed by fetching its
``SubscribeURL`` the same way."""

from __future__ import annotations

import asyncio
import base64
import binascii
import re
from collections import OrderedDict
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from postroom.config.events import SesEvents
from postroom.errors import DeliveryError
from postroom.events.verify import Refused, Verified, _fresh
from postroom.net.client import fetch_limited

MAX_CERT = 16 * 1024
MAX_CACHED = 64

_SIGNED_KEYS = {
    "Notification": ("Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type"),
    "SubscriptionConfirmation": (
        "Message",
        "MessageId",
        "SubscribeURL",
        "Timestamp",
        "Token",
        "TopicArn",
        "Type",
    ),
}
_SIGNED_KEYS["UnsubscribeConfirmation"] = _SIGNED_KEYS["SubscriptionConfirmation"]
_HASHES = {"1": hashes.SHA1, "2": hashes.SHA256}


def string_to_sign(message: dict[str, Any]) -> bytes:
    """What SNS signs: each signed key present, then its value, each on its own line."""
    keys = _SIGNED_KEYS.get(str(message.get("Type")))
    if keys is None:
        raise Refused(f"unknown SNS message type {message.get('Type')!r}")
    lines: list[str] = []
    for key in keys:
        if key in message and message[key] is not None:
            lines += [key, str(message[key])]
    return ("\n".join(lines) + "\n").encode()


def allowed_url(url: str, pattern: str) -> bool:
    """True for an ``https://`` URL whose host (``host:port`` for a port other than 443)
    matches ``pattern``, a regular expression."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return False
    host = (parts.hostname or "").lower()
    target = host if parts.port in (None, 443) else f"{host}:{parts.port}"
    return parts.scheme == "https" and bool(host) and re.search(pattern, target) is not None


class CertificateCache:
    """SNS signing certificates by URL (public keys only), at most :data:`MAX_CACHED`."""

    def __init__(self) -> None:
        self._keys: OrderedDict[str, rsa.RSAPublicKey] = OrderedDict()
        self._lock = asyncio.Lock()
        self.fetches = 0

    async def key(self, url: str, *, allow_private_targets: bool) -> rsa.RSAPublicKey:
        """The RSA public key of the certificate at ``url`` (fetched once)."""
        async with self._lock:
            if url in self._keys:
                self._keys.move_to_end(url)
                return self._keys[url]
            try:
                pem = await fetch_limited(
                    url, max_bytes=MAX_CERT, allow_private_targets=allow_private_targets
                )
                cert = x509.load_pem_x509_certificate(pem)
            except (DeliveryError, ValueError) as exc:
                raise Refused(f"the signing certificate could not be used: {exc}") from None
            key = cert.public_key()
            if not isinstance(key, rsa.RSAPublicKey):
                raise Refused("the signing certificate does not hold an RSA key")
            self._keys[url] = key
            self.fetches += 1
            while len(self._keys) > MAX_CACHED:
                self._keys.popitem(last=False)
            return key


async def verify(
    config: SesEvents,
    message: Any,
    *,
    now: datetime,
    pattern: str,
    certificates: CertificateCache,
    allow_private_targets: bool,
) -> Verified:
    """Check an SNS message: a listed topic, a certificate URL on an allowed host, a
    signature of version 1 or 2 that verifies, a timestamp within 5 minutes."""
    if not isinstance(message, dict):
        raise Refused("the body is not an SNS message")
    if message.get("TopicArn") not in config.topic_arns:
        raise Refused(f"topic {message.get('TopicArn')!r} is not in provider_events.ses.topic_arns")
    cert_url = str(message.get("SigningCertURL") or message.get("SigningCertUrl") or "")
    if not allowed_url(cert_url, pattern):
        raise Refused(f"SigningCertURL {cert_url!r} is not on an allowed host")
    algorithm = _HASHES.get(str(message.get("SignatureVersion")))
    if algorithm is None:
        raise Refused(f"unknown SignatureVersion {message.get('SignatureVersion')!r}")
    try:
        signature = base64.b64decode(str(message.get("Signature", "")), validate=True)
    except (binascii.Error, ValueError):
        raise Refused("the signature is not base64") from None
    key = await certificates.key(cert_url, allow_private_targets=allow_private_targets)
    try:
        key.verify(signature, string_to_sign(message), padding.PKCS1v15(), algorithm())
    except InvalidSignature:
        raise Refused("the SNS signature does not verify") from None
    timestamp = str(message.get("Timestamp", ""))
    try:
        at = datetime.fromisoformat(timestamp.replace("Z", "+00:00"))
    except ValueError:
        raise Refused("unreadable Timestamp") from None
    _fresh(at.timestamp(), now)
    return Verified(message, "sns:" + str(message.get("MessageId", "")))


async def confirm(message: dict[str, Any], *, pattern: str, allow_private_targets: bool) -> None:
    """Confirm a verified ``SubscriptionConfirmation`` by fetching its ``SubscribeURL``."""
    url = str(message.get("SubscribeURL", ""))
    if not allowed_url(url, pattern):
        raise Refused(f"SubscribeURL {url!r} is not on an allowed host")
    try:
        await fetch_limited(url, max_bytes=MAX_CERT, allow_private_targets=allow_private_targets)
    except DeliveryError as exc:
        raise Refused(f"the subscription could not be confirmed: {exc}") from None
