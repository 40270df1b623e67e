"""A bounce from each provider, sent as that provider sends it, to a served Postroom whose
message went out through a real SMTP server answering like that provider: the message's
delivery state changes, the address is suppressed, the identity system's webhook receives it
signed; replayed, forged and stale requests change nothing."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from standardwebhooks.webhooks import Webhook

from postroom.config import Settings

import provider_requests as sign
from conftest import Pki
from http_servers import HttpServer, http_server, reply
from provider_requests import Keys, make_keys, until
from smtp_servers import Accepted, smtp_server
from web_support import AUTH, serving

TOPIC = "arn:aws:sns:eu-west-1:123456789012:ses-events"


@pytest.fixture(scope="module")
def keys() -> Keys:
    """Every provider's keys, made once per module (RSA key generation is slow)."""
    return make_keys()


# How each provider's SMTP service answers the end of DATA, and so what id the send records.
SMTP_REPLIES: dict[str, Callable[[str], str]] = {
    "sendgrid": lambda pid: f"250 Ok: queued as {pid}",
    "mailgun": lambda pid: "250 Great success",  # no id: Mailgun's events echo the Message-ID
    "postmark": lambda pid: f"250 Ok: queued as {pid}",
    "ses": lambda pid: f"250 Ok {pid}",
    "generic": lambda pid: f"250 2.0.0 Ok: queued as {pid}",
}


def provider_id(provider: str) -> str:
    if provider == "ses":
        return f"0102018c{uuid.uuid4().hex[:8]}-{uuid.uuid4()}-000000"
    if provider == "postmark":
        return str(uuid.uuid4())
    return uuid.uuid4().hex[:22]


def bounce(
    provider: str,
    keys: Keys,
    cert_url: str,
    *,
    to: str,
    pid: str,
    header_id: str,
    at: float | None = None,
) -> tuple[bytes, dict[str, str]]:
    """A hard bounce of the message, as ``provider`` posts it."""
    now = at if at is not None else time.time()
    reply_text = "550 5.1.1 The email account that you tried to reach does not exist"
    if provider == "sendgrid":
        event = {
            "email": to,
            "timestamp": int(now),
            "smtp-id": f"<{header_id}>",
            "event": "bounce",
            "type": "bounce",
            "sg_event_id": uuid.uuid4().hex,
            "sg_message_id": f"{pid}.filterdrecv-5645d9c87f-6r5wm-1-5E4D9-1",
            "reason": reply_text,
            "status": "5.1.1",
        }
        return sign.sendgrid(keys.sendgrid, [event], at=now)
    if provider == "mailgun":
        data = {
            "event": "failed",
            "severity": "permanent",
            "id": uuid.uuid4().hex,
            "timestamp": now,
            "recipient": to,
            "delivery-status": {"code": 550, "message": reply_text[4:]},
            "message": {"headers": {"message-id": header_id}},
        }
        return sign.mailgun(keys.mailgun, data, at=now)
    if provider == "postmark":
        record = {
            "RecordType": "Bounce",
            "ID": int(now * 1000),
            "Type": "HardBounce",
            "MessageID": pid,
            "Details": reply_text,
            "Email": to,
            "BouncedAt": datetime.fromtimestamp(now, UTC).isoformat(),
        }
        return sign.postmark(*keys.postmark, record)
    if provider == "ses":
        ses = {
            "notificationType": "Bounce",
            "bounce": {
                "bounceType": "Permanent",
                "bouncedRecipients": [
                    {"emailAddress": to, "status": "5.1.1", "diagnosticCode": "smtp; " + reply_text}
                ],
                "timestamp": datetime.fromtimestamp(now, UTC).isoformat(),
                "feedbackId": uuid.uuid4().hex,
            },
            "mail": {"messageId": pid, "commonHeaders": {"messageId": f"<{header_id}>"}},
        }
        when = datetime.fromtimestamp(now, UTC)
        return sign.sns(keys.sns, cert_url, TOPIC, message=json.dumps(ses), version="2", at=when)
    event = {"event": "bounced", "recipient": to, "provider_message_id": pid, "reply": reply_text}
    return sign.generic(keys.generic, event, at=now)


@dataclass
class World:
    http: httpx.Client
    receiver: HttpServer
    cert_url: str
    pid: str
    accepted: list[Accepted]

    def mime_id(self) -> str:
        """The Message-ID header of the last message the SMTP server took."""
        return self.accepted[-1].message_id.strip("<>")


@contextmanager
def world(
    provider: str, keys: Keys, pki: Pki, settings_with: Callable[..., Settings], **courier: Any
) -> Iterator[World]:
    pid = provider_id(provider)
    with (
        smtp_server(data_reply=lambda _a: SMTP_REPLIES[provider](pid)) as smtp,
        http_server([reply(200, "thanks")]) as receiver,
        http_server([reply(200, keys.sns_cert)], tls=pki.server_context()) as certs,
    ):
        settings = settings_with(
            serve={"sns_cert_host_pattern": r"^127\.0\.0\.1:\d+$"},
            courier={
                "smtp": {
                    "connection_uri": f"smtp://127.0.0.1:{smtp.port}/?disable_starttls=true",
                    "from_address": "no-reply@example.org",
                },
                "provider_events": {
                    "sendgrid": {"public_key": keys.sendgrid_public},
                    "mailgun": {"signing_key": keys.mailgun},
                    "postmark": {"username": keys.postmark[0], "password": keys.postmark[1]},
                    "ses": {"topic_arns": [TOPIC]},
                    "generic": {"secret": keys.generic},
                },
                "webhooks": [{"url": receiver.base("/hooks"), "secret": keys.hook}],
                **courier,
            },
        )
        with serving(settings) as base, httpx.Client(base_url=base, timeout=10) as http:
            cert_url = certs.base("/SimpleNotificationService-test.pem")
            yield World(http, receiver, cert_url, pid, smtp.handler.rec.messages)


