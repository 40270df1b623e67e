"""The suppression list's rules, webhooks to the identity system retried and kept across a
restart, SNS subscriptions and certificate rules, and the secrets of both kept encrypted."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from standardwebhooks.webhooks import Webhook
from test_provider_webhooks import TOPIC, send

from postroom.config import Settings
from postroom.store import open_store

import provider_requests as sign
from conftest import Pki
from http_servers import http_server, reply
from provider_requests import Keys, make_keys, until
from smtp_servers import free_port, smtp_server
from web_support import AUTH, serving


@pytest.fixture(scope="module")
def keys() -> Keys:
    """Every provider's keys, made once per module (RSA key generation is slow)."""
    return make_keys()


def base_courier(smtp_port: int, **extra: Any) -> dict[str, Any]:
    return {
        "smtp": {
            "connection_uri": f"smtp://127.0.0.1:{smtp_port}/?disable_starttls=true",
            "from_address": "no-reply@example.org",
        },
        **extra,
    }


def generic_bounce(http: httpx.Client, secret: str, to: str, pid: str | None = None) -> None:
    event = {"event": "bounced", "recipient": to, "reply": "550 5.1.1 user unknown"}
    if pid:
        event["provider_message_id"] = pid
    body, headers = sign.generic(secret, event)
    taken = http.post("/webhooks/generic/default", content=body, headers=headers)
    assert taken.status_code == 200, taken.text


def test_urgent_mail_still_goes_to_a_suppressed_address_unless_the_tenant_says_otherwise(
    settings_with: Callable[..., Settings],
) -> None:
    secret = sign.whsec()
    code = {"template_type": "login_code_valid", "template_data": {"login_code": "123456"}}
    for urgent_too in (False, True):
        with smtp_server() as smtp:
            courier = base_courier(
                smtp.port,
                provider_events={"generic": {"secret": secret}},
                suppression={"urgent": urgent_too},
            )
            with (
                serving(settings_with(courier=courier)) as base,
                httpx.Client(base_url=base) as http,
            ):
                generic_bounce(http, secret, "gone@example.net")
                notice = send(http, "gone@example.net")
                assert notice.status_code == 422
                ory = {"recipient": "gone@example.net", "template_type": "stub"}
                ory |= {"subject": "Your address changed", "body": "..."}
                refused = http.post("/intake/ory", json=ory, headers=AUTH)
                assert refused.status_code == 422 and refused.json()["error"]["id"] == "suppressed"
                login = http.post(
                    "/admin/courier/messages",
                    json={"recipient": "gone@example.net", **code},
                    headers=AUTH,
                )
                assert login.status_code == (422 if urgent_too else 202), login.text


def test_a_suppression_expires_and_can_be_removed_by_the_operator(
    settings_with: Callable[..., Settings],
) -> None:
    secret = sign.whsec()
    with smtp_server() as smtp:
        courier = base_courier(
            smtp.port, provider_events={"generic": {"secret": secret}}, suppression={"expire": "1s"}
        )
        with serving(settings_with(courier=courier)) as base, httpx.Client(base_url=base) as http:
            generic_bounce(http, secret, "Brief@Example.net")
            assert send(http, "brief@example.net").status_code == 422
            until(lambda: send(http, "brief@example.net").status_code == 202, "the expiry")

    with smtp_server() as smtp:
        courier = base_courier(smtp.port, provider_events={"generic": {"secret": secret}})
        with serving(settings_with(courier=courier)) as base, httpx.Client(base_url=base) as http:
            for who in ("a@example.net", "b@example.net", "c@other.example"):
                generic_bounce(http, secret, who)
            url = "/admin/tenants/default/suppressions"
            found = http.get(url, params={"search": "example.net"}, headers=AUTH).json()
            assert sorted(s["address"] for s in found) == ["a@example.net", "b@example.net"]
            assert http.delete(f"{url}/a@example.net", headers=AUTH).status_code == 204
            assert http.delete(f"{url}/a@example.net", headers=AUTH).status_code == 404
            assert send(http, "a@example.net").status_code == 202
            assert send(http, "b@example.net").status_code == 422


