"""``run_smtp_test`` against real aiosmtpd servers: every step, the report, the extras, and the
failures a user meets, with the same transport the worker uses."""

from __future__ import annotations

import email
import json
import ssl
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from postroom.config.settings import CourierSettings
from postroom.config.smtp_uri import parse_smtp_uri
from postroom.errors import ConfigError, InputError
from postroom.models import Diagnosis
from postroom.transports import smtp_connection
from postroom.transports import smtp_probe as smtp_test
from postroom.transports.smtp import SmtpTransport
from postroom.transports.smtp_probe import port_scheme_hint, run_smtp_test

from conftest import Pki
from smtp_servers import silent_server, smtp_server

SECRET = "s3cr3t:p@ss/word"
USERS = {"alice": SECRET}
ENCODED = "s3cr3t%3Ap%40ss%2Fword"


def courier(**smtp: Any) -> CourierSettings:
    base: dict[str, Any] = {"from_address": "no-reply@example.org", "timeout": "3s"}
    return CourierSettings.model_validate({"smtp": {**base, **smtp}})


def stages(report: smtp_test.SmtpTestReport) -> list[str]:
    return [step.stage for step in report.steps]


async def test_a_good_conversation_is_reported_step_by_step(pki: Pki) -> None:
    with smtp_server(starttls=pki.server_context(), require_starttls=True, users=USERS) as srv:
        uri = f"smtp://alice:{ENCODED}@localhost:{srv.port}/"
        report = await run_smtp_test(courier(), uri=uri, to="you@example.org")
    assert report.ok
    assert report.failed_stage is None
    assert stages(report) == [
        "render",
        "dns",
        "connect",
        "connect",
        "ehlo",
        "starttls",
        "ehlo",
        "auth",
        "mail",
        "rcpt",
        "data",
        "quit",
    ]
    assert all(step.ok for step in report.steps)
    assert all(step.ms >= 0 for step in report.steps)
    assert report.accepted_reply is not None
    assert report.accepted_reply.startswith("250")
    # The test email went out, rendered from the built-in template, with the redacted URI.
    (accepted,) = srv.rec.messages
    assert accepted.mail_from == "no-reply@example.org"
    assert accepted.rcpt_tos == ["you@example.org"]
    assert accepted.tls
    message = email.message_from_bytes(accepted.content)
    assert message["Subject"] == "Postroom: Test email"
    body = accepted.content.decode()
    assert f"smtp://alice:***@localhost:{srv.port}/" in body
    assert "Sent at: " in body
    assert SECRET not in body
    assert ENCODED not in body


async def test_extensions_tls_and_certificate_are_reported(pki: Pki) -> None:
    with smtp_server(starttls=pki.server_context(), users=USERS) as srv:
        report = await run_smtp_test(
            courier(), uri=f"smtp://alice:{ENCODED}@localhost:{srv.port}/", no_send=True
        )
    assert report.ok
    assert "auth" in report.extensions  # after STARTTLS the server offers AUTH
    assert set(report.auth_methods) >= {"plain", "login"}
    ehlo = [step for step in report.steps if step.stage == "ehlo"]
    assert "STARTTLS" in (ehlo[0].detail or "")
    assert "AUTH" in (ehlo[1].detail or "")
    assert report.tls is not None
    assert report.tls.version in ("TLSv1.2", "TLSv1.3")
    assert report.tls.verified
    assert report.tls.subject is not None
    assert "localhost" in report.tls.names
    assert report.tls.not_after is not None
    starttls = next(step for step in report.steps if step.stage == "starttls")
    assert "certificate" in (starttls.detail or "")
    assert report.warnings == []


async def test_a_certificate_expiring_soon_earns_a_warning(pki: Pki) -> None:
    soon = datetime.now(UTC) + timedelta(days=5)
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    pki.ca.issue_cert("localhost", not_after=soon).configure_cert(ctx)
    with smtp_server(starttls=ctx) as srv:
        report = await run_smtp_test(courier(), uri=f"smtp://localhost:{srv.port}/", no_send=True)
    assert report.ok
    (warning,) = report.warnings
    assert "expires" in warning
    assert f"{soon:%Y-%m-%d}" in warning
    assert "day" in warning


