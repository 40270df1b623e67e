"""Token-endpoint refusals and XOAUTH2 refusals explained: the provider's error code and
description as the reply, ``oauth_token_rejected`` with a fix in plain words, and the
temporary cases retried."""

from __future__ import annotations

import pytest

from postroom.diagnosis.classify import diagnose_error
from postroom.errors import OAuthError


def refused(
    status: int, error: str | None, description: str | None, *, provider: str = "microsoft"
) -> OAuthError:
    reply = f"{error}: {description}" if error and description else (error or "")
    host = {"microsoft": "login.microsoftonline.com", "google": "oauth2.googleapis.com"}
    return OAuthError(
        "refused",
        stage="token",
        reply_code=status,
        reply_text=reply,
        error=error,
        description=description,
        provider=provider,
        endpoint=host.get(provider, "auth.example.org"),
    )


@pytest.mark.parametrize(
    ("status", "error", "description", "in_cause", "in_fix"),
    [
        (
            401,
            "invalid_client",
            "AADSTS7000215: Invalid client secret provided.",
            "Secret ID",
            "Value",
        ),
        (
            401,
            "invalid_client",
            "AADSTS7000222: The provided client secret keys are expired.",
            "expired",
            "expiry date",
        ),
        (
            400,
            "invalid_grant",
            "AADSTS65001: The user or administrator has not consented.",
            "Consent is missing",
            "Grant admin consent",
        ),
        (
            400,
            "unauthorized_client",
            "AADSTS700016: Application with identifier 'x' was not found.",
            "client_id is wrong",
            "Application (client) ID",
        ),
        (
            400,
            "invalid_request",
            "AADSTS90002: Tenant 'x' not found.",
            "no tenant",
            "Directory (tenant) ID",
        ),
        (
            400,
            "invalid_grant",
            "AADSTS700082: The refresh token has expired due to inactivity.",
            "expired",
            "postroom oauth login",
        ),
        (
            400,
            "invalid_request",
            "AADSTS9002331: Application is configured for use by Microsoft Account users only.",
            "personal Microsoft accounts",
            "consumers",
        ),
        (400, "consent_required", None, "Consent is missing", "admin-consent"),
        (401, "invalid_client", None, "client_id or the client_secret is wrong", "client_secret"),
    ],
)
def test_microsoft_and_rfc6749_errors(
    status: int, error: str, description: str | None, in_cause: str, in_fix: str
) -> None:
    diagnosis = diagnose_error(refused(status, error, description))
    assert diagnosis.code == "oauth_token_rejected"
    assert diagnosis.transient is False
    assert diagnosis.stage == "token"
    assert diagnosis.reply is not None and diagnosis.reply.startswith(f"{status} {error}")
    if description:
        assert description in diagnosis.reply
    assert diagnosis.cause.startswith("Microsoft Entra ID (login.microsoftonline.com) refused")
    assert in_cause in diagnosis.cause
    assert in_fix in diagnosis.fix


@pytest.mark.parametrize(
    ("error", "description", "in_fix"),
    [
        ("invalid_grant", "Invalid JWT Signature.", "new JSON key"),
        ("invalid_grant", "Invalid JWT: Token must be a short-lived token (60 minutes)", "clock"),
        ("invalid_grant", "Invalid email or User ID", "oauth2.subject"),
        (
            "unauthorized_client",
            "Client is unauthorized to retrieve access tokens using this method, or client not "
            "authorized for any of the scopes requested.",
            "Domain-wide delegation",
        ),
    ],
)
def test_google_errors(error: str, description: str, in_fix: str) -> None:
    diagnosis = diagnose_error(refused(400, error, description, provider="google"))
    assert diagnosis.code == "oauth_token_rejected"
    assert diagnosis.cause.startswith("Google (oauth2.googleapis.com) refused")
    assert in_fix in diagnosis.fix


def test_throttled_or_failing_endpoints_are_retried() -> None:
    throttled = diagnose_error(refused(429, None, None))
    assert (throttled.code, throttled.transient) == ("rate_limited", True)
    failing = diagnose_error(refused(503, "temporarily_unavailable", "try later"))
    assert failing.transient is True
    broken = diagnose_error(refused(500, None, None))
    assert (broken.code, broken.transient) == ("server_unavailable", True)


def test_a_wrong_token_url_is_named() -> None:
    diagnosis = diagnose_error(refused(404, None, None, provider="generic"))
    assert diagnosis.code == "oauth_token_rejected"
    assert "token_url" in diagnosis.fix


@pytest.mark.parametrize(
    ("reply_code", "text", "provider", "code", "in_fix"),
    [
        (
            535,
            "5.7.3 Authentication unsuccessful [AM0PR01CA0001.outlook.com]",
            "microsoft",
            "oauth_token_rejected",
            "SMTP.SendAsApp",
        ),
        (
            535,
            "5.7.8 Username and Password not accepted - gsmtp",
            "google",
            "oauth_token_rejected",
            "domain-wide delegation",
        ),
        (
            535,
            "5.7.8 Authentication credentials invalid",
            "generic",
            "oauth_token_rejected",
            "oauth2",
        ),
        (
            535,
            "5.7.139 Authentication unsuccessful, SmtpClientAuthentication is disabled for the "
            "Tenant.",
            "microsoft",
            "auth_disabled",
            "SmtpClientAuthenticationDisabled",
        ),
        (
            454,
            "4.7.0 Too many login attempts, please try again later. - gsmtp",
            "google",
            "rate_limited",
            "",
        ),
    ],
)
def test_the_server_refusing_a_token(
    reply_code: int, text: str, provider: str, code: str, in_fix: str
) -> None:
    exc = OAuthError(
        "refused", stage="auth", reply_code=reply_code, reply_text=text, provider=provider
    )
    diagnosis = diagnose_error(exc)
    assert diagnosis.code == code
    assert diagnosis.stage == "auth"
    assert in_fix in diagnosis.fix
