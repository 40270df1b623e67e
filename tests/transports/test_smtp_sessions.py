"""AUTH, faults and connection reuse, against real aiosmtpd servers."""

from __future__ import annotations

import asyncio
import email
from urllib.parse import quote

import pytest

from postroom.config.smtp import SmtpSettings
from postroom.config.smtp_uri import parse_smtp_uri
from postroom.diagnosis import diagnose_error
from postroom.errors import DeliveryError
from postroom.models import Diagnosis
from postroom.transports import Envelope, Recorder, SmtpTransport

from conftest import Pki
from smtp_servers import smtp_server


def envelope(n: int = 1) -> Envelope:
    mime = f"From: a@example.org\r\nTo: b@example.org\r\nSubject: m{n}\r\n\r\nbody\r\n"
    return Envelope(f"m{n}", "a@example.org", ("b@example.org",), mime.encode())


def transport(uri: str, **smtp: object) -> SmtpTransport:
    return SmtpTransport(parse_smtp_uri(uri), SmtpSettings(timeout=3, **smtp))  # type: ignore[arg-type]


async def failure(uri: str, **smtp: object) -> Diagnosis:
    t = transport(uri, **smtp)
    try:
        with pytest.raises(DeliveryError) as info:
            await t.send(envelope())
    finally:
        await t.close()
    return diagnose_error(info.value)


# -- AUTH ------------------------------------------------------------------------------

AWKWARD_USER = "us@r:/%+ü"
AWKWARD_PASSWORD = "p@ss:/%+wörd ✓"


@pytest.mark.parametrize("mechanism", ["PLAIN", "LOGIN"])
async def test_awkward_credentials_reach_the_server_exactly(pki: Pki, mechanism: str) -> None:
    users = {AWKWARD_USER: AWKWARD_PASSWORD}
    with smtp_server(
        starttls=pki.server_context(), users=users, auth_mechanisms=(mechanism,)
    ) as srv:
        uri = (
            f"smtp://{quote(AWKWARD_USER, safe='')}:{quote(AWKWARD_PASSWORD, safe='')}"
            f"@localhost:{srv.port}/"
        )
        t = transport(uri)
        await t.send(envelope())
        await t.close()
    assert srv.rec.logins == [(mechanism, AWKWARD_USER, AWKWARD_PASSWORD)]
    assert len(srv.rec.messages) == 1


async def test_wrong_password_is_auth_failed_and_permanent(pki: Pki) -> None:
    with smtp_server(starttls=pki.server_context(), users={"alice": "right"}) as srv:
        diagnosis = await failure(f"smtp://alice:wrong@localhost:{srv.port}/")
    assert diagnosis.code == "auth_failed"
    assert diagnosis.transient is False
    assert diagnosis.stage == "auth"
    assert diagnosis.reply is not None and diagnosis.reply.startswith("535")
    assert "wrong" not in repr(diagnosis)
    assert srv.rec.messages == []


async def test_login_without_credentials_is_auth_required(pki: Pki) -> None:
    with smtp_server(starttls=pki.server_context(), users={"alice": "pw"}) as srv:
        diagnosis = await failure(f"smtp://localhost:{srv.port}/")
    assert diagnosis.code == "auth_required"
    assert diagnosis.stage == "mail"


async def test_credentials_are_sent_in_cleartext_only_when_the_uri_says_so(pki: Pki) -> None:
    # A cleartext server that offers AUTH: Postroom logs in because the URI explicitly
    # disabled STARTTLS; in STARTTLS mode the same server is refused before any AUTH.
    with smtp_server(users={"alice": "pw"}) as srv:
        diagnosis = await failure(f"smtp://alice:pw@localhost:{srv.port}/")
        assert diagnosis.code == "starttls_unavailable"
        assert srv.rec.logins == []
        t = transport(f"smtp://alice:pw@localhost:{srv.port}/?disable_starttls=true")
        await t.send(envelope())
        await t.close()
    assert srv.rec.logins == [("PLAIN", "alice", "pw")]


async def test_local_name_is_the_ehlo_name(pki: Pki) -> None:
    with smtp_server(starttls=pki.server_context()) as srv:
        t = transport(f"smtp://localhost:{srv.port}/", local_name="mail.example.org")
        await t.send(envelope())
        await t.close()
    assert set(srv.rec.ehlo_names) == {"mail.example.org"}


