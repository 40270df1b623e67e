"""HTTP failures in plain words: which statuses retry, and what the fix says per provider."""

from __future__ import annotations

import pytest

from postroom.diagnosis import diagnose_error
from postroom.errors import HttpDeliveryError
from postroom.models import Diagnosis


def answered(status: int, url: str = "https://api.example.org/send", body: str = "no") -> Diagnosis:
    return diagnose_error(
        HttpDeliveryError(
            f"{url} answered {status}", stage="request", reply_code=status, reply_text=body
        )
    )


@pytest.mark.parametrize(
    ("status", "transient"),
    [
        (429, True),
        (500, True),
        (502, True),
        (503, True),
        (504, True),
        (400, False),
        (401, False),
        (403, False),
        (404, False),
        (408, False),
        (413, False),
        (422, False),
        (301, False),
        (307, False),
    ],
)
def test_429_and_5xx_retry_and_the_rest_do_not(status: int, transient: bool) -> None:
    diagnosis = answered(status)
    assert diagnosis.code == "http_error"
    assert diagnosis.transient is transient
    assert diagnosis.reply == f"{status} no"
    assert diagnosis.stage == "request"


@pytest.mark.parametrize(
    ("url", "words"),
    [
        ("https://api.sendgrid.com/v3/mail/send", "Bearer <API key>"),
        ("https://api.eu.mailgun.net/v3/mg.example.org/messages", "user: api"),
        ("https://api.postmarkapp.com/email", "Server API token"),
        ("https://api.example.org/send", "request_config.auth"),
    ],
)
def test_a_401_fix_says_what_the_provider_expects(url: str, words: str) -> None:
    diagnosis = answered(401, url)
    assert words in diagnosis.fix


def test_a_mailgun_404_points_to_the_domain_and_region() -> None:
    diagnosis = answered(404, "https://api.mailgun.net/v3/mg.example.org/messages")
    assert "api.eu.mailgun.net" in diagnosis.fix
    assert "Mailgun" in diagnosis.cause
