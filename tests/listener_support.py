"""The SMTP listener under test: the whole app (API, worker, listener) on real sockets, a
certificate from the test CA, and the tenant's mail delivered to a real aiosmtpd server. Its
fixture ``make`` is a plugin of tests/conftest.py."""

from __future__ import annotations

import smtplib
import socket
import ssl
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from email import policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import httpx
import pytest

from postroom.config import Settings
from postroom.intake.listener_sockets import bind_sockets

from conftest import Pki
from web_support import AUTH, serving

PASSWORD = "a-chosen-password-for-keycloak"


def non_loopback_address() -> str:
    """An address of this machine that is not loopback (the route out of it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.connect(("192.0.2.1", 9))  # no packet is sent: this only picks the route
        address = str(probe.getsockname()[0])
    assert not address.startswith("127."), "this machine has no address beyond loopback"
    return address


def write_certificate(pki: Pki, directory: Path) -> tuple[Path, Path]:
    """A server certificate for localhost, 127.0.0.1 and the non-loopback address."""
    cert = pki.ca.issue_cert("localhost", "127.0.0.1", non_loopback_address())
    cert_path, key_path = directory / "smtp.pem", directory / "smtp.key"
    cert.cert_chain_pems[0].write_to_path(str(cert_path))
    cert.private_key_pem.write_to_path(str(key_path))
    return cert_path, key_path


def listener_config(
    pki: Pki, directory: Path, *, host: str = "0.0.0.0", **smtp: Any
) -> dict[str, Any]:
    """``listener.smtp`` on free ports, STARTTLS and implicit TLS."""
    cert_path, key_path = write_certificate(pki, directory)
    return {
        "smtp": {
            "host": host,
            "port": 0,
            "tls_port": 0,
            "cert_path": str(cert_path),
            "key_path": str(key_path),
            **smtp,
        }
    }


def client_tls(pki: Pki) -> ssl.SSLContext:
    """What a client that trusts the test CA uses."""
    context = ssl.create_default_context(cafile=str(pki.ca_file))
    return context


@dataclass
class Running:
    url: str
    port: int
    tls_port: int | None
    settings: Settings


@contextmanager
def listening(settings: Settings, *, dev: bool = False, **kwargs: Any) -> Iterator[Running]:
    """Serve the app with its SMTP listener until the block ends."""
    sockets = bind_sockets(settings, dev=dev)
    plain = next(s.port for s in sockets if not s.implicit_tls)
    implicit = next((s.port for s in sockets if s.implicit_tls), None)
    with serving(settings, smtp_sockets=sockets, dev=dev, **kwargs) as url:
        yield Running(url, plain, implicit, settings)


def wait_until(condition: Callable[[], object], *, timeout: float = 20, what: str = "") -> None:
    """Poll ``condition`` until it is true; fail naming ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what or condition}"
        time.sleep(0.02)


def submit(
    port: int,
    message: bytes | str,
    *,
    sender: str = "keycloak@example.org",
    to: tuple[str, ...] = ("user@example.org",),
    login: tuple[str, str] | None = None,
    context: ssl.SSLContext | None = None,
    host: str = "127.0.0.1",
) -> dict[str, tuple[int, bytes]]:
    """Send with smtplib (STARTTLS when ``context`` is given); return refused recipients."""
    with smtplib.SMTP(host, port, timeout=10) as client:
        if context is not None:
            client.starttls(context=context)
        if login is not None:
            client.login(*login)
        return client.sendmail(sender, list(to), message)


def mail(subject: str = "Votre code: 123456 ✓", *, extra: dict[str, str] | None = None) -> bytes:
    """A Keycloak-like email: text and HTML alternatives, non-ASCII, in SMTP line endings."""
    message = EmailMessage()
    message["From"] = "Keycloak <keycloak@example.org>"
    message["To"] = "user@example.org"
    message["Subject"] = subject
    for name, value in (extra or {}).items():
        message[name] = value
    message.set_content("Bonjour Zoë, votre code est 123456.\n")
    message.add_alternative("<p>Bonjour Zoë, votre code est <b>123456</b>.</p>", subtype="html")
    return message.as_bytes(policy=policy.SMTP)


def refusals(url: str) -> list[dict[str, Any]]:
    """The refusal log, newest first, through the admin API."""
    answer = httpx.get(f"{url}/admin/listener/refusals", headers=AUTH, timeout=10)
    assert answer.status_code == 200, answer.text
    return list(answer.json()["refusals"])


@pytest.fixture
def make(
    settings_with: Callable[..., Settings], pki: Pki, tmp_path: Path
) -> Callable[..., Settings]:
    """``make(sink_port, **courier_listener)``: settings whose default tenant relays to the
    SMTP server on ``sink_port`` (or is ``courier=`` when given) and has the login keycloak."""

    def build(
        sink_port: int | None = None,
        *,
        courier: dict[str, Any] | None = None,
        smtp: dict[str, Any] | None = None,
        **courier_listener: Any,
    ) -> Settings:
        listener: dict[str, Any] = {"logins": [{"username": "keycloak", "password": PASSWORD}]}
        listener.update(courier_listener)
        section = dict(courier or {})
        if sink_port is not None:
            section["smtp"] = {
                "connection_uri": f"smtp://127.0.0.1:{sink_port}/?disable_starttls=true",
                "from_address": "no-reply@example.org",
            }
        section["listener"] = listener
        return settings_with(
            listener=listener_config(pki, tmp_path, **(smtp or {})), courier=section
        )

    return build
