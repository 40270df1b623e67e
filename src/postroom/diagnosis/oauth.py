"""OAuth2 failures explained: the token endpoint's answer, or the SMTP server refusing a token.

A token endpoint says what is wrong in its ``error`` (RFC 6749: ``invalid_client``,
``invalid_grant``, ``unauthorized_client``, ``invalid_scope``, ``consent_required``...) and
``error_description``. Microsoft Entra ID puts an ``AADSTS`` number in the description that
pins the problem down (``AADSTS7000215``: the secret is wrong; ``AADSTS7000222``: it expired;
``AADSTS65001``: consent is missing); Google's descriptions name theirs in words. Each becomes
``oauth_token_rejected`` with the provider's code and description as the reply and a fix in
plain words; a throttled or failing endpoint (429, 5xx) is retried instead.
"""

from __future__ import annotations

import re
import socket
import ssl
from dataclasses import dataclass
from typing import Any

from postroom.codes import DiagnosisCode
from postroom.diagnosis.catalogue import HOSTNAME_MISMATCH, diagnose
from postroom.diagnosis.replies import classify_reply
from postroom.errors import OAuthError, exception_chain
from postroom.models import Diagnosis

__all__ = ["diagnose_oauth"]


@dataclass(frozen=True, slots=True)
class _Words:
    cause: str
    fix: str


_ENTRA_PORTAL = "the Microsoft Entra admin center (entra.microsoft.com) > App registrations"
_NEW_SECRET = (
    f"In {_ENTRA_PORTAL} > your app > Certificates & secrets, create a new client secret and put "
    "its Value (shown only once, not the Secret ID) into oauth2.client_secret."
)
_LOGIN_AGAIN = "Run `postroom oauth login --tenant <tenant>` again and sign in as the mailbox."

# Microsoft Entra ID's AADSTS numbers, in our own words.
_AADSTS: dict[str, _Words] = {
    "7000215": _Words(
        "The client secret is not this app's: often the Secret ID was copied instead of the "
        "secret's Value.",
        _NEW_SECRET,
    ),
    "7000222": _Words(
        "The client secret has expired (secrets live at most two years).",
        _NEW_SECRET + " Note the new expiry date so it can be renewed in time.",
    ),
    "700016": _Words(
        "No application with this client_id exists in this tenant: the client_id is wrong, or "
        "the app is registered in another tenant.",
        f"Copy the Application (client) ID and the Directory (tenant) ID from {_ENTRA_PORTAL} > "
        "your app > Overview into oauth2.client_id and oauth2.tenant_id.",
    ),
    "90002": _Words(
        "There is no tenant by this tenant_id.",
        "Copy the Directory (tenant) ID (a GUID) from the app registration's Overview page into "
        "oauth2.tenant_id.",
    ),
    "900023": _Words(
        "The tenant_id is not a valid Microsoft Entra tenant identifier.",
        "Copy the Directory (tenant) ID (a GUID) from the app registration's Overview page into "
        "oauth2.tenant_id.",
    ),
    "65001": _Words(
        "Consent is missing: nobody has granted the app the permission it asks for.",
        f"In {_ENTRA_PORTAL} > your app > API permissions, add Office 365 Exchange Online > "
        "Application permissions > SMTP.SendAsApp and press 'Grant admin consent' (for a "
        "device-code sign-in: the user, or an admin, must accept SMTP.Send when signing in).",
    ),
    "70011": _Words(
        "The scope asked for is not valid here.",
        "Leave oauth2.scope out: client credentials need https://outlook.office365.com/.default, "
        "a device-code sign-in https://outlook.office.com/SMTP.Send offline_access.",
    ),
    "1002012": _Words(
        "The scope asked for is not valid here.",
        "Leave oauth2.scope out: client credentials need https://outlook.office365.com/.default, "
        "a device-code sign-in https://outlook.office.com/SMTP.Send offline_access.",
    ),
    "500011": _Words(
        "There is no Exchange Online in this tenant for the scope asked for.",
        "Check that the tenant has Exchange Online mailboxes and that oauth2.scope is left out "
        "(https://outlook.office365.com/.default).",
    ),
    "7000218": _Words(
        "The app registration is a confidential client, so Microsoft wants a client secret with "
        "the request, and none was given.",
        f"For a device-code sign-in, turn on 'Allow public client flows' in {_ENTRA_PORTAL} > "
        "your app > Authentication, or add oauth2.client_secret.",
    ),
    "700082": _Words(
        "The refresh token has expired: the mailbox's sign-in was not used for too long.",
        _LOGIN_AGAIN,
    ),
    "70008": _Words(
        "The refresh token has expired or was revoked.",
        _LOGIN_AGAIN,
    ),
    "50173": _Words(
        "The refresh token was revoked, usually because the account's password changed.",
        _LOGIN_AGAIN,
    ),
    "700084": _Words(
        "The refresh token has reached its maximum lifetime.",
        _LOGIN_AGAIN,
    ),
    "9002331": _Words(
        "The app accepts only personal Microsoft accounts, which sign in through the 'consumers' "
        "endpoint.",
        "Set oauth2.tenant_id to consumers and run `postroom oauth login` again.",
    ),
    "53003": _Words(
        "A Conditional Access policy of the tenant blocked the token request.",
        "Ask a Microsoft Entra admin to exclude the app (or this sign-in) from the policy, or to "
        "allow it from the network Postroom runs in.",
    ),
}

