"""Mail relayed through the SMTP listener meets the suppression list like any other: a
``normal`` or ``bulk`` message to a suppressed address is refused for good (550, so the
identity system does not retry it forever), and an ``urgent`` one (the login's priority, or
``X-Postroom-Priority``) is delivered."""

from __future__ import annotations

import smtplib
from collections.abc import Callable
from pathlib import Path

import pytest
from test_suppressions_cli import suppress

from postroom.config import Settings

from conftest import Pki
from listener_support import PASSWORD, client_tls, listening, mail, submit, wait_until
from smtp_servers import smtp_server


def test_relayed_mail_to_a_suppressed_address_is_refused_unless_urgent(
    make: Callable[..., Settings], pki: Pki
) -> None:
    normal = [{"username": "keycloak", "password": PASSWORD, "priority": "normal"}]
    with smtp_server() as sink:
        settings = make(sink.port, logins=normal)
        suppress(Path(settings.dsn.removeprefix("sqlite:///")), "user@example.org")
        with listening(settings) as run:
            with pytest.raises(smtplib.SMTPDataError) as refused:
                submit(run.port, mail(), login=("keycloak", PASSWORD), context=client_tls(pki))
            assert refused.value.smtp_code == 550
            assert b"user@example.org is on the suppression list" in refused.value.smtp_error

            urgent = mail(extra={"X-Postroom-Priority": "urgent"})
            submit(run.port, urgent, login=("keycloak", PASSWORD), context=client_tls(pki))
            wait_until(lambda: sink.rec.messages, what="the urgent message's delivery")
    assert [m.rcpt_tos for m in sink.rec.messages] == [["user@example.org"]]