def test_an_event_that_comes_before_its_send_is_recorded_is_matched_later(
    settings_with: Callable[..., Settings],
) -> None:
    secret, hook_secret, pid = sign.whsec(), sign.whsec(), uuid.uuid4().hex[:20]
    with (
        http_server([reply(200)]) as receiver,
        smtp_server(data_reply=lambda _a: f"250 Ok: queued as {pid}") as smtp,
    ):
        courier = base_courier(
            smtp.port,
            provider_events={"generic": {"secret": secret}},
            webhooks=[
                {"url": receiver.base("/h"), "secret": hook_secret, "events": ["message.bounced"]}
            ],
        )
        with serving(settings_with(courier=courier)) as base, httpx.Client(base_url=base) as http:
            generic_bounce(http, secret, "early@example.org", pid)
            # A code, so that the suppression the bounce made does not stop it.
            created = http.post(
                "/admin/courier/messages",
                json={
                    "recipient": "early@example.org",
                    "template_type": "login_code_valid",
                    "template_data": {"login_code": "1"},
                },
                headers=AUTH,
            ).json()
            url = f"/admin/courier/messages/{created['id']}"
            shown = until(
                lambda: (m := http.get(url, headers=AUTH).json())["delivery"] and m, "the match"
            )
            assert shown["delivery"]["event"] == "bounced"
            request = until(lambda: receiver.requests, "the webhook")[0]
            payload = Webhook(hook_secret).verify(request.body, request.headers)
            assert payload["type"] == "message.bounced"
            assert payload["data"]["message_id"] == created["id"]


def test_a_failing_receiver_is_retried_and_each_answer_is_kept(
    settings_with: Callable[..., Settings],
) -> None:
    hook_secret = sign.whsec()
    with (
        http_server([reply(500, "busy"), reply(503, "still busy"), reply(204)]) as receiver,
        smtp_server() as smtp,
    ):
        courier = base_courier(
            smtp.port,
            webhooks=[
                {"url": receiver.base("/h"), "secret": hook_secret, "events": ["message.sent"]}
            ],
        )
        with serving(settings_with(courier=courier)) as base, httpx.Client(base_url=base) as http:
            message = send(http, "someone@example.org", reference="identity-42").json()

            def delivered() -> dict[str, Any] | None:
                found = http.get(
                    "/admin/webhooks/deliveries", params={"message_id": message["id"]}, headers=AUTH
                ).json()
                return found[0] if found and found[0]["status"] == "delivered" else None

            done = until(delivered, "the third attempt")
    assert done["attempts"] == 3 and done["last_status"] == 204
    ids = {r.headers["webhook-id"] for r in receiver.requests}
    assert len(receiver.requests) == 3 and ids == {done["id"]}  # one id, however often sent
    for request in receiver.requests:
        payload = Webhook(hook_secret).verify(request.body, request.headers)
        assert payload["data"]["reference"] == "identity-42"  # the identity system's own id


def test_webhooks_owed_while_the_receiver_is_down_are_sent_after_a_restart(
    settings_with: Callable[..., Settings],
) -> None:
    hook_secret, port = sign.whsec(), free_port()
    hook = {"url": f"http://127.0.0.1:{port}/h", "secret": hook_secret, "events": ["message.sent"]}
    with smtp_server() as smtp:
        settings = settings_with(courier=base_courier(smtp.port, webhooks=[hook]))
        with serving(settings) as base, httpx.Client(base_url=base) as http:
            message = send(http, "later@example.org").json()

            def tried() -> bool:
                found = http.get("/admin/webhooks/deliveries", headers=AUTH).json()
                return bool(found) and found[0]["attempts"] >= 1

            until(tried, "a first failed attempt")
        # Postroom stops; the receiver comes up; Postroom starts again on the same database.
        with http_server([reply(200)], port=port) as receiver, serving(settings):
            request = until(lambda: receiver.requests, "the webhook after the restart")[0]
            payload = Webhook(hook_secret).verify(request.body, request.headers)
            assert payload["data"]["message_id"] == message["id"]


