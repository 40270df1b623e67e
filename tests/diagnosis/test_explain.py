"""``explain``: finding the reply in a pasted text, guessing the stage, the JSON answer, and the
RFC 3463 fallback of the classifier for replies no rule names."""

from __future__ import annotations

import pytest

from postroom.diagnosis.explain import explain_text
from postroom.diagnosis.pasted import parse_reply
from postroom.diagnosis.replies import classify_reply
from postroom.errors import InputError


@pytest.mark.parametrize(
    ("text", "code", "enhanced", "reply"),
    [
        (
            "535-5.7.8 Username and Password not accepted. Learn more at\n"
            "535 5.7.8 https://support.google.com/mail/?p=BadCredentials x1 - gsmtp",
            535,
            "5.7.8",
            "535 5.7.8 Username and Password not accepted. Learn more at "
            "https://support.google.com/mail/?p=BadCredentials x1 - gsmtp",
        ),
        (
            "smtplib.SMTPAuthenticationError: (534, b'5.7.9 Application-specific password "
            "required. Learn more at\\n5.7.9 https://support.google.com/mail/?p=x - gsmtp')",
            534,
            "5.7.9",
            "534 5.7.9 Application-specific password required. Learn more at "
            "https://support.google.com/mail/?p=x - gsmtp",
        ),
        (
            'Expected response code 250 but got code "550", with message "550 5.7.60 SMTP; '
            'Client does not have permissions to send as this sender "',
            550,
            "5.7.60",
            "550 5.7.60 SMTP; Client does not have permissions to send as this sender",
        ),
        (
            "host mx.example.org[192.0.2.1] said: 550 5.1.1 <a@example.org>: Recipient "
            "address rejected: User unknown (in reply to RCPT TO command)",
            550,
            "5.1.1",
            "550 5.1.1 <a@example.org>: Recipient address rejected: User unknown (in reply to "
            "RCPT TO command)",
        ),
        ("SMTP Error (535): Authentication failed", 535, None, "535 Authentication failed"),
        (
            "MailKit.Security.AuthenticationException: 5.7.3 Authentication unsuccessful",
            None,
            "5.7.3",
            "MailKit.Security.AuthenticationException: 5.7.3 Authentication unsuccessful",
        ),
    ],
)
def test_parse_reply_finds_code_enhanced_code_and_text(
    text: str, code: int | None, enhanced: str | None, reply: str
) -> None:
    parsed = parse_reply(text)
    assert parsed is not None
    assert (parsed.reply_code, parsed.enhanced, parsed.reply) == (code, enhanced, reply)


@pytest.mark.parametrize(
    "text",
    [
        "connect ETIMEDOUT 52.96.184.50:465",  # a port is not a reply code
        "Connecting to smtp.sendgrid.net:587 failed after 2024-09-16T10:00:00Z",
        "[Errno 111] Connection refused",
        "nothing to see here",
    ],
)
def test_numbers_that_are_not_reply_codes_are_ignored(text: str) -> None:
    parsed = parse_reply(text)
    assert parsed is None or parsed.reply_code is None