async def test_a_refused_login_is_the_failed_step_with_its_reply(pki: Pki) -> None:
    with smtp_server(starttls=pki.server_context(), users=USERS) as srv:
        uri = f"smtp://alice:wrong-{ENCODED}@localhost:{srv.port}/"
        report = await run_smtp_test(courier(), uri=uri, to="you@example.org")
    assert not report.ok
    assert report.failed_stage == "auth"
    failed = [step for step in report.steps if not step.ok]
    assert [step.stage for step in failed] == ["auth"]
    assert failed[0].reply is not None
    assert failed[0].reply.startswith("535")
    assert report.diagnosis is not None
    assert report.diagnosis.code == "auth_failed"
    assert srv.rec.messages == []
    data = report.to_json()
    assert set(data) == {"ok", "uri", "steps", "failed_stage", "diagnosis"}
    assert data["ok"] is False
    assert data["failed_stage"] == "auth"
    assert set(data["diagnosis"]) == {"code", "transient", "cause", "fix"}
    assert data["diagnosis"]["transient"] is False
    text = json.dumps(data)
    assert "wrong-" not in text
    assert ENCODED not in text
    assert SECRET not in text


async def test_no_send_stops_after_rcpt_and_sends_nothing(pki: Pki) -> None:
    with smtp_server(starttls=pki.server_context(), users=USERS) as srv:
        report = await run_smtp_test(
            courier(),
            uri=f"smtp://alice:{ENCODED}@localhost:{srv.port}/",
            to="you@example.org",
            no_send=True,
        )
        assert srv.handler.calls.get("RCPT") == 1
        assert "DATA" not in srv.handler.calls
    assert report.ok
    assert report.no_send
    assert stages(report)[-3:] == ["mail", "rcpt", "quit"]
    assert "render" not in stages(report)
    assert "data" not in stages(report)
    assert srv.rec.messages == []


async def test_a_refused_recipient_is_diagnosed_at_rcpt(pki: Pki) -> None:
    faults = {"RCPT": lambda rec, n: "550 5.1.1 <nobody@example.org>: User unknown"}
    with smtp_server(starttls=pki.server_context(), faults=faults) as srv:
        report = await run_smtp_test(
            courier(), uri=f"smtp://localhost:{srv.port}/", to="nobody@example.org", no_send=True
        )
    assert report.failed_stage == "rcpt"
    assert report.diagnosis is not None
    assert report.diagnosis.code == "recipient_rejected"
    assert report.steps[-1].stage == "quit"  # the session was still closed politely


async def test_plain_smtp_to_an_implicit_tls_port_is_the_wrong_mode(pki: Pki) -> None:
    with smtp_server(implicit_tls=pki.server_context()) as srv:
        report = await run_smtp_test(
            courier(timeout="1s"), uri=f"smtp://localhost:{srv.port}/", no_send=True
        )
    assert report.failed_stage == "connect"
    assert report.diagnosis is not None
    assert report.diagnosis.code == "tls_wrong_mode"
    assert "smtps://" in report.diagnosis.fix