# Google's token endpoint names its problems in the description.
_GOOGLE: tuple[tuple[str, _Words], ...] = (
    (
        "invalid jwt signature",
        _Words(
            "The service account's signature does not verify: the key was deleted or does not "
            "belong to this service account.",
            "Create a new JSON key for the service account (IAM & Admin > Service accounts > "
            "Keys) and configure it as oauth2.service_account_file or service_account_json.",
        ),
    ),
    (
        "short-lived token",
        _Words(
            "The assertion's times (iat, exp) are off: the clock of the machine running Postroom "
            "is wrong.",
            "Synchronise the machine's clock (NTP); Google accepts assertions only within a few "
            "minutes of its own time.",
        ),
    ),
    (
        "invalid email or user id",
        _Words(
            "No Workspace user goes by the subject the token should act as.",
            "Set oauth2.subject (or the URI's user) to an existing user of the Workspace domain "
            "whose mailbox sends the mail.",
        ),
    ),
    (
        "account not found",
        _Words(
            "No Workspace user goes by the subject the token should act as.",
            "Set oauth2.subject (or the URI's user) to an existing user of the Workspace domain "
            "whose mailbox sends the mail.",
        ),
    ),
    (
        "unauthorized to retrieve access tokens",
        _Words(
            "The service account may not act as the user: domain-wide delegation is not set up "
            "for its client ID with the https://mail.google.com/ scope.",
            "In the Google Admin console > Security > Access and data control > API controls > "
            "Domain-wide delegation, add the service account's client ID (a number) with the "
            "scope https://mail.google.com/; changes can take a few minutes.",
        ),
    ),
    (
        "client was disabled",
        _Words(
            "The service account is disabled.",
            "Enable the service account in IAM & Admin > Service accounts, or create a new one.",
        ),
    ),
)

# RFC 6749 (and OpenID Connect) error codes, when nothing more specific is known.
_BY_ERROR: dict[str, _Words] = {
    "invalid_client": _Words(
        "The client's credentials are not accepted: the client_id or the client_secret is "
        "wrong, or the secret has expired.",
        "Check oauth2.client_id and oauth2.client_secret against the provider's app "
        "registration; create a new secret if in doubt.",
    ),
    "invalid_grant": _Words(
        "The grant is not accepted: the refresh token or the signed assertion is invalid, "
        "expired or revoked.",
        "For a device-code sign-in run `postroom oauth login` again; for a service account "
        "check its key and the machine's clock.",
    ),
    "unauthorized_client": _Words(
        "The app is not allowed to get tokens this way (this grant type, or for this user).",
        "Allow the grant in the provider's app registration (client credentials, public client "
        "flows, or Google's domain-wide delegation).",
    ),
    "invalid_scope": _Words(
        "The scope asked for is not accepted.",
        "Leave oauth2.scope out for microsoft and google (Postroom asks for the SMTP scope), or "
        "set the scope the provider documents for SMTP.",
    ),
    "consent_required": _Words(
        "Consent is missing: nobody has granted the app the permission it asks for.",
        "Have an administrator grant (admin-consent) the app's SMTP permission, then try again.",
    ),
    "interaction_required": _Words(
        "The provider wants a person to sign in again (a policy, MFA or consent).",
        "Run `postroom oauth login` again, or ask an administrator about the sign-in policy.",
    ),
    "access_denied": _Words(
        "The sign-in was declined, or the provider denied the request.",
        "Run `postroom oauth login` again and accept the permissions it asks for.",
    ),
    "authorization_declined": _Words(
        "The person signing in declined the request.",
        "Run `postroom oauth login` again and accept the permissions it asks for.",
    ),
    "expired_token": _Words(
        "The sign-in code expired before anyone used it.",
        "Run `postroom oauth login` again and enter the code within 15 minutes.",
    ),
    "login_required": _Words(
        "Nobody has signed in for this tenant yet, so there is no refresh token to get access "
        "tokens with.",
        "Run `postroom oauth login --tenant <tenant>` once and sign in as the mailbox.",
    ),
    "invalid_request": _Words(
        "The request was refused as malformed; a required setting is probably missing or wrong.",
        "Compare the oauth2 settings with the provider's documentation (tenant_id, client_id, "
        "token_url, scope).",
    ),
}

