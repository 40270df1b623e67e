"""Relayed mail through each kind of tenant transport: HTTP gets the subject, text and HTML
parsed from the MIME; the outbox keeps the MIME as it is; ``rewrite_from`` and the tenant's
configured headers change only what they say."""

from __future__ import annotations

import base64
from collections.abc import Callable
from email import message_from_bytes, policy
from pathlib import Path

from postroom.config import Settings

from conftest import Pki
from http_servers import http_server
from listener_support import PASSWORD, client_tls, listening, mail, submit, wait_until
from smtp_servers import smtp_server

CUSTOM = (
    "function(ctx) { to: ctx.recipient, subject: ctx.subject, text: ctx.body, "
    "html: ctx.html_body, type: ctx.template_type }"
)


def test_http_tenant_gets_subject_text_and_html(make: Callable[..., Settings], pki: Pki) -> None:
    with http_server() as srv:
        courier = {
            "delivery_strategy": "http",
            "http": {"request_config": {"url": srv.url, "body": f"base64://{_b64(CUSTOM)}"}},
        }
        with listening(make(courier=courier)) as run:
            submit(run.port, mail(), login=("keycloak", PASSWORD), context=client_tls(pki))
            wait_until(lambda: srv.requests, what="the HTTP request")
    body = srv.requests[0].json()
    assert body == {
        "to": "user@example.org",
        "subject": "Votre code: 123456 ✓",
        "text": "Bonjour Zoë, votre code est 123456.\n",
        "html": "<p>Bonjour Zoë, votre code est <b>123456</b>.</p>\n",
        "type": "relay",
    }


def test_http_default_body_carries_subject_and_body(
    make: Callable[..., Settings], pki: Pki
) -> None:
    with http_server() as srv:
        courier = {"delivery_strategy": "http", "http": {"request_config": {"url": srv.url}}}
        with listening(make(courier=courier)) as run:
            submit(run.port, mail(), login=("keycloak", PASSWORD), context=client_tls(pki))
            wait_until(lambda: srv.requests, what="the HTTP request")
    body = srv.requests[0].json()
    assert body["subject"] == "Votre code: 123456 ✓"
    assert body["body"] == "Bonjour Zoë, votre code est 123456.\n"
    assert body["template_type"] == "relay" and body["recipient"] == "user@example.org"


def test_outbox_keeps_the_mime_as_received(
    make: Callable[..., Settings], pki: Pki, tmp_path: Path
) -> None:
    outbox = tmp_path / "relayed"
    courier = {"delivery_strategy": "outbox", "outbox_path": str(outbox)}
    raw = mail()
    with listening(make(courier=courier)) as run:
        submit(run.port, raw, login=("keycloak", PASSWORD), context=client_tls(pki))
        wait_until(lambda: list(outbox.glob("*.eml")), what="the outbox file")
    written = next(outbox.glob("*.eml")).read_bytes()
    assert written.replace(b"\r\n", b"\n").endswith(
        raw.split(b"\r\n\r\n", 1)[1].replace(b"\r\n", b"\n")
    )


def test_rewrite_from_and_tenant_headers(make: Callable[..., Settings], pki: Pki) -> None:
    with smtp_server() as sink:
        settings = make(sink.port, rewrite_from=True)
        courier = settings.courier.model_dump(mode="json")
        courier["smtp"].update(
            from_address="sender@example.org",
            from_name="Example ID",
            headers={"X-SES-CONFIGURATION-SET": "identity"},
        )
        settings = settings.model_copy(
            update={"courier": type(settings.courier).model_validate(courier)}
        )
        with listening(settings) as run:
            submit(run.port, mail(), login=("keycloak", PASSWORD), context=client_tls(pki))
            wait_until(lambda: sink.rec.messages, what="delivery")
    accepted = sink.rec.messages[0]
    assert accepted.mail_from == "sender@example.org"
    parsed = message_from_bytes(accepted.content, policy=policy.default)
    assert str(parsed["From"]) == "Example ID <sender@example.org>"
    assert parsed["X-SES-CONFIGURATION-SET"] == "identity"
    assert parsed["Subject"] == "Votre code: 123456 ✓"
    assert parsed["Message-ID"] and parsed["Date"]


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()