@pytest.mark.parametrize(
    ("text", "code", "stage"),
    [
        ("ssl.SSLError: [SSL: WRONG_VERSION_NUMBER] wrong version number", "tls_wrong_mode", "tls"),
        (
            "tls: first record does not look like a TLS handshake",  # Go
            "tls_wrong_mode",
            "tls",
        ),
        (
            "javax.net.ssl.SSLException: Unrecognized SSL message, plaintext connection?",
            "tls_wrong_mode",
            "tls",
        ),
        (
            "[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed: unable to get local "
            "issuer certificate (_ssl.c:1006)",
            "tls_certificate_untrusted",
            "tls",
        ),
        (
            "x509: certificate signed by unknown authority",
            "tls_certificate_untrusted",
            "tls",
        ),
        (
            "[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed: certificate has expired",
            "tls_certificate_untrusted",
            "tls",
        ),
        (
            "x509: certificate is valid for mail.example.org, not 10.0.0.5",
            "tls_hostname_mismatch",
            "tls",
        ),
        ("[SSL: UNSUPPORTED_PROTOCOL] unsupported protocol", "tls_version_unsupported", "tls"),
        ("STARTTLS extension not supported by server.", "starttls_unavailable", "starttls"),
        ("No suitable authentication method found.", "auth_unsupported", "auth"),
        ("socket.gaierror: [Errno -2] Name or service not known", "dns_unresolved", "dns"),
        ("getaddrinfo ENOTFOUND smtp.exmaple.org", "dns_unresolved", "dns"),
        ("ConnectionRefusedError: [Errno 111] Connection refused", "connection_refused", "connect"),
        ("TimeoutError: [Errno 110] Connection timed out", "connection_timeout", "connect"),
        ("Error: Greeting never received", "connection_timeout", "connect"),
        ("Error: Greeting never received smtp.gmail.com:465", "tls_wrong_mode", "connect"),
        (
            "ConnectionResetError: [Errno 104] Connection reset by peer",
            "server_unavailable",
            "connect",
        ),
    ],
)
def test_client_side_errors_are_recognised(text: str, code: str, stage: str) -> None:
    answer = explain_text(text)
    assert answer.diagnosis.code == code
    assert answer.stage == stage
    assert answer.stage_guessed is True


def test_expired_certificate_gets_its_own_words() -> None:
    answer = explain_text("certificate verify failed: certificate has expired (_ssl.c:1006)")
    assert "expired" in answer.diagnosis.cause
    assert "renew" in answer.diagnosis.fix


def test_given_stage_is_used_and_changes_the_meaning() -> None:
    at_mail = explain_text("550 5.1.0 Address rejected", stage="mail")
    at_rcpt = explain_text("550 5.1.0 Address rejected", stage="rcpt")
    assert at_mail.diagnosis.code == "sender_not_authorized"
    assert at_rcpt.diagnosis.code == "recipient_rejected"
    assert at_rcpt.stage == "rcpt"
    assert at_rcpt.stage_guessed is False


def test_json_answer_has_the_fields_the_text_shows() -> None:
    answer = explain_text(
        "535 5.7.8 Username and Password not accepted. For more information, go to "
        "https://support.google.com/mail/?p=BadCredentials - gsmtp"
    )
    assert answer.to_json() == {
        "code": "auth_failed",
        "transient": False,
        "provider": "Gmail",
        "stage": "auth",
        "stage_guessed": True,
        "reply": answer.diagnosis.reply,
        "cause": answer.diagnosis.cause,
        "fix": answer.diagnosis.fix,
    }
    assert answer.diagnosis.reply is not None
    assert answer.diagnosis.reply.startswith("535 5.7.8 Username and Password not accepted")


@pytest.mark.parametrize(
    ("text", "stage"),
    [
        ("454 4.7.1 <you@example.org>: Relay access denied", "rcpt"),
        ("554 5.7.1 <you@example.org>: Relay access denied", "rcpt"),
        ("421 4.3.2 Service shutting down, closing transmission channel", "connect"),
        ("421 mx.example.org Service not available, closing transmission channel", "connect"),
    ],
)
def test_stage_guesses_for_relay_refusals_and_refused_greetings(text: str, stage: str) -> None:
    answer = explain_text(text)
    assert (answer.stage, answer.stage_guessed) == (stage, True)


def test_transient_follows_the_reply_class() -> None:
    assert explain_text("452 4.2.2 Mailbox over quota").diagnosis.transient is True
    assert explain_text("552 5.2.2 Mailbox full").diagnosis.transient is False
    assert explain_text("451 4.3.0 Mail server temporarily rejected message.").diagnosis.transient


def test_a_success_reply_is_not_a_failure() -> None:
    answer = explain_text("250 2.0.0 Ok: queued as 4F1B2")
    assert answer.diagnosis.code == "protocol_error"
    assert "not a failure" in answer.diagnosis.cause


def test_unrecognised_text_is_unknown_and_says_what_to_paste() -> None:
    answer = explain_text("the printer is on fire")
    assert answer.diagnosis.code == "unknown"
    assert answer.diagnosis.transient is False
    assert "three-digit code" in answer.diagnosis.fix


