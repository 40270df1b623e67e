"""Evidence of every hand-off: each success dispatch records the transport, the host, the
provider's final reply and the provider's id for the message, taken from that reply.

The SMTP acceptances below are quoted from where each provider's answer is published:
PHPMailer's ``smtp_transaction_id_patterns`` (Exim, Postfix, Microsoft ESMTP, Amazon SES,
SendGrid), SendGrid's own telnet walkthrough (sendgrid/docs issue 2638), the Mailgun answer
reported in PHPMailer issue 1253, Mailjet's in PHPMailer pull request 2578, and Postfix's
``cleanup`` answer as nodemailer issue 602 logged it.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from postroom.config import Settings
from postroom.models import DispatchStatus, Status
from postroom.store import MessageFilter, Store
from postroom.transports.evidence import http_message_id, smtp_message_id
from worker_support import deliver_one

from http_servers import http_server, reply
from smtp_servers import smtp_server

ACCEPTANCES = [
    # (source, the final reply to end-of-data, the provider's id in it)
    ("Postfix 3.7", "250 2.0.0 Ok: queued as 4Fh2kq0xQ", "4Fh2kq0xQ"),
    ("Postfix (nodemailer #602)", "250 2.0.0 Ok: queued as 0CA4412040B", "0CA4412040B"),
    (
        "SendGrid (sendgrid/docs #2638)",
        "250 Ok: queued as nhIMmON9SFOPcT0ii4nt2A",
        "nhIMmON9SFOPcT0ii4nt2A",
    ),
    (
        "Amazon SES",
        "250 Ok 0100018c7ba3a8b1-4bd8f1a7-2d5e-4e4b-9d2a-7b1f6e0c9a11-000000",
        "0100018c7ba3a8b1-4bd8f1a7-2d5e-4e4b-9d2a-7b1f6e0c9a11-000000",
    ),
    (
        "Microsoft 365",
        "250 2.6.0 <DM6PR04MB1234.namprd04.prod.outlook.com@DM6PR04MB1234.namprd04.prod."
        "outlook.com> [InternalId=1234567890, Hostname=DM6PR04MB1234.namprd04.prod.outlook.com] "
        "10342 bytes in 0.108, 93.310 KB/sec Queued mail for delivery",
        "DM6PR04MB1234.namprd04.prod.outlook.com@DM6PR04MB1234.namprd04.prod.outlook.com",
    ),
    ("Exim", "250 OK id=1qAbCd-0001Ab-Cd", "1qAbCd-0001Ab-Cd"),
    (
        "Mailjet (PHPMailer #2578)",
        "250 OK queued as a08b7f37-ed61-423a-ba75-38ed2fd4b54c",
        "a08b7f37-ed61-423a-ba75-38ed2fd4b54c",
    ),
    (
        "Postmark",
        "250 2.0.0 Ok: queued as 6c1b2f9e-7a3d-4c55-9b1e-2f0d8a7c4e21",
        "6c1b2f9e-7a3d-4c55-9b1e-2f0d8a7c4e21",
    ),
    ("Mailgun (PHPMailer #1253): names no id", "250 Great success", None),
    ("Postfix without an id (aiosmtpd's default)", "250 2.0.0 Ok: queued", None),
    ("a refusal is no acceptance", "554 5.7.1 queued as nothing", None),
]


@pytest.mark.parametrize(
    ("source", "answer", "expected"), ACCEPTANCES, ids=[a[0] for a in ACCEPTANCES]
)
def test_the_providers_id_is_read_from_its_smtp_acceptance(
    source: str, answer: str, expected: str | None
) -> None:
    assert smtp_message_id(answer) == expected, source


def test_http_ids_come_from_the_header_or_the_json_body() -> None:
    assert http_message_id({"X-Message-Id": "W3bq2RSQ"}, b"") == "W3bq2RSQ"
    assert http_message_id({}, b'{"id": "<20111114174239.25659.5817@samples.mailgun.org>"}') == (
        "20111114174239.25659.5817@samples.mailgun.org"
    )
    assert http_message_id({}, b'{"ErrorCode": 0, "MessageID": "b7bc2f4a-e38e"}') == (
        "b7bc2f4a-e38e"
    )
    assert http_message_id({}, b'{"messageId": "acs-42"}') == "acs-42"
    assert http_message_id({}, b'{"id": true}') is None
    assert http_message_id({}, b"Accepted") is None


async def test_an_smtp_hand_off_records_where_it_went_and_the_queue_id(
    store: Store, make_settings: Callable[..., Settings]
) -> None:
    with smtp_server() as srv:
        settings = make_settings(
            smtp={"connection_uri": f"smtp://127.0.0.1:{srv.port}/?disable_starttls=true"}
        )
        message_id = await deliver_one(store, settings)
    [accepted] = srv.rec.messages
    message = await store.get(message_id)
    [dispatch] = message.dispatches
    assert (message.status, dispatch.status) == (Status.SENT, DispatchStatus.SUCCESS)
    assert dispatch.transport == "smtp"
    assert dispatch.host == f"127.0.0.1:{srv.port}"
    assert dispatch.reply == f"250 2.0.0 Ok: queued as {accepted.queue_id}"
    assert dispatch.provider_message_id == accepted.queue_id
    found = await store.list_messages(MessageFilter(provider_message_id=accepted.queue_id))
    assert [m.id for m in found] == [message_id]
    assert await store.list_messages(MessageFilter(provider_message_id="4F-unknown")) == []


async def test_an_http_hand_off_records_the_status_body_and_message_id(
    store: Store, make_settings: Callable[..., Settings]
) -> None:
    answer = reply(202, {"message": "Queued. Thank you.", "id": "<2024.7@mg.example.org>"})
    with http_server([answer]) as srv:
        settings = make_settings(
            delivery_strategy="http", http={"request_config": {"url": srv.url}}
        )
        message_id = await deliver_one(store, settings)
    [dispatch] = (await store.get(message_id)).dispatches
    assert dispatch.transport == "http"
    assert dispatch.host == f"127.0.0.1:{srv.port}"
    assert dispatch.reply is not None and dispatch.reply.startswith("202 Accepted")
    assert "Queued. Thank you." in dispatch.reply
    assert dispatch.provider_message_id == "2024.7@mg.example.org"


async def test_an_outbox_hand_off_says_it_went_to_the_outbox(
    store: Store, make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    settings = make_settings(delivery_strategy="outbox")
    message_id = await deliver_one(store, settings)
    [dispatch] = (await store.get(message_id)).dispatches
    assert (dispatch.transport, dispatch.host, dispatch.provider_message_id) == (
        "outbox",
        None,
        None,
    )
    assert dispatch.reply == f"written to {tmp_path / 'outbox' / message_id}.eml"