def test_sns_subscription_is_confirmed_and_only_allowed_certificates_and_topics_are_used(
    keys: Keys, pki: Pki, settings_with: Callable[..., Settings]
) -> None:
    with (
        http_server([reply(200, keys.sns_cert)], tls=pki.server_context()) as aws,
        smtp_server() as smtp,
    ):
        cert_url = aws.base("/SimpleNotificationService-test.pem")
        subscribe = aws.base("/?Action=ConfirmSubscription&Token=abc")
        courier = base_courier(smtp.port, provider_events={"ses": {"topic_arns": [TOPIC]}})
        serve = {"sns_cert_host_pattern": r"^127\.0\.0\.1:\d+$"}
        with (
            serving(settings_with(courier=courier, serve=serve)) as base,
            httpx.Client(base_url=base) as http,
        ):
            body, headers = sign.sns(
                keys.sns, cert_url, TOPIC, kind="SubscriptionConfirmation", subscribe_url=subscribe
            )
            answer = http.post("/webhooks/ses/default", content=body, headers=headers)
            assert answer.status_code == 200 and answer.json() == {"confirmed": TOPIC}
            assert any("ConfirmSubscription" in r.path for r in aws.requests)
            for version in ("1", "2"):
                note = json.dumps({"notificationType": "Delivery", "mail": {}, "delivery": {}})
                body, headers = sign.sns(keys.sns, cert_url, TOPIC, message=note, version=version)
                assert (
                    http.post("/webhooks/ses/default", content=body, headers=headers).status_code
                    == 200
                )
            fetched = [r for r in aws.requests if r.path.endswith(".pem")]
            assert len(fetched) == 1  # the certificate is cached
            other = "arn:aws:sns:eu-west-1:123456789012:someone-else"
            body, headers = sign.sns(keys.sns, cert_url, other)
            assert (
                http.post("/webhooks/ses/default", content=body, headers=headers).status_code == 401
            )
        # Without the operator's pattern, only AWS's own hosts may serve the certificate.
        with serving(settings_with(courier=courier)) as base, httpx.Client(base_url=base) as http:
            before = len(aws.requests)
            body, headers = sign.sns(keys.sns, aws.base("/other.pem"), TOPIC)
            assert (
                http.post("/webhooks/ses/default", content=body, headers=headers).status_code == 401
            )
            assert len(aws.requests) == before


def test_event_keys_and_webhook_secrets_are_encrypted_masked_and_bound_to_their_url(
    settings_with: Callable[..., Settings],
) -> None:
    hook_secret = sign.whsec()
    tenant = {
        "provider_events": {
            "mailgun": {"signing_key": "mailgun-signing-key-0123"},
            "postmark": {"username": "pm", "password": "postmark-password-1"},
        },
        "webhooks": [{"url": "https://id.example.org/hook", "secret": hook_secret}],
    }
    settings = settings_with()
    with serving(settings) as base, httpx.Client(base_url=base) as http:
        saved = http.put("/admin/tenants/acme", json=tenant, headers=AUTH)
        assert saved.status_code == 200, saved.text
        shown = http.get("/admin/tenants/acme", headers=AUTH).json()["courier"]
        assert shown["provider_events"]["mailgun"]["signing_key"] == "***"
        assert shown["provider_events"]["postmark"]["password"] == "***"
        assert shown["webhooks"][0]["secret"] == "***"
        assert hook_secret not in json.dumps(shown)
        kept = http.put("/admin/tenants/acme", json=shown, headers=AUTH)
        assert kept.status_code == 200, kept.text
        moved = json.loads(json.dumps(shown))
        moved["webhooks"][0]["url"] = "https://elsewhere.example.org/hook"
        refused = http.put("/admin/tenants/acme", json=moved, headers=AUTH)
        assert refused.status_code == 400 and "webhooks[0].secret" in refused.text
        private = json.loads(json.dumps(tenant))
        private["webhooks"][0]["url"] = "http://127.0.0.1:9/hook"
        refused = http.put("/admin/tenants/acme2", json=private, headers=AUTH)
        assert refused.status_code == 400 and "webhooks[0].url" in refused.text

    async def raw() -> dict[str, Any]:
        store = open_store(settings.dsn)
        try:
            found = await store.get_tenant("acme")
            assert found is not None
            return found.courier
        finally:
            await store.close()

    import asyncio

    stored = asyncio.run(raw())
    assert stored["webhooks"][0]["secret"].startswith("enc:v1:")
    assert stored["provider_events"]["mailgun"]["signing_key"].startswith("enc:v1:")