@pytest.mark.parametrize("text", ["", "   ", "\n\t"])
def test_empty_text_is_bad_input(text: str) -> None:
    with pytest.raises(InputError) as info:
        explain_text(text)
    assert info.value.field == "text"


def test_unknown_stage_is_bad_input() -> None:
    with pytest.raises(InputError, match="unknown stage 'smtp'"):
        explain_text("535 nope", stage="smtp")


# -- RFC 3463 when no rule names the reply ------------------------------------------------------


@pytest.mark.parametrize(
    ("reply_code", "text", "stage", "code"),
    [
        (554, "5.7.13 User account is disabled", "mail", "account_suspended"),
        (550, "5.7.26 Unauthenticated email is not accepted", "data", "sender_not_authorized"),
        (550, "5.1.10 Recipient address has null MX", "rcpt", "recipient_rejected"),
        (554, "5.3.4 Object too large for this system", "data", "message_too_large"),
        (452, "4.3.1 Insufficient system resources", "mail", "server_unavailable"),
        (451, "4.4.2 Connection dropped", "data", "server_unavailable"),
        (550, "5.7.1 Delivery not authorized", "mail", "sender_not_authorized"),
        (550, "5.7.1 Delivery not authorized", "rcpt", "recipient_rejected"),
        (554, "5.7.1 Delivery not authorized, message refused", "data", "unknown"),
        (550, "5.6.0 Other media error", "data", "unknown"),
    ],
)
def test_rfc_3463_fallback(reply_code: int, text: str, stage: str, code: str) -> None:
    assert classify_reply(reply_code, text, stage=stage).code == code


def test_a_4xx_reply_never_falls_back_to_a_give_up() -> None:
    # 4.7.13 names a disabled account, but a 4xx reply says "try again later": unknown (retried)
    # unless a rule knows better.
    assert classify_reply(454, "4.7.13 Rejected by local policy", stage="mail").code == "unknown"
    assert classify_reply(451, "4.7.1 Delivery not authorized", stage="rcpt").code == "unknown"


@pytest.mark.parametrize(
    ("reply_code", "text", "stage", "code"),
    [
        (554, "5.4.6 Too many hops", "data", "unknown"),
        (550, "5.7.1 Too many invalid recipients", "rcpt", "recipient_rejected"),
        (452, "Too many recipients received this hour (throttled)", "data", "rate_limited"),
        (421, "4.7.0 Too many connections from 192.0.2.1", "connect", "rate_limited"),
    ],
)
def test_too_many_is_a_rate_only_when_waiting_helps(
    reply_code: int, text: str, stage: str, code: str
) -> None:
    assert classify_reply(reply_code, text, stage=stage).code == code


# The shape of Microsoft Entra ID's token endpoint error answer (Microsoft identity platform
# documentation, "error response" of the OAuth 2.0 client credentials flow); ids shortened.
ENTRA_WRONG_SECRET = (
    '{"error":"invalid_client","error_description":"AADSTS7000215: Invalid client secret '
    "provided. Ensure the secret being sent in the request is the client secret value, not the "
    "client secret ID, for a secret added to app '00000000-0000'.\\r\\nTrace ID: 5d8e\\r\\n"
    'Correlation ID: 77aa\\r\\nTimestamp: 2026-11-21 10:00:00Z","error_codes":[7000215],'
    '"error_uri":"https://login.microsoftonline.com/error?code=7000215"}'
)


def test_a_pasted_entra_id_token_error_is_explained_by_its_aadsts_number() -> None:
    answer = explain_text(ENTRA_WRONG_SECRET)
    assert answer.diagnosis.code == "oauth_token_rejected"
    assert answer.stage == "token"
    assert answer.provider == "microsoft"
    assert "Secret ID" in answer.diagnosis.cause
    assert "client_secret" in answer.diagnosis.fix
    consent = explain_text("AADSTS65001: The user or administrator has not consented to use it")
    assert "consent" in consent.diagnosis.cause.lower()
    assert "SMTP.SendAsApp" in consent.diagnosis.fix


def test_an_aadsts_number_postroom_does_not_know_is_not_guessed_at() -> None:
    answer = explain_text("AADSTS123456789: Something new went wrong")
    assert answer.diagnosis.code != "oauth_token_rejected"
