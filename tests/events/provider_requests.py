"""Requests signed the way each provider signs its event webhooks, with keys made here."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.x509.oid import NameOID
from standardwebhooks.webhooks import Webhook

from postroom.events.sns import string_to_sign

Request = tuple[bytes, dict[str, str]]


def sendgrid_key() -> tuple[ec.EllipticCurvePrivateKey, str]:
    """A P-256 key pair; the public half as SendGrid shows it (base64 DER)."""
    key = ec.generate_private_key(ec.SECP256R1())
    der = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return key, base64.b64encode(der).decode()


def sendgrid(
    key: ec.EllipticCurvePrivateKey, events: list[dict[str, Any]], at: float | None = None
) -> Request:
    """SendGrid's Signed Event Webhook: ECDSA over timestamp + body."""
    body = (json.dumps(events) + "\r\n").encode()
    timestamp = str(int(at if at is not None else time.time()))
    signature = key.sign(timestamp.encode() + body, ec.ECDSA(hashes.SHA256()))
    return body, {
        "Content-Type": "application/json",
        "X-Twilio-Email-Event-Webhook-Signature": base64.b64encode(signature).decode(),
        "X-Twilio-Email-Event-Webhook-Timestamp": timestamp,
    }


def mailgun(
    signing_key: str, event_data: dict[str, Any], at: float | None = None, token: str | None = None
) -> Request:
    """Mailgun: the HMAC of timestamp + token in the body's signature object."""
    timestamp = str(int(at if at is not None else time.time()))
    token = token or secrets.token_hex(25)
    digest = hmac.new(signing_key.encode(), (timestamp + token).encode(), hashlib.sha256)
    body = {
        "signature": {"timestamp": timestamp, "token": token, "signature": digest.hexdigest()},
        "event-data": event_data,
    }
    return json.dumps(body).encode(), {"Content-Type": "application/json"}


def postmark(username: str, password: str, record: dict[str, Any]) -> Request:
    """Postmark: basic auth from the webhook URL."""
    auth = base64.b64encode(f"{username}:{password}".encode()).decode()
    return json.dumps(record).encode(), {
        "Content-Type": "application/json",
        "Authorization": f"Basic {auth}",
    }


def generic(
    secret: str, events: Any, at: float | None = None, msg_id: str | None = None
) -> Request:
    """Standard Webhooks."""
    body = json.dumps(events)
    msg_id = msg_id or "msg_" + secrets.token_hex(8)
    when = datetime.fromtimestamp(int(at if at is not None else time.time()), tz=UTC)
    return body.encode(), {
        "Content-Type": "application/json",
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(when.timestamp())),
        "webhook-signature": Webhook(secret).sign(msg_id, when, body),
    }


def sns_signer() -> tuple[rsa.RSAPrivateKey, bytes]:
    """An RSA key and a self-signed certificate of it (PEM), as SNS's signing certificate."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "sns.test")])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=30))
        .sign(key, hashes.SHA256())
    )
    return key, cert.public_bytes(serialization.Encoding.PEM)


def sns(
    key: rsa.RSAPrivateKey,
    cert_url: str,
    topic: str,
    *,
    message: str = "",
    kind: str = "Notification",
    version: str = "1",
    at: datetime | None = None,
    subscribe_url: str | None = None,
) -> Request:
    """An SNS HTTP(S) delivery, signed with SignatureVersion 1 (SHA1) or 2 (SHA256)."""
    body: dict[str, Any] = {
        "Type": kind,
        "MessageId": secrets.token_hex(16),
        "TopicArn": topic,
        "Message": message,
        "Timestamp": (at or datetime.now(UTC))
        .isoformat(timespec="milliseconds")
        .replace("+00:00", "Z"),
        "SignatureVersion": version,
        "SigningCertURL": cert_url,
    }
    if kind != "Notification":
        body["Token"] = secrets.token_hex(32)
        body["SubscribeURL"] = subscribe_url or ""
    algorithm = hashes.SHA1() if version == "1" else hashes.SHA256()
    signature = key.sign(string_to_sign(body), padding.PKCS1v15(), algorithm)
    body["Signature"] = base64.b64encode(signature).decode()
    return json.dumps(body).encode(), {
        "Content-Type": "text/plain; charset=UTF-8",
        "x-amz-sns-message-type": kind,
        "x-amz-sns-topic-arn": topic,
    }


def whsec() -> str:
    """A Standard Webhooks secret."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


@dataclass
class Keys:
    """Every provider's keys for one test session."""

    sendgrid: ec.EllipticCurvePrivateKey
    sendgrid_public: str
    sns: rsa.RSAPrivateKey
    sns_cert: bytes
    mailgun: str = "mailgun-signing-key-0123456789"
    postmark: tuple[str, str] = ("postmark", "postmark-password-0123")
    generic: str = field(default_factory=whsec)
    hook: str = field(default_factory=whsec)


def make_keys() -> Keys:
    """Fresh keys: a SendGrid P-256 pair, an SNS RSA key with its certificate."""
    sg, sg_public = sendgrid_key()
    sns_key, cert = sns_signer()
    return Keys(sg, sg_public, sns_key, cert)


def until(check: Callable[[], Any], what: str, timeout: float = 15) -> Any:
    """Poll ``check`` until it returns something truthy; fail naming ``what``."""
    deadline = time.monotonic() + timeout
    while True:
        found = check()
        if found:
            return found
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)