_AADSTS_CODE = re.compile(r"\bAADSTS(\d+)\b")

_SERVER_WORDS: dict[str, _Words] = {
    "microsoft": _Words(
        "Microsoft 365 refused the OAuth2 access token: the app may lack the SMTP.SendAsApp "
        "permission (with admin consent), its service principal may not be registered in "
        "Exchange Online, or it has no rights on this mailbox.",
        "Grant SMTP.SendAsApp with admin consent; in Exchange Online PowerShell run "
        "New-ServicePrincipal for the app, then Add-MailboxPermission -AccessRights FullAccess "
        "for it on the mailbox named as the URI's user.",
    ),
    "google": _Words(
        "Google refused the OAuth2 access token: the service account cannot act for this "
        "mailbox, or the token lacks the https://mail.google.com/ scope.",
        "Check domain-wide delegation (the client ID with scope https://mail.google.com/) and "
        "that the URI's user (or oauth2.subject) is the Workspace user the token acts as.",
    ),
}

_AUTH_CODES = {"auth_failed", "app_password_required", "oauth_token_rejected"}


def diagnose_oauth(exc: OAuthError) -> Diagnosis | None:
    """Explain an OAuth2 failure; None when it carries no OAuth2 evidence (for instance the
    connection dropped during AUTH), so the general rules apply."""
    if exc.stage == "auth":
        return _refused_by_server(exc)
    if exc.hint:
        return _guarded(exc)
    if exc.reply_code is None and exc.error is None:
        return _unreachable(exc)
    return _endpoint_refused(exc)


def _refused_by_server(exc: OAuthError) -> Diagnosis | None:
    if exc.reply_code is None:
        return None
    found = classify_reply(exc.reply_code, exc.reply_text or "", stage="auth", xoauth2=True)
    common: dict[str, Any] = {"stage": "auth", "reply": exc.reply, "reply_code": exc.reply_code}
    if found.code in _AUTH_CODES:
        words = _SERVER_WORDS.get(exc.provider or "")
        if found.code == "oauth_token_rejected" and found.cause is not None:
            return diagnose("oauth_token_rejected", **common, cause=found.cause, fix=found.fix)
        return diagnose(
            "oauth_token_rejected",
            **common,
            cause=words.cause if words else None,
            fix=words.fix if words else None,
        )
    if found.code == "auth_disabled":
        return diagnose(
            "auth_disabled",
            **common,
            cause="Microsoft 365 refused the login because SMTP AUTH (which OAuth2 logins use "
            "too) is switched off for the tenant or this mailbox.",
            fix="In Exchange Online PowerShell run Set-CASMailbox -Identity <mailbox> "
            "-SmtpClientAuthenticationDisabled $false (or tick Authenticated SMTP for the "
            "mailbox in the Microsoft 365 admin center).",
        )
    return diagnose(found.code, **common, cause=found.cause, fix=found.fix)


