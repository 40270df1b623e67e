"""XOAUTH2 on the SMTP transport, walked with ``test-smtp`` against a real token endpoint and a
real SMTP server: the ``token`` step before ``auth``, Google's service account (JWT bearer),
Gmail's 334 error flow, and token-endpoint refusals explained."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import yaml

from postroom.config.settings import CourierSettings
from postroom.transports.smtp_probe import run_smtp_test

from oauth_server import (
    CLIENT_ID,
    CLIENT_SECRET,
    GOOGLE_SCOPE,
    SERVICE_ACCOUNT,
    OAuthProvider,
    oauth_endpoint,
    xoauth2_server,
)
from procs import postroom

SENDER = "sender@example.org"


def m365(provider: OAuthProvider, port: int, **oauth: Any) -> dict[str, Any]:
    return {
        "smtp": {
            "connection_uri": f"smtp://sender%40example.org@localhost:{port}/",
            "from_address": SENDER,
            "timeout": "5s",
            "oauth2": {
                "provider": "microsoft",
                "tenant_id": "contoso",
                "client_id": CLIENT_ID,
                "client_secret": CLIENT_SECRET,
                "token_url": provider.token_url(),
                **oauth,
            },
        }
    }


def google(provider: OAuthProvider, port: int, **oauth: Any) -> dict[str, Any]:
    key = oauth.pop("key", None)
    return {
        "smtp": {
            "connection_uri": f"smtp://sender%40example.org@localhost:{port}/",
            "from_address": SENDER,
            "timeout": "5s",
            "oauth2": {
                "provider": "google",
                "service_account_json": json.dumps(provider.service_account(key=key)),
                **oauth,
            },
        }
    }


def claims(assertion: str) -> dict[str, Any]:
    part = assertion.split(".")[1]
    return dict(json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))))


async def test_test_smtp_shows_a_token_step_before_auth(pki: Any) -> None:
    with (
        oauth_endpoint(pki.server_context()) as (provider, _http),
        xoauth2_server(provider, tls=pki.server_context()) as srv,
    ):
        courier = CourierSettings.model_validate(m365(provider, srv.port))
        report = await run_smtp_test(courier)
    assert report.ok, report.to_json()
    stages = [step.stage for step in report.steps]
    assert stages.index("token") == stages.index("auth") - 1
    assert stages.index("token") > stages.index("starttls")
    token_step = report.steps[stages.index("token")]
    assert token_step.ok
    assert token_step.detail is not None
    assert "client credentials" in token_step.detail and "valid until" in token_step.detail
    auth_step = report.steps[stages.index("auth")]
    assert auth_step.reply is not None and auth_step.reply.startswith("235")
    assert auth_step.detail == f"logged in as {SENDER} with XOAUTH2"
    shown = json.dumps(report.to_json())
    assert report.uri == f"smtp://sender%40example.org@localhost:{srv.port}/"
    for secret in [*provider.secrets_seen(), CLIENT_SECRET]:
        assert secret not in shown
    assert [login.user for login in srv.handler.xoauth2] == [SENDER]


async def test_google_service_account_signs_a_jwt_and_acts_as_the_sender(pki: Any) -> None:
    with (
        oauth_endpoint(pki.server_context()) as (provider, _http),
        xoauth2_server(provider, tls=pki.server_context()) as srv,
    ):
        courier = CourierSettings.model_validate(google(provider, srv.port))
        report = await run_smtp_test(courier)
    assert report.ok, report.to_json()
    [request] = provider.grants("urn:ietf:params:oauth:grant-type:jwt-bearer")
    sent = claims(request.form["assertion"])
    assert sent["iss"] == SERVICE_ACCOUNT
    assert sent["sub"] == SENDER  # defaults to the URI's user
    assert sent["aud"] == provider.google_token_uri
    assert sent["scope"] == GOOGLE_SCOPE
    assert sent["exp"] - sent["iat"] == 3600
    token_step = next(s for s in report.steps if s.stage == "token")
    assert token_step.detail is not None and SERVICE_ACCOUNT in token_step.detail
    assert [(login.user, login.ok) for login in srv.handler.xoauth2] == [(SENDER, True)]


async def test_google_subject_overrides_the_login_user(pki: Any) -> None:
    other = "mailer@example.org"
    with (
        oauth_endpoint(pki.server_context(), subjects=(other,)) as (provider, _http),
        xoauth2_server(provider, tls=pki.server_context()) as srv,
    ):
        courier = CourierSettings.model_validate(google(provider, srv.port, subject=other))
        report = await run_smtp_test(courier, sender=other)
    assert report.ok, report.to_json()
    assert [login.user for login in srv.handler.xoauth2] == [other]


async def test_gmail_334_error_flow_is_answered_with_an_empty_line(pki: Any) -> None:
    with (
        oauth_endpoint(pki.server_context(), refuse_new=True) as (provider, _http),
        xoauth2_server(provider, tls=pki.server_context(), gmail=True) as srv,
    ):
        courier = CourierSettings.model_validate(google(provider, srv.port))
        report = await run_smtp_test(courier)
    assert not report.ok
    assert report.failed_stage == "auth"
    diagnosis = report.diagnosis
    assert diagnosis is not None
    assert diagnosis.code == "oauth_token_rejected"
    assert diagnosis.transient is False
    assert "domain-wide delegation" in diagnosis.fix
    failed = [s for s in report.steps if not s.ok]
    assert failed and all(s.stage == "auth" for s in failed)
    reply = failed[-1].reply or ""
    assert reply.startswith("535 5.7.8 Username and Password not accepted")
    assert "[XOAUTH2 error: status 400, schemes Bearer, scope https://mail.google.com/]" in reply
    # Each refused token got the challenge, answered with an empty line; one refresh, no more.
    logins = srv.handler.xoauth2
    assert [(login.ok, login.challenged, login.answer) for login in logins] == [
        (False, True, b""),
        (False, True, b""),
    ]
    assert len(provider.grants()) == 2
    stages = [s.stage for s in report.steps]
    assert stages.count("token") == 2 and stages[-4:] == ["token", "auth", "token", "auth"]


async def test_a_deleted_service_account_key_is_explained(pki: Any) -> None:
    from cryptography.hazmat.primitives.asymmetric import rsa

    stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    with (
        oauth_endpoint(pki.server_context()) as (provider, _http),
        xoauth2_server(provider, tls=pki.server_context()) as srv,
    ):
        courier = CourierSettings.model_validate(google(provider, srv.port, key=stranger))
        report = await run_smtp_test(courier)
    assert report.failed_stage == "token"
    assert report.diagnosis is not None
    assert report.diagnosis.code == "oauth_token_rejected"
    assert "new JSON key" in report.diagnosis.fix
    token_step = next(s for s in report.steps if s.stage == "token")
    assert token_step.reply == "400 invalid_grant: Invalid JWT Signature."
    assert srv.handler.xoauth2 == []


async def test_a_missing_sign_in_says_to_run_oauth_login(pki: Any) -> None:
    with (
        oauth_endpoint(pki.server_context()) as (provider, _http),
        xoauth2_server(provider, tls=pki.server_context()) as srv,
    ):
        courier = CourierSettings.model_validate(
            m365(
                provider,
                srv.port,
                flow="device_code",
                tenant_id=None,
                client_secret=None,
                token_url=provider.token_url("consumers"),
            )
        )
        report = await run_smtp_test(courier)
    assert report.failed_stage == "token"
    assert report.diagnosis is not None
    assert report.diagnosis.code == "oauth_token_rejected"
    assert "postroom oauth login" in report.diagnosis.fix
    assert provider.grants() == []


def test_test_smtp_command_prints_the_token_step_and_no_secret(tmp_path: Path, pki: Any) -> None:
    with (
        oauth_endpoint(pki.server_context()) as (provider, _http),
        xoauth2_server(provider, tls=pki.server_context()) as srv,
    ):
        config = tmp_path / "postroom.yaml"
        config.write_text(
            yaml.safe_dump(
                {"dsn": f"sqlite:///{tmp_path / 'db.sqlite'}", "courier": m365(provider, srv.port)}
            )
        )
        env = {"SSL_CERT_FILE": str(pki.ca_file)}
        as_json = postroom(tmp_path, "test-smtp", "--config", str(config), "--json", env=env)
        plain = postroom(tmp_path, "test-smtp", "--config", str(config), env=env)
    assert as_json.returncode == 0, as_json.stderr
    report = json.loads(as_json.stdout)
    stages = [s["stage"] for s in report["steps"]]
    assert stages[stages.index("token") - 1 :][:3] == ["ehlo", "token", "auth"]
    assert plain.returncode == 0, plain.stderr
    assert "token" in plain.stdout and "valid until" in plain.stdout
    printed = as_json.stdout + as_json.stderr + plain.stdout + plain.stderr
    for secret in [*provider.secrets_seen(), CLIENT_SECRET]:
        assert secret not in printed
    assert len(provider.secrets_seen()) == 2
