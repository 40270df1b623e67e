"""Requests exactly as the providers publish them verify, and the same requests changed by one
byte, signed with another key, or presented too late do not. Each sample names its source."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from postroom.config.events import GenericEvents, MailgunEvents, PostmarkEvents, SendgridEvents
from postroom.events import parse, verify
from postroom.events.model import EventKind
from postroom.events.verify import Refused


def at(timestamp: int) -> datetime:
    return datetime.fromtimestamp(timestamp, tz=UTC)


# SendGrid's own published verification vector: sendgrid/sendgrid-python,
# test/unit/test_eventwebhook.py (the key, signature, timestamp and payload as published).
SG_PUBLIC_KEY = (
    "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE83T4O/n84iotIvIW4mdBgQ/7dAfSmpqIM8kF9mN1flpVKS3GRqe62gw"
    "+2fNNRaINXvVpiglSI8eNEc6wEA3F+g=="
)
SG_SIGNATURE = "MEUCIGHQVtGj+Y3LkG9fLcxf3qfI10QysgDWmMOVmxG0u6ZUAiEAyBiXDWzM+uOe5W0JuG+luQAbPIqHh89M15TluLtEZtM="  # noqa: E501
SG_TIMESTAMP = "1600112502"
SG_PAYLOAD = (
    json.dumps(
        [
            {
                "email": "hello@world.com",
                "event": "dropped",
                "reason": "Bounced Address",
                "sg_event_id": "ZHJvcC0xMDk5NDkxOS1MUnpYbF9OSFN0T0doUTRrb2ZTbV9BLTA",
                "sg_message_id": "LRzXl_NHStOGhQ4kofSm_A.filterdrecv-p3mdw1-756b745b58-kmzbl-18-5F5FC76C-9.0",  # noqa: E501
                "smtp-id": "<LRzXl_NHStOGhQ4kofSm_A@ismtpd0039p1iad1.sendgrid.net>",
                "timestamp": 1600112492,
            }
        ],
        sort_keys=True,
        separators=(",", ":"),
    )
    + "\r\n"
).encode()
SG_HEADERS = {
    "x-twilio-email-event-webhook-signature": SG_SIGNATURE,
    "x-twilio-email-event-webhook-timestamp": SG_TIMESTAMP,
}


def test_sendgrids_published_request_verifies_and_names_the_x_message_id() -> None:
    config = SendgridEvents(public_key=SG_PUBLIC_KEY)
    verified = verify.sendgrid(config, SG_PAYLOAD, SG_HEADERS, now=at(1600112502 + 30))
    [event] = parse.sendgrid(verified.body, at(1600112502))
    assert event.kind is EventKind.DROPPED
    assert event.recipient == "hello@world.com"
    # sg_message_id is the X-Message-Id of the hand-off plus ".filter...": the prefix is kept.
    assert event.provider_message_id == "LRzXl_NHStOGhQ4kofSm_A"
    assert event.header_message_id == "LRzXl_NHStOGhQ4kofSm_A@ismtpd0039p1iad1.sendgrid.net"


def test_sendgrids_published_request_is_refused_changed_late_or_with_another_key() -> None:
    config = SendgridEvents(public_key=SG_PUBLIC_KEY)
    with pytest.raises(Refused, match="does not verify"):
        verify.sendgrid(
            config, SG_PAYLOAD.replace(b"dropped", b"dropxed"), SG_HEADERS, now=at(1600112502)
        )
    with pytest.raises(Refused, match="away from now"):
        verify.sendgrid(config, SG_PAYLOAD, SG_HEADERS, now=at(1600112502 + 301))
    # The other key of the same published test file.
    other = SendgridEvents(
        public_key="MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEqTxd43gyp8IOEto2LdIfjRQrIbsd4SXZkLW6jDutdhXSJCWHw8REntlo7aNDthvj+y7GjUuFDb/R1NGe1OPzpA=="
    )
    with pytest.raises(Refused):
        verify.sendgrid(other, SG_PAYLOAD, SG_HEADERS, now=at(1600112502))


# Mailgun's published verification vector: mailgun/mailgun-php, tests/Api/WebhookTest.php
# (testVerifyWebhookGood / testVerifyWebhookBad). The signature covers timestamp + token only,
# so it is shown here around a "failed" event-data of the shape Mailgun's "Webhook Payloads"
# documentation gives
# (documentation.mailgun.com/docs/mailgun/user-manual/webhooks/webhook-payloads).
MG_KEY = "key-3ax6xnjp29jd6fds4gc373sgvjxteol0"
MG_SIGNATURE = {
    "timestamp": "1403645220",
    "token": "5egbgr1vjgqxtrnp65xfznchgdccwh5d6i09vijqi3whgowmn6",
    "signature": "9cfc5c41582e51246e73c88d34db3af0a3a2692a76fbab81492842f000256d33",
}
MG_EVENT = {
    "event": "failed",
    "severity": "permanent",
    "reason": "bounce",
    "id": "G9Bn5sl1TC6nu79C8C0bwg",
    "timestamp": 1403645220.0,
    "recipient": "alice@example.com",
    "delivery-status": {
        "code": 550,
        "message": "5.1.1 The email account that you tried to reach does not exist.",
        "description": "",
    },
    "message": {"headers": {"message-id": "20130503182626.18666.16540@sample.mailgun.org"}},
}


def test_mailguns_published_signature_verifies_and_its_bounce_is_read() -> None:
    body = json.dumps({"signature": MG_SIGNATURE, "event-data": MG_EVENT}).encode()
    verified = verify.mailgun(MailgunEvents(signing_key=MG_KEY), body, {}, now=at(1403645220))
    assert verified.nonce == "mg:" + MG_SIGNATURE["token"]
    [event] = parse.mailgun(verified.body, at(1403645220))
    assert (event.kind, event.hard, event.diagnosis) == (
        EventKind.BOUNCED,
        True,
        "recipient_rejected",
    )
    assert event.reply == "550 5.1.1 The email account that you tried to reach does not exist."
    assert event.provider_message_id == "20130503182626.18666.16540@sample.mailgun.org"


def test_mailguns_published_bad_token_is_refused() -> None:
    bad = dict(MG_SIGNATURE, token="owyldpe6nxhmrn78epljl6bj0orrki1u3d2v5e6cnlmmuox8jr")
    body = json.dumps({"signature": bad, "event-data": MG_EVENT}).encode()
    with pytest.raises(Refused, match="HMAC"):
        verify.mailgun(MailgunEvents(signing_key=MG_KEY), body, {}, now=at(1403645220))


# The Standard Webhooks specification's test vector (standard-webhooks/standard-webhooks,
# the reference libraries' tests; also svix-webhooks go/webhook_test.go TestWebhookSign).
SW_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
SW_HEADERS = {
    "webhook-id": "msg_p5jXN8AQM9LWM0D4loKWxJek",
    "webhook-timestamp": "1614265330",
    "webhook-signature": "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=",
}


def test_the_standard_webhooks_published_vector_verifies() -> None:
    body = b'{"test": 2432232314}'
    verified = verify.generic(GenericEvents(secret=SW_SECRET), body, SW_HEADERS, now=at(1614265330))
    assert verified.body == {"test": 2432232314}
    assert verified.nonce == "sw:msg_p5jXN8AQM9LWM0D4loKWxJek"
    with pytest.raises(Refused):
        verify.generic(GenericEvents(secret=SW_SECRET), body + b" ", SW_HEADERS, now=at(1614265330))
    with pytest.raises(Refused, match="away from now"):
        verify.generic(GenericEvents(secret=SW_SECRET), body, SW_HEADERS, now=at(1614265330 + 600))


# Postmark's bounce webhook example, as published on postmarkapp.com/email-webhooks
# ("Bounce Webhook"); Postmark proves itself with the basic-auth credentials in the URL.
PM_BOUNCE = {
    "ID": 42,
    "Type": "HardBounce",
    "TypeCode": 1,
    "Name": "Hard bounce",
    "Tag": "Test",
    "MessageID": "883953f4-6105-42a2-a16a-77a8eac79483",
    "Description": "The server was unable to deliver your message (ex: unknown user, mailbox not found).",  # noqa: E501
    "Details": "Test bounce details",
    "Email": "john@example.com",
    "BouncedAt": "2014-08-01T13:28:10.2735393-04:00",
    "DumpAvailable": True,
    "Inactive": True,
    "CanActivate": True,
    "Subject": "Test subject",
    "Metadata": {"user_id": 43},
}


def test_postmarks_published_bounce_is_taken_with_the_right_credentials_only() -> None:
    import base64

    config = PostmarkEvents(username="postmark", password="a-long-password-1")
    good = {"authorization": "Basic " + base64.b64encode(b"postmark:a-long-password-1").decode()}
    verified = verify.postmark(config, json.dumps(PM_BOUNCE).encode(), good, now=at(0))
    [event] = parse.postmark(verified.body, at(0))
    assert (event.kind, event.hard, event.recipient) == (
        EventKind.BOUNCED,
        True,
        "john@example.com",
    )
    assert event.provider_message_id == "883953f4-6105-42a2-a16a-77a8eac79483"
    assert event.occurred_at == datetime(2014, 8, 1, 17, 28, 10, 273539, tzinfo=UTC)
    wrong = {"authorization": "Basic " + base64.b64encode(b"postmark:guess").decode()}
    with pytest.raises(Refused):
        verify.postmark(config, json.dumps(PM_BOUNCE).encode(), wrong, now=at(0))
    with pytest.raises(Refused):
        verify.postmark(config, json.dumps(PM_BOUNCE).encode(), {}, now=at(0))


# An Amazon SES bounce notification of the shape AWS documents ("Amazon SNS notification
# contents for Amazon SES", the bounce example with the mailbox simulator's 5.1.1 answer).
SES_BOUNCE = {
    "notificationType": "Bounce",
    "bounce": {
        "bounceType": "Permanent",
        "bounceSubType": "General",
        "bouncedRecipients": [
            {
                "emailAddress": "bounce@simulator.amazonses.com",
                "action": "failed",
                "status": "5.1.1",
                "diagnosticCode": "smtp; 550 5.1.1 user unknown",
            }
        ],
        "timestamp": "2017-11-20T11:05:06.477Z",
        "feedbackId": "0102015fd91a6479-ae22395c-1f7d-4423-a9e5-e0715bffc731-000000",
        "reportingMTA": "dsn; a4-8.smtp-out.eu-west-1.amazonses.com",
    },
    "mail": {
        "timestamp": "2017-11-20T11:05:04.000Z",
        "source": "sender@example.com",
        "messageId": "0102015fd91a5ca3-93c245fe-e333-46ae-8fed-96160d20cfab-000000",
        "destination": ["bounce@simulator.amazonses.com"],
        "commonHeaders": {"messageId": "<abc@example.com>"},
    },
}


def test_an_ses_bounce_notification_is_read_per_recipient_with_its_diagnosis() -> None:
    [event] = parse.ses({"MessageId": "m1", "Message": json.dumps(SES_BOUNCE)}, at(0))
    assert (event.kind, event.hard) == (EventKind.BOUNCED, True)
    assert event.reply == "smtp; 550 5.1.1 user unknown"
    assert event.diagnosis == "recipient_rejected"
    assert (
        event.provider_message_id == "0102015fd91a5ca3-93c245fe-e333-46ae-8fed-96160d20cfab-000000"
    )
    assert event.header_message_id == "abc@example.com"


@pytest.mark.parametrize(
    ("reply", "diagnosis"),
    [
        (
            "550 5.1.1 <x@example.org>: Recipient address rejected: User unknown",
            "recipient_rejected",
        ),
        ("552 5.2.2 Mailbox full", "mailbox_full"),
        ("smtp; 552 5.3.4 Message size exceeds fixed maximum message size", "message_too_large"),
    ],
)
def test_a_bounce_reply_gets_a_diagnosis_code(reply: str, diagnosis: str) -> None:
    from postroom.events.model import diagnose_bounce

    assert diagnose_bounce(reply) == diagnosis