def _who(exc: OAuthError) -> str:
    names = {"microsoft": "Microsoft Entra ID", "google": "Google"}
    name = names.get(exc.provider or "")
    where = f" ({exc.endpoint})" if exc.endpoint else ""
    return f"{name}{where}" if name else f"The token endpoint{where}"


def _endpoint_refused(exc: OAuthError) -> Diagnosis:
    status = exc.reply_code
    common: dict[str, Any] = {"stage": "token", "reply": exc.reply, "reply_code": status}
    if status == 429 or exc.error == "temporarily_unavailable" or exc.error == "slow_down":
        return diagnose(
            "rate_limited",
            **common,
            cause=f"{_who(exc)} throttled the token request.",
            fix="Nothing to do if it passes; Postroom tries again later.",
        )
    if status is not None and status >= 500:
        return diagnose(
            "server_unavailable",
            **common,
            cause=f"{_who(exc)} failed to answer the token request ({status}); the provider "
            "has a temporary problem.",
            fix="Nothing to do if it passes; Postroom tries again later.",
        )
    words = _words_for(exc)
    cause = f"{_who(exc)} refused to issue an access token. {words.cause}"
    return diagnose("oauth_token_rejected", **common, cause=cause, fix=words.fix)


def explain_aadsts(text: str, *, stage: str = "token") -> Diagnosis | None:
    """A pasted Microsoft Entra ID token error (``AADSTS7000215: Invalid client secret ...``)
    explained like the worker's own token failures; None when the text holds no AADSTS
    number Postroom knows."""
    match = _AADSTS_CODE.search(text)
    if match is None or match.group(1) not in _AADSTS:
        return None
    words = _AADSTS[match.group(1)]
    return diagnose(
        "oauth_token_rejected",
        stage=stage,
        cause=f"Microsoft Entra ID refused to issue an access token (AADSTS{match.group(1)}). "
        f"{words.cause}",
        fix=words.fix,
    )


def _words_for(exc: OAuthError) -> _Words:
    text = f"{exc.description or ''} {exc.reply_text or ''}"
    match = _AADSTS_CODE.search(text)
    if match and match.group(1) in _AADSTS:
        return _AADSTS[match.group(1)]
    low = text.lower()
    if exc.provider == "google" or "google" in (exc.endpoint or ""):
        for needle, words in _GOOGLE:
            if needle in low:
                return words
    if exc.error in _BY_ERROR:
        return _BY_ERROR[exc.error]
    if exc.reply_code in (404, 405):
        return _Words(
            "The token URL does not exist there (the answer is not a token endpoint's).",
            "Check oauth2.token_url (or, for Google, the key file's token_uri).",
        )
    return _Words(
        "The answer does not say why.",
        "Check the oauth2 settings against the provider's app registration.",
    )


def _guarded(exc: OAuthError) -> Diagnosis:
    assert exc.hint is not None
    where = exc.endpoint or "the token endpoint"
    if exc.hint == "dns_unresolved":
        return diagnose(
            "dns_unresolved",
            stage="token",
            cause=f"The OAuth2 token endpoint's host {where} does not resolve.",
            fix="Check oauth2.token_url (or tenant_id) for typos, and that DNS works on the "
            "machine running Postroom.",
        )
    return diagnose(exc.hint, stage="token", reply=exc.reply)


def _unreachable(exc: OAuthError) -> Diagnosis:
    where = exc.endpoint or "the token endpoint"
    code: DiagnosisCode = "server_unavailable"
    for err in exception_chain(exc):
        if isinstance(err, ssl.SSLCertVerificationError):
            mismatch = err.verify_code in HOSTNAME_MISMATCH
            code = "tls_hostname_mismatch" if mismatch else "tls_certificate_untrusted"
            break
        if isinstance(err, socket.gaierror):
            code = "dns_unresolved"
            break
        if isinstance(err, ConnectionRefusedError):
            code = "connection_refused"
            break
        if isinstance(err, TimeoutError) or type(err).__name__.endswith("Timeout"):
            code = "connection_timeout"
            break
    return diagnose(
        code,
        stage="token",
        cause=f"Postroom could not get an OAuth2 access token because it could not talk to "
        f"{where}: {exc}.",
        fix="Check that the machine running Postroom can reach the provider's token endpoint "
        "over HTTPS (port 443, firewall, proxy); Postroom tries again later.",
    )