def send(http: httpx.Client, to: str, **extra: Any) -> httpx.Response:
    body = {"recipient": to, "subject": "Your account", "body": "Hello", **extra}
    return http.post("/admin/courier/messages", json=body, headers=AUTH)


def sent_message(w: World, to: str) -> dict[str, Any]:
    created = send(w.http, to)
    assert created.status_code == 202, created.text
    message_id = created.json()["id"]

    def sent() -> dict[str, Any] | None:
        found: dict[str, Any] = w.http.get(
            f"/admin/courier/messages/{message_id}", headers=AUTH
        ).json()
        return found if found["status"] == "sent" else None

    return dict(until(sent, "the hand-off"))


def hooks_of(receiver: HttpServer, secret: str, kind: str) -> list[dict[str, Any]]:
    """The webhooks the identity system received of type ``kind``, each signature checked."""
    out = []
    for request in receiver.requests:
        payload = Webhook(secret).verify(request.body, request.headers)
        if payload["type"] == kind:
            out.append(payload)
    return out


PROVIDERS = ["sendgrid", "mailgun", "postmark", "ses", "generic"]


@pytest.mark.parametrize("provider", PROVIDERS)
def test_a_hard_bounce_changes_the_message_suppresses_the_address_and_reaches_the_webhook(
    provider: str, keys: Keys, pki: Pki, settings_with: Callable[..., Settings]
) -> None:
    to = f"gone-{provider}@example.net"
    with world(provider, keys, pki, settings_with) as w:
        message = sent_message(w, to)
        if provider != "mailgun":
            assert message["dispatches"][0]["provider_message_id"] == w.pid
        mime_id = w.mime_id()
        body, headers = bounce(provider, keys, w.cert_url, to=to, pid=w.pid, header_id=mime_id)
        taken = w.http.post(f"/webhooks/{provider}/default", content=body, headers=headers)
        assert taken.status_code == 200, taken.text
        assert taken.json()["matched"] == 1

        shown = w.http.get(f"/admin/courier/messages/{message['id']}", headers=AUTH).json()
        assert shown["status"] == "sent"
        assert shown["delivery"]["event"] == "bounced"
        assert shown["delivery"]["diagnosis"] == "recipient_rejected"
        assert "5.1.1" in shown["delivery"]["reply"]
        assert [e["event"] for e in shown["events"]] == ["bounced"]

        metrics = w.http.get("/metrics").text
        assert (
            f'postroom_delivery_events_total{{event="bounced",provider="{provider}"}} 1.0'
            in metrics
        )

        suppressed = w.http.get(f"/admin/tenants/default/suppressions/{to}", headers=AUTH)
        assert suppressed.status_code == 200 and suppressed.json()["event"] == "bounced"

        [hook] = until(lambda: hooks_of(w.receiver, keys.hook, "message.bounced"), "the webhook")
        assert hook["data"]["message_id"] == message["id"]
        assert hook["data"]["recipient"] == to and hook["data"]["diagnosis"] == "recipient_rejected"
        assert until(lambda: hooks_of(w.receiver, keys.hook, "message.sent"), "message.sent")

        # The same request again, the same request altered, and one signed too long ago:
        # refused, and nothing changes.
        again = w.http.post(f"/webhooks/{provider}/default", content=body, headers=headers)
        if provider == "postmark":  # Postmark signs nothing: a repeat is a duplicate event
            assert again.status_code == 200 and again.json()["stored"] == 0
        else:
            assert again.status_code == 401
        forged, forged_headers = body.replace(b"5.1.1", b"5.1.2"), dict(headers)
        if provider == "postmark":
            forged_headers = sign.postmark(keys.postmark[0], "a-guess-at-it", {})[1]
        url = f"/webhooks/{provider}/default"
        assert w.http.post(url, content=forged, headers=forged_headers).status_code == 401
        if provider != "postmark":
            old_body, old_headers = bounce(
                provider,
                keys,
                w.cert_url,
                to=to,
                pid=w.pid,
                header_id=mime_id,
                at=time.time() - 600,
            )
            stale = w.http.post(
                f"/webhooks/{provider}/default", content=old_body, headers=old_headers
            )
            assert stale.status_code == 401
        shown = w.http.get(f"/admin/courier/messages/{message['id']}", headers=AUTH).json()
        assert len(shown["events"]) == 1

        # The next notification to that address is refused and nothing is stored.
        refused = send(w.http, to)
        assert refused.status_code == 422
        assert refused.json()["error"]["id"] == "suppressed"
        assert "5.1.1" in refused.json()["error"]["details"]["reason"]
        listed = w.http.get(
            "/admin/courier/messages", params={"recipient": to}, headers=AUTH
        ).json()
        assert len(listed) == 1
