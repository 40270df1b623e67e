"""Submitting mail through the SMTP listener with Python's smtplib: it is stored before the
250 (one message per recipient), relayed through the tenant's SMTP transport as received, and
every refusal carries its code and lands in the refusal log."""

from __future__ import annotations

import asyncio
import smtplib
import sqlite3
from collections.abc import Callable
from email import message_from_bytes, policy
from typing import Any

import httpx
import pytest

from postroom.config import Settings
from postroom.models import Message
from postroom.store import MessageFilter, open_store

from conftest import Pki
from listener_support import (
    PASSWORD,
    client_tls,
    listening,
    mail,
    non_loopback_address,
    refusals,
    submit,
    wait_until,
)
from smtp_servers import smtp_server
from web_support import AUTH


def test_starttls_login_relays_each_recipient_as_received(
    make: Callable[..., Settings], pki: Pki
) -> None:
    with smtp_server() as sink:
        settings = make(sink.port)
        with listening(settings) as run:
            raw = mail(extra={"X-Postroom-Priority": "bulk", "X-Postroom-Reference": "realm-7"})
            refused = submit(
                run.port,
                raw,
                to=("a@example.org", "b@example.org"),
                login=("keycloak", PASSWORD),
                context=client_tls(pki),
            )
            assert refused == {}
            wait_until(lambda: len(sink.rec.messages) == 2, what="both recipients delivered")

            def relayed() -> list[dict[str, Any]]:
                url = f"{run.url}/admin/courier/messages"
                listed = httpx.get(url, headers=AUTH, timeout=10).json()
                rows = listed["messages"] if isinstance(listed, dict) else listed
                return [m for m in rows if m["template_type"] == "relay"]

            # The worker records a hand-off a moment after the server took it.
            wait_until(lambda: all(m["status"] == "sent" for m in relayed()), what="recorded")
            relay = relayed()
    got = {m.rcpt_tos[0]: m for m in sink.rec.messages}
    assert set(got) == {"a@example.org", "b@example.org"}
    for accepted in got.values():
        assert accepted.mail_from == "keycloak@example.org"
        parsed = message_from_bytes(accepted.content, policy=policy.default)
        assert parsed["Subject"] == "Votre code: 123456 ✓"
        text = parsed.get_body(("plain",)).get_content()
        assert text.replace("\r\n", "\n") == "Bonjour Zoë, votre code est 123456.\n"
        assert "<b>123456</b>" in parsed.get_body(("html",)).get_content()
        assert not [k for k in parsed if k.lower().startswith("x-postroom")]
    # The body relayed is the body received: only the X-Postroom-* lines are gone.
    received_body = raw.split(b"\r\n\r\n", 1)[1]
    assert all(m.content.split(b"\r\n\r\n", 1)[1] == received_body for m in got.values())
    assert len(relay) == 2 and len({m["id"] for m in relay}) == 2
    assert all(m["status"] == "sent" for m in relay)
    with sqlite3.connect(settings.dsn.removeprefix("sqlite:///")) as db:  # the MIME, once
        assert db.execute("SELECT count(*) FROM relay_bodies").fetchone() == (1,)
        assert db.execute("SELECT max(length(mime)) FROM messages").fetchone() == (0,)


def test_implicit_tls_and_auth_login(make: Callable[..., Settings], pki: Pki) -> None:
    with smtp_server() as sink:
        settings = make(sink.port)
        with listening(settings) as run:
            assert run.tls_port is not None
            with smtplib.SMTP_SSL(
                "localhost", run.tls_port, context=client_tls(pki), timeout=10
            ) as client:
                client.ehlo()
                client.user, client.password = "keycloak", PASSWORD
                code, _ = client.auth("LOGIN", client.auth_login)
                assert code == 235
                client.sendmail("keycloak@example.org", ["c@example.org"], mail())
            wait_until(lambda: sink.rec.messages, what="delivery")
    assert sink.rec.messages[0].rcpt_tos == ["c@example.org"]


def test_wrong_logins_are_refused_then_locked_out_per_username_and_address(
    make: Callable[..., Settings], pki: Pki
) -> None:
    with smtp_server() as sink:
        settings = make(sink.port)
        with listening(settings) as run:
            with smtplib.SMTP("127.0.0.1", run.port, timeout=30) as client:
                client.starttls(context=client_tls(pki))
                client.ehlo()
                client.esmtp_features["auth"] = "PLAIN"  # one attempt per login() call
                codes = []
                for _ in range(11):
                    with pytest.raises(smtplib.SMTPAuthenticationError) as failed:
                        client.login("keycloak", "not-the-password")
                    codes.append((failed.value.smtp_code, failed.value.smtp_error[:9]))
            assert codes[:10] == [(535, b"5.7.8 Aut")] * 10
            assert codes[10][0] == 454  # locked: even the right password waits now
            with smtplib.SMTP("127.0.0.1", run.port, timeout=10) as client:
                client.starttls(context=client_tls(pki))
                with pytest.raises(smtplib.SMTPAuthenticationError) as locked:
                    client.login("keycloak", PASSWORD)
                assert locked.value.smtp_code == 454
            wait_until(lambda: len(refusals(run.url)) >= 12, what="the refusal log")
            log = refusals(run.url)
    assert log[0]["client"] == "127.0.0.1" and log[0]["username"] == "keycloak"
    assert log[0]["reply"].startswith("454 4.7.0")
    assert log[-1]["reply"].startswith("535 5.7.8")
    assert "wrong username or password" in log[-1]["reason"]
    assert not any(PASSWORD in str(entry) for entry in log)


