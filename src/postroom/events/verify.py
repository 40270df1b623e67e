"""Each provider's proof that an event webhook request is its own, checked the way it signs.

Every check returns a :class:`Verified` (the nonce to refuse a replay of it, when the scheme
has one) or raises :class:`Refused` with a reason for the log; the route answers 401 either
way and tells the caller nothing more.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from standardwebhooks.webhooks import Webhook

from postroom.config.events import (
    GenericEvents,
    MailgunEvents,
    PostmarkEvents,
    SendgridEvents,
    sendgrid_public_key,
)

TOLERANCE = 300.0
"""Seconds a signed request may be away from now, for providers that document none."""


class Refused(Exception):
    """The request is not proven to come from the provider (answered 401)."""


@dataclass(frozen=True, slots=True)
class Verified:
    """A request that passed its provider's check: the parsed body, and the nonce that a
    replay would present again (None where the scheme has none, e.g. basic auth)."""

    body: Any
    nonce: str | None = None


def _json(body: bytes) -> Any:
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise Refused("the body is not JSON") from None


def _fresh(timestamp: str | float | None, now: datetime, tolerance: float = TOLERANCE) -> None:
    try:
        when = float(str(timestamp))
    except (TypeError, ValueError):
        raise Refused("no readable timestamp") from None
    if abs(now.timestamp() - when) > tolerance:
        raise Refused(f"the timestamp is more than {int(tolerance)}s away from now")


def sendgrid(
    config: SendgridEvents, body: bytes, headers: Mapping[str, str], *, now: datetime
) -> Verified:
    """SendGrid's Signed Event Webhook: ECDSA P-256 with SHA-256 over the timestamp header
    followed by the raw body, checked with the tenant's verification key."""
    signature = headers.get("x-twilio-email-event-webhook-signature")
    timestamp = headers.get("x-twilio-email-event-webhook-timestamp")
    if not signature or not timestamp:
        raise Refused("the X-Twilio-Email-Event-Webhook-Signature/-Timestamp headers are missing")
    try:
        der = base64.b64decode(signature, validate=True)
        sendgrid_public_key(config.public_key).verify(
            der, timestamp.encode() + body, ec.ECDSA(hashes.SHA256())
        )
    except (InvalidSignature, binascii.Error, ValueError):
        raise Refused("the ECDSA signature does not verify") from None
    _fresh(timestamp, now)
    return Verified(_json(body), "sg:" + hashlib.sha256(der).hexdigest())


def mailgun(
    config: MailgunEvents, body: bytes, headers: Mapping[str, str], *, now: datetime
) -> Verified:
    """Mailgun: the hex HMAC-SHA256 of ``timestamp`` + ``token`` with the webhook signing key,
    in the body's ``signature`` object; a token is good once."""
    payload = _json(body)
    sig = payload.get("signature") if isinstance(payload, dict) else None
    if not isinstance(sig, dict):
        raise Refused("no signature object in the body")
    timestamp, token, given = (str(sig.get(k, "")) for k in ("timestamp", "token", "signature"))
    expected = hmac.new(
        config.signing_key.encode(), (timestamp + token).encode(), hashlib.sha256
    ).hexdigest()
    if not token or not hmac.compare_digest(expected, given.lower()):
        raise Refused("the HMAC signature does not match the signing key")
    _fresh(timestamp, now)
    return Verified(payload, "mg:" + token)


def postmark(
    config: PostmarkEvents, body: bytes, headers: Mapping[str, str], *, now: datetime
) -> Verified:
    """Postmark: the basic-auth credentials the tenant put in the webhook URL."""
    del now  # Postmark signs nothing; repeats are caught as duplicate events
    scheme, _, value = headers.get("authorization", "").partition(" ")
    try:
        user, _, password = base64.b64decode(value, validate=True).decode().partition(":")
    except (binascii.Error, ValueError, UnicodeDecodeError):
        raise Refused("no basic-auth credentials") from None
    good = hmac.compare_digest(user.encode(), config.username.encode())
    good &= hmac.compare_digest(password.encode(), config.password.encode())
    if scheme.lower() != "basic" or not good:
        raise Refused("the basic-auth credentials are wrong")
    return Verified(_json(body))


def standard(secret: str, body: bytes, headers: Mapping[str, str], *, now: datetime) -> Verified:
    """Standard Webhooks: ``v1,`` base64 HMAC-SHA256 of ``id.timestamp.body`` with the
    secret; any of several space-separated signatures may match; an id is good once."""
    msg_id = headers.get("webhook-id", "")
    timestamp = headers.get("webhook-timestamp", "")
    signatures = headers.get("webhook-signature", "")
    if not msg_id or not timestamp or not signatures:
        raise Refused("the webhook-id/-timestamp/-signature headers are missing")
    try:
        at = datetime.fromtimestamp(int(timestamp), tz=UTC)
        text = body.decode()
    except (ValueError, OverflowError, UnicodeDecodeError):
        raise Refused("unreadable timestamp or body") from None
    expected = Webhook(secret).sign(msg_id, at, text).encode()
    if not any(hmac.compare_digest(expected, s.encode()) for s in signatures.split()):
        raise Refused("no signature matches the secret")
    _fresh(timestamp, now)
    return Verified(_json(body), "sw:" + msg_id)


def generic(
    config: GenericEvents, body: bytes, headers: Mapping[str, str], *, now: datetime
) -> Verified:
    """The generic form: Standard Webhooks with the tenant's secret."""
    return standard(config.secret, body, headers, now=now)