async def test_client_certificate_is_presented(pki: Pki, tmp_path: object) -> None:
    import ssl
    from pathlib import Path

    client = pki.ca.issue_cert("postroom-client.example.org")
    cert = Path(str(tmp_path)) / "client.pem"
    key = Path(str(tmp_path)) / "client.key"
    client.cert_chain_pems[0].write_to_path(str(cert))
    client.private_key_pem.write_to_path(str(key))
    ctx = pki.server_context()
    ctx.verify_mode = ssl.CERT_REQUIRED
    pki.ca.configure_trust(ctx)
    with smtp_server(implicit_tls=ctx) as srv:
        diagnosis = await failure(f"smtps://localhost:{srv.port}/")
        assert diagnosis.code != "unknown" or diagnosis.stage in {"tls", "connect", "ehlo"}
        assert srv.rec.messages == []
        t = transport(
            f"smtps://localhost:{srv.port}/", client_cert_path=str(cert), client_key_path=str(key)
        )
        await t.send(envelope())
        await t.close()
    assert len(srv.rec.messages) == 1


# -- faults ----------------------------------------------------------------------------


async def test_421_at_greeting_is_transient_server_unavailable() -> None:
    with smtp_server(greeting_reply="421 4.3.2 Service not available, closing channel") as srv:
        diagnosis = await failure(f"smtp://localhost:{srv.port}/?disable_starttls=true")
    assert diagnosis.code == "server_unavailable"
    assert diagnosis.transient is True
    assert diagnosis.reply == "421 4.3.2 Service not available, closing channel"


async def test_550_on_rcpt_is_recipient_rejected_and_permanent() -> None:
    faults = {"RCPT": lambda rec, n: "550 5.1.1 <b@example.org>: Recipient address rejected"}
    with smtp_server(faults=faults) as srv:
        diagnosis = await failure(f"smtp://localhost:{srv.port}/?disable_starttls=true")
    assert diagnosis.code == "recipient_rejected"
    assert diagnosis.transient is False
    assert diagnosis.stage == "rcpt"


async def test_connection_dropped_during_data_is_transient() -> None:
    with smtp_server(faults={"DATA": lambda rec, n: "DROP"}) as srv:
        diagnosis = await failure(f"smtp://localhost:{srv.port}/?disable_starttls=true")
    assert diagnosis.stage == "data"
    assert diagnosis.code == "server_unavailable"
    assert diagnosis.transient is True
    assert srv.rec.messages == []


# -- connection reuse ------------------------------------------------------------------


async def test_consecutive_messages_share_one_connection(pki: Pki) -> None:
    with smtp_server(starttls=pki.server_context()) as srv:
        t = transport(f"smtp://localhost:{srv.port}/")
        for n in range(5):
            await t.send(envelope(n))
        await t.close()
    assert [email.message_from_bytes(m.content)["Subject"] for m in srv.rec.messages] == [
        f"m{n}" for n in range(5)
    ]
    assert srv.rec.connections == 1
    assert srv.rec.starttls_commands == 1


async def test_a_refused_recipient_does_not_spoil_the_session() -> None:
    faults = {"RCPT": lambda rec, n: "550 5.1.1 no such user" if n == 1 else None}
    with smtp_server(faults=faults) as srv:
        t = transport(f"smtp://localhost:{srv.port}/?disable_starttls=true")
        with pytest.raises(DeliveryError):
            await t.send(envelope(1))
        await t.send(envelope(2))
        await t.close()
    assert len(srv.rec.messages) == 1
    assert srv.rec.connections == 1


async def test_a_session_the_server_closed_is_reopened() -> None:
    from smtp_servers import ServerController  # noqa: F401  (the server's idle timeout closes it)

    with smtp_server(idle_timeout=0.3) as srv:
        t = transport(f"smtp://localhost:{srv.port}/?disable_starttls=true")
        await t.send(envelope(1))
        await asyncio.sleep(0.8)  # the server says 421 and hangs up while we idle
        await t.send(envelope(2))
        await t.close()
    assert len(srv.rec.messages) == 2
    assert srv.rec.connections == 2


async def test_concurrent_sends_use_at_most_pool_size_connections(pki: Pki) -> None:
    with smtp_server(starttls=pki.server_context()) as srv:
        t = SmtpTransport(
            parse_smtp_uri(f"smtp://localhost:{srv.port}/"), SmtpSettings(timeout=3), pool_size=3
        )
        await asyncio.gather(*(t.send(envelope(n)) for n in range(30)))
        await t.close()
    assert len(srv.rec.messages) == 30
    assert 1 <= srv.rec.connections <= 3


async def test_recorder_sees_every_step_of_the_conversation(pki: Pki) -> None:
    recorder = Recorder()
    with smtp_server(starttls=pki.server_context(), users={"u": "p"}) as srv:
        t = SmtpTransport(
            parse_smtp_uri(f"smtp://u:p@localhost:{srv.port}/"),
            SmtpSettings(timeout=3),
            recorder=recorder,
        )
        await t.send(envelope())
        await t.close()
    stages = [s.stage for s in recorder.steps]
    assert stages == [
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
    assert all(s.ok for s in recorder.steps)
    assert "p" not in (recorder.steps[6].detail or "").split()