def test_a_lockout_spares_other_usernames(make: Callable[..., Settings], pki: Pki) -> None:
    with smtp_server() as sink:
        settings = make(
            sink.port,
            logins=[
                {"username": "keycloak", "password": PASSWORD},
                {"username": "authentik", "password": "another-long-password"},
            ],
        )
        with listening(settings) as run:
            with smtplib.SMTP("127.0.0.1", run.port, timeout=30) as client:
                client.starttls(context=client_tls(pki))
                client.ehlo()
                client.esmtp_features["auth"] = "PLAIN"
                for _ in range(10):
                    with pytest.raises(smtplib.SMTPAuthenticationError):
                        client.login("keycloak", "wrong-password")
            submit(
                run.port,
                mail(),
                login=("authentik", "another-long-password"),
                context=client_tls(pki),
            )
            wait_until(lambda: sink.rec.messages, what="delivery for the other username")


def test_refusals_carry_their_codes(make: Callable[..., Settings], pki: Pki) -> None:
    with smtp_server() as sink:
        settings = make(sink.port)
        settings = settings.model_copy(
            update={
                "listener": settings.listener.model_copy(
                    update={
                        "smtp": settings.listener.smtp.model_copy(
                            update={"max_message_size": 2000, "max_recipients": 2}
                        )
                    }
                )
            }
        )
        with listening(settings) as run:
            with smtplib.SMTP("127.0.0.1", run.port, timeout=10) as client:
                client.ehlo()
                assert client.mail("keycloak@example.org") == (
                    530,
                    b"5.7.0 Authentication required",
                )
            with smtplib.SMTP("127.0.0.1", run.port, timeout=10) as client:
                client.starttls(context=client_tls(pki))
                client.ehlo()
                assert client.esmtp_features["size"] == "2000"
                client.login("keycloak", PASSWORD)
                code, _ = client.mail("not an address")
                assert code == 501
                assert client.mail("keycloak@example.org")[0] == 250
                assert client.rcpt("nobody@@example")[0] == 553
                assert client.rcpt("a@example.org")[0] == 250
                assert client.rcpt("b@example.org")[0] == 250
                assert client.rcpt("c@example.org")[:1] == (452,)
                code, reply = client.data(mail(subject="x" * 3000))
                assert (code, reply[:5]) == (552, b"5.3.4")
            wait_until(lambda: len(refusals(run.url)) >= 5, what="the refusal log")
            replies = [r["reply"][:9] for r in refusals(run.url)]
    assert replies[:5] == ["552 5.3.4", "452 4.5.3", "553 5.1.3", "501 5.1.7", "530 5.7.0"]
    assert sink.rec.messages == []


def test_auth_before_starttls_from_beyond_loopback_needs_encryption(
    make: Callable[..., Settings], pki: Pki
) -> None:
    address = non_loopback_address()
    with smtp_server() as sink, listening(make(sink.port)) as run:
        with smtplib.SMTP(address, run.port, timeout=10) as client:
            client.ehlo()
            assert "auth" not in client.esmtp_features
            code, reply = client.docmd("AUTH", "PLAIN AGtleWNsb2FrAHg=")
            assert (code, reply[:10]) == (538, b"5.7.11 Enc")
            context = client_tls(pki)
            client.starttls(context=context)
            client.login("keycloak", PASSWORD)
            client.sendmail("keycloak@example.org", ["d@example.org"], mail())
        wait_until(lambda: sink.rec.messages, what="delivery after STARTTLS")
        wait_until(lambda: refusals(run.url), what="the refusal log")
        log = refusals(run.url)
    assert log[0]["client"] == address and log[0]["reply"].startswith("538 5.7.11")


def test_allow_from_relays_without_login_at_normal_priority(
    make: Callable[..., Settings], pki: Pki
) -> None:
    with smtp_server() as sink, listening(make(sink.port, allow_from=["127.0.0.0/8"])) as run:
        submit(run.port, mail(), to=("e@example.org",))
        wait_until(lambda: sink.rec.messages, what="delivery without AUTH")
        rows = httpx.get(f"{run.url}/admin/courier/messages", headers=AUTH, timeout=10).json()
    assert sink.rec.messages[0].rcpt_tos == ["e@example.org"]
    rows = rows["messages"] if isinstance(rows, dict) else rows
    assert rows[0]["template_type"] == "relay"