async def test_a_silent_server_on_465_is_the_wrong_mode_without_a_probe(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with silent_server() as port:
        plain = await run_smtp_test(
            courier(timeout="1s"), uri=f"smtp://localhost:{port}/", no_send=True
        )
        # A hung server that does not speak TLS either: a timeout, not a mode problem.
        assert plain.diagnosis is not None
        assert plain.diagnosis.code == "connection_timeout"
        # On port 465 the same silence means "this port wants TLS first" (smtp.py's rule).
        monkeypatch.setattr(smtp_connection, "IMPLICIT_TLS_PORT", port)
        on_465 = await run_smtp_test(
            courier(timeout="1s"), uri=f"smtp://localhost:{port}/", no_send=True
        )
    assert on_465.diagnosis is not None
    assert on_465.diagnosis.code == "tls_wrong_mode"


async def test_implicit_tls_to_a_starttls_port_is_the_wrong_mode(pki: Pki) -> None:
    with smtp_server(starttls=pki.server_context()) as srv:
        report = await run_smtp_test(courier(), uri=f"smtps://localhost:{srv.port}/", no_send=True)
    assert report.failed_stage == "tls"
    assert report.diagnosis is not None
    assert report.diagnosis.code == "tls_wrong_mode"


async def test_an_untrusted_certificate_fails_at_tls(pki: Pki) -> None:
    with smtp_server(starttls=pki.server_context(trusted=False)) as srv:
        report = await run_smtp_test(courier(), uri=f"smtp://localhost:{srv.port}/", no_send=True)
    assert report.failed_stage == "tls"
    assert report.diagnosis is not None
    assert report.diagnosis.code == "tls_certificate_untrusted"


async def test_missing_starttls_is_diagnosed() -> None:
    with smtp_server() as srv:
        report = await run_smtp_test(courier(), uri=f"smtp://localhost:{srv.port}/", no_send=True)
    assert report.failed_stage == "starttls"
    assert report.diagnosis is not None
    assert report.diagnosis.code == "starttls_unavailable"


async def test_it_drives_the_worker_transport(pki: Pki, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []
    real_send = SmtpTransport.send

    async def spy(self: SmtpTransport, envelope: Any) -> Any:
        calls.append(envelope.recipients[0])
        return await real_send(self, envelope)

    monkeypatch.setattr(SmtpTransport, "send", spy)
    with smtp_server(starttls=pki.server_context()) as srv:
        report = await run_smtp_test(
            courier(), uri=f"smtp://localhost:{srv.port}/", to="you@example.org"
        )
    assert report.ok
    assert calls == ["you@example.org"]


async def test_a_broken_test_template_fails_at_render_without_connecting(
    pki: Pki, tmp_path: Path
) -> None:
    override = tmp_path / "templates" / "test"
    override.mkdir(parents=True)
    (override / "email.subject.j2").write_text("{% if %}")
    settings = CourierSettings.model_validate(
        {
            "template_override_path": str(tmp_path / "templates"),
            "smtp": {"from_address": "no-reply@example.org"},
        }
    )
    with smtp_server(starttls=pki.server_context()) as srv:
        report = await run_smtp_test(settings, uri=f"smtp://localhost:{srv.port}/")
    assert report.failed_stage == "render"
    assert report.diagnosis is not None
    assert report.diagnosis.code == "template_error"
    assert stages(report) == ["render"]
    assert srv.rec.connections == 0


async def test_sender_defaults_to_the_mailbox_that_logs_in(pki: Pki) -> None:
    users = {"app@example.org": "pw"}
    with smtp_server(starttls=pki.server_context(), users=users) as srv:
        plain = CourierSettings()  # no from_address configured
        report = await run_smtp_test(
            plain, uri=f"smtp://app%40example.org:pw@localhost:{srv.port}/"
        )
    assert report.ok
    assert report.sender == "app@example.org"
    assert report.recipient == "app@example.org"
    assert srv.rec.messages[0].mail_from == "app@example.org"


async def test_placeholder_sender_is_warned_about(pki: Pki) -> None:
    with smtp_server(starttls=pki.server_context()) as srv:
        report = await run_smtp_test(
            CourierSettings(), uri=f"smtp://localhost:{srv.port}/", no_send=True
        )
    assert any("placeholder" in warning for warning in report.warnings)


async def test_bad_input_raises() -> None:
    with pytest.raises(InputError, match="no SMTP settings"):
        await run_smtp_test(CourierSettings())
    with pytest.raises(ConfigError):
        await run_smtp_test(CourierSettings(), uri="ftp://example.org/")
    with pytest.raises(InputError) as info:
        await run_smtp_test(courier(), uri="smtp://localhost:2525/", to="not an address")
    assert info.value.field == "to"


def test_port_and_scheme_hint() -> None:
    on_465 = port_scheme_hint(parse_smtp_uri("smtp://u:p@smtp.example.org:465/"))
    assert on_465 is not None
    assert "smtps://smtp.example.org:465/" in on_465
    on_587 = port_scheme_hint(parse_smtp_uri("smtps://u:p@smtp.example.org:587/"))
    assert on_587 is not None
    assert "smtp://smtp.example.org:587/" in on_587
    assert port_scheme_hint(parse_smtp_uri("smtp://smtp.example.org:587/")) is None
    assert port_scheme_hint(parse_smtp_uri("smtps://smtp.example.org:465/")) is None


def test_the_hint_joins_a_wrong_mode_diagnosis() -> None:
    uri = parse_smtp_uri("smtp://u:p@smtp.example.org:465/")
    timeout = Diagnosis("connection_timeout", True, "No answer.", "Check the firewall.")
    refined = smtp_test._refine(timeout, uri, port_scheme_hint(uri))
    assert refined.fix.startswith("The port and scheme disagree")
    assert "smtps://" in refined.fix


def test_an_aws_secret_key_as_ses_password_is_explained() -> None:
    secret = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
    uri = parse_smtp_uri(
        f"smtp://AKIAIOSFODNN7EXAMPLE:{secret.replace('/', '%2F')}"
        "@email-smtp.eu-west-1.amazonaws.com:587/"
    )
    failed = Diagnosis("auth_failed", False, "Rejected.", "Check the password.")
    refined = smtp_test._refine(failed, uri, None)
    assert "secret access key" in refined.cause
    assert "--derive-from-secret-key" in refined.fix
    assert secret not in refined.cause + refined.fix
