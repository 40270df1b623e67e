"""The six security modes of the connection URI, against real aiosmtpd servers with real TLS."""

from __future__ import annotations

import asyncio
import contextlib
import email
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from postroom.config.smtp import SmtpSettings
from postroom.config.smtp_uri import parse_smtp_uri
from postroom.diagnosis.classify import diagnose_error
from postroom.errors import DeliveryError
from postroom.models import Diagnosis
from postroom.transports import Envelope, SmtpTransport

from conftest import Pki
from smtp_servers import Server, silent_server, smtp_server

MIME = b"From: a@example.org\r\nTo: b@example.org\r\nSubject: hi\r\n\r\nhello\r\n"


def envelope() -> Envelope:
    return Envelope("m1", "a@example.org", ("b@example.org",), MIME)


async def deliver(uri: str, **smtp: Any) -> None:
    transport = SmtpTransport(parse_smtp_uri(uri), SmtpSettings(timeout=3, **smtp))
    try:
        await transport.send(envelope())
    finally:
        await transport.close()


async def failure(uri: str, **smtp: Any) -> Diagnosis:
    with pytest.raises(DeliveryError) as info:
        await deliver(uri, **smtp)
    return diagnose_error(info.value)


def accepted(server: Server) -> list[str]:
    return [email.message_from_bytes(m.content)["Subject"] for m in server.rec.messages]


# -- the six modes deliver -------------------------------------------------------------


async def test_starttls_verified_delivers_over_tls(pki: Pki) -> None:
    with smtp_server(starttls=pki.server_context(), require_starttls=True) as srv:
        await deliver(f"smtp://localhost:{srv.port}/")
    assert accepted(srv) == ["hi"]
    assert srv.rec.messages[0].tls is True
    assert srv.rec.starttls_commands == 1


async def test_starttls_skip_verify_accepts_an_untrusted_certificate(pki: Pki) -> None:
    ctx = pki.server_context(trusted=False)
    with smtp_server(starttls=ctx, require_starttls=True) as srv:
        await deliver(f"smtp://localhost:{srv.port}/?skip_ssl_verify=true")
    assert srv.rec.messages[0].tls is True


async def test_cleartext_never_sends_starttls_even_when_offered(pki: Pki) -> None:
    with smtp_server(starttls=pki.server_context()) as srv:
        await deliver(f"smtp://localhost:{srv.port}/?disable_starttls=true")
    assert accepted(srv) == ["hi"]
    assert srv.rec.starttls_commands == 0
    assert srv.rec.messages[0].tls is False


async def test_implicit_tls_verified_delivers(pki: Pki) -> None:
    with smtp_server(implicit_tls=pki.server_context()) as srv:
        await deliver(f"smtps://localhost:{srv.port}/")
    assert srv.rec.messages[0].tls is True


async def test_implicit_tls_skip_verify_accepts_an_untrusted_certificate(pki: Pki) -> None:
    with smtp_server(implicit_tls=pki.server_context(trusted=False)) as srv:
        await deliver(f"smtps://localhost:{srv.port}/?skip_ssl_verify=true")
    assert srv.rec.messages[0].tls is True


@pytest.mark.parametrize("scheme", ["smtp", "smtps"])
async def test_server_name_checks_the_certificate_against_that_name(pki: Pki, scheme: str) -> None:
    ctx = pki.server_context("mail.example.test")
    kwargs = (
        {"starttls": ctx, "require_starttls": True} if scheme == "smtp" else {"implicit_tls": ctx}
    )
    with smtp_server(**kwargs) as srv:  # type: ignore[arg-type]
        diagnosis = await failure(f"{scheme}://127.0.0.1:{srv.port}/")
        assert diagnosis.code == "tls_hostname_mismatch"
        assert diagnosis.transient is False
        await deliver(f"{scheme}://127.0.0.1:{srv.port}/?server_name=mail.example.test")
    assert accepted(srv) == ["hi"]


# -- and each fails cleanly where it should --------------------------------------------


@pytest.mark.parametrize("scheme", ["smtp", "smtps"])
async def test_verified_mode_refuses_an_untrusted_certificate(pki: Pki, scheme: str) -> None:
    ctx = pki.server_context(trusted=False)
    kwargs = {"starttls": ctx} if scheme == "smtp" else {"implicit_tls": ctx}
    with smtp_server(**kwargs) as srv:  # type: ignore[arg-type]
        diagnosis = await failure(f"{scheme}://localhost:{srv.port}/")
    assert diagnosis.code == "tls_certificate_untrusted"
    assert diagnosis.stage == "tls"
    assert srv.rec.messages == []


