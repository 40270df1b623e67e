"""The mail clients identity systems really use, each sending through the listener over real
TLS: Debian's swaks, Django's SMTP email backend (authentik), nodemailer from npm
(SuperTokens) and Jakarta Mail driven with Keycloak's session properties. Each message
arrives at a real SMTP server through the tenant's transport with subject, text, HTML and
non-ASCII text intact."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Callable
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path

import pytest

from postroom.config import Settings

from conftest import Pki
from listener_support import PASSWORD, listening, wait_until
from procs import clean_env
from smtp_servers import Accepted, smtp_server

CLIENTS = Path(__file__).parent.parent / "clients"
SUBJECT = "Vérifiez votre adresse – Zoë"
TEXT = "Bonjour Zoë, cliquez sur le lien pour vérifier : https://id.example.org/v?c=42"
HTML = '<p>Bonjour Zoë, <a href="https://id.example.org/v?c=42">vérifier</a></p>'


def tool(name: str) -> str:
    found = shutil.which(name)
    assert found, f"{name} is missing: run `make pytest` (scripts/ensure-mail-clients.sh)"
    return found


def run(args: list[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        args,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        **kwargs,  # type: ignore[call-overload]
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done


def assert_intact(accepted: Accepted, to: str) -> EmailMessage:
    assert accepted.rcpt_tos == [to]
    parsed = message_from_bytes(accepted.content, policy=policy.default)
    assert isinstance(parsed, EmailMessage)
    assert parsed["Subject"] == SUBJECT
    text = parsed.get_body(("plain",))
    html = parsed.get_body(("html",))
    assert text is not None and html is not None
    assert text.get_content().replace("\r\n", "\n").strip() == TEXT
    assert html.get_content().replace("\r\n", "\n").strip() == HTML
    return parsed


@pytest.mark.parametrize("mode", ["starttls", "implicit"])
def test_swaks(make: Callable[..., Settings], pki: Pki, tmp_path: Path, mode: str) -> None:
    body = EmailMessage()
    body["From"] = "keycloak@example.org"
    body["To"] = "swaks@example.org"
    body["Subject"] = SUBJECT
    body.set_content(TEXT)
    body.add_alternative(HTML, subtype="html")
    data = tmp_path / "mail.eml"
    data.write_bytes(body.as_bytes(policy=policy.SMTP))
    with smtp_server() as sink, listening(make(sink.port)) as running:
        port = running.port if mode == "starttls" else running.tls_port
        tls = ["--tls"] if mode == "starttls" else ["--tls-on-connect"]
        auth = "LOGIN" if mode == "starttls" else "PLAIN"
        # swaks of Debian 12 does not verify certificates: the TLS is real, the trust is not.
        done = run(
            [
                tool("swaks"),
                "--server", f"127.0.0.1:{port}",
                *tls,
                "--auth", auth,
                "--auth-user", "keycloak",
                "--auth-password", PASSWORD,
                "--from", "keycloak@example.org",
                "--to", "swaks@example.org",
                "--data", f"@{data}",
            ]
        )  # fmt: skip
        assert "250 2.0.0 OK: queued as" in done.stdout
        wait_until(lambda: sink.rec.messages, what="swaks's message delivered")
    assert_intact(sink.rec.messages[0], "swaks@example.org")


def test_django_smtp_backend(make: Callable[..., Settings], pki: Pki) -> None:
    script = """
import sys
from django.conf import settings
settings.configure(
    EMAIL_BACKEND="django.core.mail.backends.smtp.EmailBackend",
    EMAIL_HOST="localhost", EMAIL_PORT=int(sys.argv[1]), EMAIL_USE_TLS=True,
    EMAIL_HOST_USER="keycloak", EMAIL_HOST_PASSWORD=sys.argv[2], EMAIL_TIMEOUT=10,
)
from django.core.mail import EmailMultiAlternatives
mail = EmailMultiAlternatives(sys.argv[3], sys.argv[4], "authentik@example.org",
                              ["django@example.org"])
mail.attach_alternative(sys.argv[5], "text/html")
assert mail.send() == 1
"""
    with smtp_server() as sink, listening(make(sink.port)) as running:
        # Django's backend verifies the server with the default context: the test CA.
        run(
            [sys.executable, "-c", script, str(running.port), PASSWORD, SUBJECT, TEXT, HTML],
            env=clean_env(SSL_CERT_FILE=str(pki.ca_file)),
        )
        wait_until(lambda: sink.rec.messages, what="Django's message delivered")
    assert sink.rec.messages[0].mail_from == "authentik@example.org"
    assert_intact(sink.rec.messages[0], "django@example.org")


@pytest.mark.parametrize("secure", [False, True])
def test_nodemailer(make: Callable[..., Settings], pki: Pki, secure: bool) -> None:
    assert (CLIENTS / "node" / "node_modules" / "nodemailer").is_dir(), (
        "nodemailer is missing: run `make pytest` (scripts/ensure-mail-clients.sh)"
    )
    with smtp_server() as sink, listening(make(sink.port)) as running:
        options = {
            "host": "127.0.0.1",
            "port": running.tls_port if secure else running.port,
            "secure": secure,
            "user": "keycloak",
            "pass": PASSWORD,
            "ca": str(pki.ca_file),
            "from": "supertokens@example.org",
            "to": "node@example.org",
            "subject": SUBJECT,
            "text": TEXT,
            "html": HTML,
        }
        done = run([tool("node"), "send.js", json.dumps(options)], cwd=CLIENTS / "node")
        assert "250 2.0.0 OK" in json.loads(done.stdout)["response"]
        wait_until(lambda: sink.rec.messages, what="nodemailer's message delivered")
    assert_intact(sink.rec.messages[0], "node@example.org")


@pytest.mark.parametrize("mode", ["starttls", "ssl"])
def test_jakarta_mail_as_keycloak_sends(make: Callable[..., Settings], pki: Pki, mode: str) -> None:
    jars = [
        Path("/usr/share/java/jakarta-mail.jar"),
        Path("/usr/share/java/jakarta-activation.jar"),
    ]
    for jar in jars:
        assert jar.exists(), f"{jar} is missing: run `make pytest` (ensure-mail-clients.sh)"
    with smtp_server() as sink, listening(make(sink.port)) as running:
        port = running.port if mode == "starttls" else running.tls_port
        done = run(
            [
                tool("java"),
                "-cp", ":".join(str(j) for j in jars),
                str(CLIENTS / "java" / "KeycloakMail.java"),
                "localhost", str(port), mode, "keycloak", PASSWORD, str(pki.ca_file),
                "keycloak@example.org", "java@example.org", SUBJECT, TEXT, HTML,
            ]
        )  # fmt: skip
        assert done.stdout.strip() == "sent"
        wait_until(lambda: sink.rec.messages, what="Jakarta Mail's message delivered")
    parsed = assert_intact(sink.rec.messages[0], "java@example.org")
    assert parsed["From"].addresses[0].display_name == "Keycloak"