def test_bare_line_feed_is_refused_as_smuggling(make: Callable[..., Settings], pki: Pki) -> None:
    smuggled = (
        b"From: a@example.org\r\nSubject: one\r\n\r\nfirst\n.\r\nMAIL FROM:<x@example.org>\r\n"
    )
    with smtp_server() as sink, listening(make(sink.port, allow_from=["127.0.0.0/8"])) as run:
        with smtplib.SMTP("127.0.0.1", run.port, timeout=10) as client:
            client.ehlo()
            client.mail("a@example.org")
            client.rcpt("f@example.org")
            client.putcmd("DATA")
            assert client.getreply()[0] == 354
            client.send(smuggled + b"more\r\n.\r\n")
            code, reply = client.getreply()
            assert (code, reply[:5]) == (500, b"5.5.2")
        with smtplib.SMTP("127.0.0.1", run.port, timeout=10) as client:
            client.ehlo()
            client.mail("a@example.org")
            client.rcpt("f@example.org")
            client.putcmd("DATA")
            client.getreply()
            client.send(b"Subject: cr\r\n\r\nbare\rcarriage\r\n.\r\n")
            assert client.getreply()[0] == 500
    assert sink.rec.messages == []


async def test_a_store_that_refuses_the_write_answers_451_and_keeps_nothing(
    make: Callable[..., Settings], pki: Pki
) -> None:
    with smtp_server() as sink:
        settings = make(sink.port)
        store = open_store(settings.dsn)
        await store.migrate()
        await store.close()
        path = settings.dsn.removeprefix("sqlite:///")
        with sqlite3.connect(path) as db:  # the second recipient's row cannot be written
            db.execute(
                "CREATE TRIGGER refuse BEFORE INSERT ON messages "
                "WHEN NEW.recipient = 'b@example.org' BEGIN SELECT RAISE(ABORT, 'disk full'); END"
            )

        def send() -> None:
            with listening(settings) as run:
                with pytest.raises(smtplib.SMTPDataError) as failed:
                    submit(
                        run.port,
                        mail(),
                        to=("a@example.org", "b@example.org"),
                        login=("keycloak", PASSWORD),
                        context=client_tls(pki),
                    )
                assert failed.value.smtp_code == 451
                assert failed.value.smtp_error.startswith(b"4.3.0")

        await asyncio.to_thread(send)
        store = open_store(settings.dsn)
        try:
            assert await store.list_messages(MessageFilter()) == []
        finally:
            await store.close()
    assert sink.rec.messages == []


def test_postroom_headers_set_priority_and_reference_or_are_refused(
    make: Callable[..., Settings], pki: Pki
) -> None:
    settings = make(courier={"delivery_strategy": "outbox"})
    with listening(settings, run_worker=False) as run:
        raw = mail(extra={"X-Postroom-Priority": "bulk", "X-Postroom-Reference": "realm-7"})
        submit(run.port, raw, login=("keycloak", PASSWORD), context=client_tls(pki))
        with pytest.raises(smtplib.SMTPDataError) as bad:
            submit(
                run.port,
                mail(extra={"X-Postroom-Priority": "asap"}),
                login=("keycloak", PASSWORD),
                context=client_tls(pki),
            )
        assert (bad.value.smtp_code, bad.value.smtp_error[:5]) == (554, b"5.6.0")
        assert b"urgent, normal, bulk" in bad.value.smtp_error

    async def stored() -> list[Message]:
        store = open_store(settings.dsn)
        try:
            return await store.list_messages(MessageFilter())
        finally:
            await store.close()

    [message] = asyncio.run(stored())
    assert message.template_data["priority"] == "bulk"
    assert message.template_data["reference"] == "realm-7"
    assert message.template_data["mail_from"] == "keycloak@example.org"
    assert b"X-Postroom" not in message.mime and b"x-postroom" not in message.mime.lower()


def test_connections_over_the_limit_get_421(make: Callable[..., Settings]) -> None:
    with listening(make(smtp={"max_connections": 2})) as run:
        first = smtplib.SMTP("127.0.0.1", run.port, timeout=10)
        second = smtplib.SMTP("127.0.0.1", run.port, timeout=10)
        try:
            with pytest.raises(smtplib.SMTPConnectError) as refused:
                smtplib.SMTP("127.0.0.1", run.port, timeout=10)
            assert refused.value.smtp_code == 421
            assert b"4.7.0 Too many connections" in refused.value.smtp_error
        finally:
            first.quit()
            second.quit()
        wait_until(lambda: smtp_ok(run.port), what="a slot freed by QUIT")


def smtp_ok(port: int) -> bool:
    try:
        with smtplib.SMTP("127.0.0.1", port, timeout=5) as client:
            return client.noop()[0] == 250
    except smtplib.SMTPConnectError:
        return False