async def test_implicit_tls_against_a_starttls_port_is_the_wrong_mode(pki: Pki) -> None:
    with smtp_server(starttls=pki.server_context()) as srv:
        diagnosis = await failure(f"smtps://localhost:{srv.port}/")
    assert diagnosis.code == "tls_wrong_mode"
    assert "smtps://" in diagnosis.fix


async def test_starttls_required_but_not_offered(pki: Pki) -> None:
    with smtp_server() as srv:
        diagnosis = await failure(f"smtp://localhost:{srv.port}/")
    assert diagnosis.code == "starttls_unavailable"
    assert diagnosis.stage == "starttls"
    assert srv.rec.messages == []


async def test_server_demanding_starttls_from_a_cleartext_uri(pki: Pki) -> None:
    with smtp_server(starttls=pki.server_context(), require_starttls=True) as srv:
        diagnosis = await failure(f"smtp://localhost:{srv.port}/?disable_starttls=true")
    assert diagnosis.code == "starttls_required"
    assert srv.rec.starttls_commands == 0


# -- connection problems ---------------------------------------------------------------


async def test_nothing_listening_is_connection_refused() -> None:
    from smtp_servers import free_port

    diagnosis = await failure(f"smtp://127.0.0.1:{free_port()}/")
    assert diagnosis.code == "connection_refused"
    assert diagnosis.transient is True


async def test_unresolvable_host_is_dns_unresolved() -> None:
    diagnosis = await failure("smtp://no-such-host.invalid:587/")
    assert diagnosis.code == "dns_unresolved"
    assert diagnosis.stage == "dns"


async def test_a_server_that_never_greets_is_named_so_within_one_timeout() -> None:
    # The greeting wait and the probe for implicit TLS share the one `timeout` budget.
    with silent_server() as port, pytest.raises(DeliveryError) as info:
        transport = SmtpTransport(
            parse_smtp_uri(f"smtp://127.0.0.1:{port}/"), SmtpSettings(timeout=2)
        )
        started = time.monotonic()
        await transport.send(envelope())
    took = time.monotonic() - started
    diagnosis = diagnose_error(info.value)
    assert diagnosis.code == "connection_timeout"
    assert diagnosis.transient is True
    assert diagnosis.stage == "connect"
    assert "accepted the connection but never sent its greeting" in diagnosis.cause
    assert "firewall" not in diagnosis.cause
    assert took < 2 + 0.5, f"{took:.2f}s for a 2s timeout"


async def test_the_tls_probe_connects_to_the_checked_address_without_resolving_again(
    pki: Pki, monkeypatch: pytest.MonkeyPatch
) -> None:
    """After a silent greeting, the probe for implicit TLS must reuse the address that was
    resolved and checked; resolving the name again lets DNS point it elsewhere (rebinding)."""
    loop = asyncio.get_running_loop()
    with silent_server() as port, tls_listener(pki, "127.0.0.2", port):
        answers = iter(["127.0.0.1", "127.0.0.2"])  # the second answer would be the rebind
        asked: list[str] = []
        real = loop.getaddrinfo

        async def rebinding(host: Any, *args: Any, **kwargs: Any) -> Any:
            asked.append(str(host))
            return await real(next(answers), *args, **kwargs)

        monkeypatch.setattr(loop, "getaddrinfo", rebinding)
        transport = SmtpTransport(
            parse_smtp_uri(f"smtp://mail.example.org:{port}/"), SmtpSettings(timeout=0.5)
        )
        with pytest.raises(DeliveryError) as info:
            await transport.send(envelope())
        await transport.close()
    assert asked == ["mail.example.org"]
    assert diagnose_error(info.value).code != "tls_wrong_mode"


@contextmanager
def tls_listener(pki: Pki, host: str, port: int) -> Iterator[None]:
    """A port on ``host`` that completes TLS handshakes (and then says nothing)."""
    context = pki.server_context("mail.example.org")
    sock = socket.socket()
    sock.bind((host, port))
    sock.listen(8)
    sock.settimeout(0.1)
    stop = threading.Event()
    kept: list[socket.socket] = []

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = sock.accept()
            except OSError:
                continue
            with contextlib.suppress(OSError):
                conn.settimeout(2)
                kept.append(context.wrap_socket(conn, server_side=True))

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()
        for conn in kept:
            conn.close()
        sock.close()
