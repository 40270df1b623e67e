"""Mail handed to the SMTP listener is DKIM-signed once, when it is accepted: sent with smtplib,
it reaches a real aiosmtpd server with a signature dkimpy verifies, the same bytes for every
recipient and on a retry; mail from another domain is relayed unsigned."""

from __future__ import annotations

import smtplib
from collections.abc import Callable
from email import message_from_bytes, policy
from pathlib import Path
from typing import Any

import dkim
import httpx
import pytest
from test_dkim_signing import ALGORITHMS, FIRST_DATA_REFUSED, dns_serving, key_file

from postroom.config import Settings

from conftest import Pki
from listener_support import PASSWORD, client_tls, listening, mail, refusals, submit, wait_until
from smtp_servers import smtp_server
from web_support import AUTH

LOGIN = ("keycloak", PASSWORD)


def signing(path: Path, algorithm: str) -> dict[str, Any]:
    return {
        "dkim": {
            "domain": "example.org",
            "selector": "mail",
            "algorithm": algorithm,
            "private_key_path": str(path),
        }
    }


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_listener_mail_arrives_signed_once_and_a_retry_sends_the_same_bytes(
    algorithm: str, make: Callable[..., Settings], pki: Pki, tmp_path: Path
) -> None:
    path, record = key_file(tmp_path, algorithm)
    verify = dns_serving(record)
    with smtp_server(faults=FIRST_DATA_REFUSED) as sink:
        settings = make(sink.port, courier=signing(path, algorithm))
        with listening(settings) as run:
            to = ("ann@example.net", "bob@example.net")
            submit(run.port, mail(), to=to, login=LOGIN, context=client_tls(pki))
            wait_until(lambda: len(sink.rec.messages) == 2, what="both deliveries")
    assert sink.handler.calls["DATA"] == 3  # one refused, then sent again
    first, second = (accepted.content for accepted in sink.rec.messages)
    assert first == second  # one signature for both recipients, the retry included
    assert first.count(b"DKIM-Signature:") == 1  # signed at acceptance only, not again
    assert first.startswith(b"DKIM-Signature: v=1; a=" + algorithm.encode())
    assert dkim.verify(first, dnsfunc=verify), first[:400]
    parsed = message_from_bytes(first, policy=policy.default)
    assert parsed["Subject"] == "Votre code: 123456 ✓"
    assert not dkim.verify(first.replace(b"123456", b"654321"), dnsfunc=verify)


def test_listener_mail_from_another_domain_is_relayed_unsigned(
    make: Callable[..., Settings], pki: Pki, tmp_path: Path
) -> None:
    path, _ = key_file(tmp_path, "ed25519-sha256")
    foreign = mail().replace(b"keycloak@example.org", b"keycloak@example.net")
    with smtp_server() as sink:
        settings = make(sink.port, courier=signing(path, "ed25519-sha256"))
        with listening(settings) as run:
            submit(run.port, foreign, login=LOGIN, context=client_tls(pki))
            wait_until(lambda: sink.rec.messages, what="the delivery")
    [accepted] = sink.rec.messages
    assert b"DKIM-Signature" not in accepted.content
    assert b"From: Keycloak <keycloak@example.net>" in accepted.content


def test_a_key_that_cannot_be_loaded_is_a_451_and_nothing_is_stored(
    make: Callable[..., Settings], pki: Pki, tmp_path: Path
) -> None:
    path, _ = key_file(tmp_path, "ed25519-sha256")
    with smtp_server() as sink:
        settings = make(sink.port, courier=signing(path, "ed25519-sha256"))
        with listening(settings) as run:
            path.unlink()  # the key file removed while Postroom runs
            with pytest.raises(smtplib.SMTPDataError) as refused:
                submit(run.port, mail(), login=LOGIN, context=client_tls(pki))
            assert refused.value.smtp_code == 451
            assert b"DKIM key cannot be loaded" in refused.value.smtp_error
            wait_until(lambda: refusals(run.url), what="the refusal log")
            assert "private_key_path" in refusals(run.url)[0]["reason"]
            stored = httpx.get(f"{run.url}/admin/courier/messages", headers=AUTH, timeout=10)
            assert stored.json() == []  # the client keeps it and sends it again later
    assert sink.rec.messages == []
