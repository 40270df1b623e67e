"""Settings of what happens after the hand-off: the providers' event webhooks a tenant accepts
(``courier.provider_events``), its suppression list (``courier.suppression``) and the webhooks
it sends back to the identity system (``courier.webhooks``)."""

from __future__ import annotations

import base64
import binascii
import re
from typing import Annotated, Literal

from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import load_der_public_key, load_pem_public_key
from pydantic import ConfigDict, Field, field_validator

from postroom.config.durations import DAY, Duration, at_most
from postroom.config.model import SettingsModel


class _Strict(SettingsModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def sendgrid_public_key(text: str) -> ec.EllipticCurvePublicKey:
    """The P-256 key SendGrid shows as the Signed Event Webhook's verification key (base64 of
    the DER public key, or PEM); raise ``ValueError`` saying what to paste."""
    text = text.strip()
    try:
        if text.startswith("-----BEGIN"):
            key = load_pem_public_key(text.encode())
        else:
            key = load_der_public_key(base64.b64decode(text, validate=True))
    except (ValueError, binascii.Error, TypeError):
        raise ValueError(
            "is not a public key; paste the Verification Key that SendGrid shows under Mail "
            "Settings > Event Webhook > Signature Verification (base64, starts with MFkw)"
        ) from None
    if not isinstance(key, ec.EllipticCurvePublicKey) or key.curve.name != "secp256r1":
        raise ValueError("is not an ECDSA P-256 key, which SendGrid's verification key is")
    return key


class SendgridEvents(_Strict):
    """SendGrid's Signed Event Webhook: the verification (public) key."""

    public_key: str

    @field_validator("public_key")
    @classmethod
    def _key(cls, value: str) -> str:
        sendgrid_public_key(value)
        return value.strip()


class MailgunEvents(_Strict):
    """Mailgun's HTTP webhook signing key."""

    signing_key: str = Field(min_length=8, repr=False)


class PostmarkEvents(_Strict):
    """The basic-auth credentials put in the Postmark webhook URL."""

    username: str = Field(min_length=1)
    password: str = Field(min_length=12, repr=False)


TOPIC_ARN = re.compile(r"^arn:aws[a-z-]*:sns:[a-z0-9-]+:\d{12}:[A-Za-z0-9_.-]{1,256}$")


class SesEvents(_Strict):
    """Amazon SES notifications through SNS: the topics whose messages are taken."""

    topic_arns: list[str] = Field(min_length=1)

    @field_validator("topic_arns")
    @classmethod
    def _arns(cls, value: list[str]) -> list[str]:
        for arn in value:
            if not TOPIC_ARN.match(arn):
                raise ValueError(
                    f"{arn!r} is not an SNS topic ARN; write it like "
                    "arn:aws:sns:eu-west-1:123456789012:ses-events"
                )
        return value


MAKE_SECRET = (
    "python3 -c 'import os,base64;print(\"whsec_\"+base64.b64encode(os.urandom(32)).decode())'"
)


def standard_secret(value: str) -> str:
    """Check a Standard Webhooks secret: ``whsec_`` and base64 of 24 to 64 bytes."""
    body = value.removeprefix("whsec_")
    try:
        raw = base64.b64decode(body, validate=True)
    except (binascii.Error, ValueError):
        raw = b""
    if not value.startswith("whsec_") or not 24 <= len(raw) <= 64:
        raise ValueError(
            "must be 'whsec_' and the base64 of 24 to 64 random bytes; make one with: "
            + MAKE_SECRET
        )
    return value


class GenericEvents(_Strict):
    """Anything else, signed the Standard Webhooks way with this secret."""

    secret: str = Field(repr=False)

    @field_validator("secret")
    @classmethod
    def _secret(cls, value: str) -> str:
        return standard_secret(value)


class ProviderEventsSettings(_Strict):
    """``courier.provider_events``: the event webhooks a tenant accepts, by provider."""

    sendgrid: SendgridEvents | None = None
    mailgun: MailgunEvents | None = None
    postmark: PostmarkEvents | None = None
    ses: SesEvents | None = None
    generic: GenericEvents | None = None


class SuppressionSettings(_Strict):
    """``courier.suppression``: how long a hard bounce or complaint stops mail to an address
    (0 = for ever), and whether ``urgent`` mail (codes a person waits for) is stopped too."""

    expire: Annotated[Duration, at_most(3650 * DAY)] = 90 * DAY
    urgent: bool = False


WebhookEvent = Literal[
    "message.sent",
    "message.abandoned",
    "message.delivered",
    "message.bounced",
    "message.complained",
    "message.suppressed",
]
WEBHOOK_EVENTS: tuple[str, ...] = WebhookEvent.__args__  # type: ignore[attr-defined]


class WebhookSettings(_Strict):
    """One entry of ``courier.webhooks``: where events go, signed with ``secret``."""

    url: str
    secret: str = Field(repr=False)
    events: list[WebhookEvent] = Field(default_factory=lambda: list(WEBHOOK_EVENTS))  # type: ignore[arg-type]

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        if not re.match(r"^https?://[^/\s?#]+", value):
            raise ValueError("must be an http:// or https:// URL, like https://id.example.org/hook")
        return value

    @field_validator("secret")
    @classmethod
    def _secret(cls, value: str) -> str:
        return standard_secret(value)
