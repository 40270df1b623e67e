"""Classify an SMTP server reply into a diagnosis code, with what we know about providers.

The knowledge is one ordered table, :data:`RULES`: the first rule whose predicate matches the
reply decides the code, and may name the provider and replace the catalogue's cause and fix
with an explanation of that specific situation. Provider-specific rules come first, generic
RFC 5321 / RFC 3463 rules after them, and the reply class decides when nothing matches.

Predicates look at the basic reply code, the enhanced status code (RFC 3463, ``"5.7.8"``)
found in the text, the words of the text (case-insensitive, whitespace collapsed) and the
stage of the conversation (the documented ``connect``, ``ehlo``, ``starttls``, ``auth``, ``mail``,
``rcpt``, ``data``, ``quit``). The quoted replies in the comments are the test data in
``tests/diagnosis/test_replies.py``; the explanations are ours.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from postroom.codes import DiagnosisCode

__all__ = ["RULES", "Classified", "Rule", "classify_reply", "detect_provider"]

GMAIL = "Gmail"
MICROSOFT = "Microsoft 365"
OUTLOOK_OR_M365 = "Microsoft 365 / Outlook.com"
M365_OR_ACS = "Microsoft 365 / Azure Communication Services"
ACS = "Azure Communication Services"
SES = "Amazon SES"
SENDGRID = "SendGrid"
MAILGUN = "Mailgun"
POSTMARK = "Postmark"


@dataclass(frozen=True, slots=True)
class Classified:
    """What a reply means: a catalogue code, the provider when the reply identifies one, and a
    cause and fix that replace the catalogue's generic words when the situation is specific."""

    code: DiagnosisCode
    provider: str | None = None
    cause: str | None = None
    fix: str | None = None


# --------------------------------------------------------------------------------------------
# The reply as the predicates see it, and the predicate combinators.
# --------------------------------------------------------------------------------------------

# An enhanced status code: class.subject.detail, not part of a longer dotted number (an IP).
_ENHANCED = re.compile(r"(?<![\d.])([245])\.(\d{1,3})\.(\d{1,3})(?![\d]|\.\d)")


@dataclass(frozen=True, slots=True)
class _Reply:
    code: int
    enhanced: str | None
    text: str  # lower case, whitespace collapsed
    stage: str
    auth_skipped: bool = False  # the server offered AUTH and no login was made


def _enhanced_code(reply_code: int, text: str) -> str | None:
    """The first enhanced status code in ``text``, preferring one of the reply's own class."""
    found = ["{}.{}.{}".format(*m.groups()) for m in _ENHANCED.finditer(text)]
    if not found:
        return None
    same_class = [c for c in found if c[0] == str(reply_code)[0]]
    return same_class[0] if same_class else found[0]


@dataclass(frozen=True, slots=True)
class _Pred:
    test: Callable[[_Reply], bool]

    def __and__(self, other: _Pred) -> _Pred:
        return _Pred(lambda r: self.test(r) and other.test(r))

    def __or__(self, other: _Pred) -> _Pred:
        return _Pred(lambda r: self.test(r) or other.test(r))

    def __invert__(self) -> _Pred:
        return _Pred(lambda r: not self.test(r))


def basic(*codes: int) -> _Pred:
    """The basic reply code is one of ``codes``."""
    return _Pred(lambda r: r.code in codes)


def klass(digit: int) -> _Pred:
    """The reply is of class ``digit`` (4 = transient failure, 5 = permanent failure)."""
    return _Pred(lambda r: r.code // 100 == digit)


def enh(*patterns: str) -> _Pred:
    """The enhanced status code equals a pattern, or starts with one that ends in a dot."""

    def test(r: _Reply) -> bool:
        e = r.enhanced
        if e is None:
            return False
        return any(e.startswith(p) if p.endswith(".") else e == p for p in patterns)

    return _Pred(test)


def says(*phrases: str) -> _Pred:
    """The text contains one of ``phrases`` (give them in lower case)."""
    return _Pred(lambda r: any(p in r.text for p in phrases))


def matches(pattern: str) -> _Pred:
    """The text matches the regular expression ``pattern`` (searched, lower case)."""
    rx = re.compile(pattern)
    return _Pred(lambda r: rx.search(r.text) is not None)


def at(*stages: str) -> _Pred:
    """The reply came at one of ``stages``."""
    return _Pred(lambda r: r.stage in stages)


# --------------------------------------------------------------------------------------------
# Provider detection for replies that no specific rule names.
# --------------------------------------------------------------------------------------------

_PROVIDER_HINTS: tuple[tuple[str, tuple[str, ...]], ...] = (
    (ACS, ("azurecomm", "communication services")),
    (GMAIL, ("gsmtp", "support.google.com", "accounts.google.com", "gmail")),
    (
        MICROSOFT,
        (
            "outlook.com",
            "office365",
            "storedrv",
            "aka.ms/",
            "smtpclientauthentication",
            "5.7.139",
        ),
    ),
    (SES, ("amazonaws", "amazon ses", "throttling failure", "failed the check in region")),
    (SENDGRID, ("sendgrid", "sender identity", "maximum credits exceeded")),
    (MAILGUN, ("mailgun",)),
    (POSTMARK, ("postmark", "sender signature")),
)


def detect_provider(text: str) -> str | None:
    """The provider a reply's text names or betrays (a host name, a product-specific phrase),
    or ``None``. Case-insensitive."""
    low = text.lower()
    for provider, hints in _PROVIDER_HINTS:
        if any(h in low for h in hints):
            return provider
    return None


# --------------------------------------------------------------------------------------------
# The rule table.
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Rule:
    """When ``when`` matches, the reply means ``code``; ``provider``, ``cause`` and ``fix``
    are optional (the provider is otherwise detected from the text)."""

    when: _Pred
    code: DiagnosisCode
    provider: str | None = None
    cause: str | None = None
    fix: str | None = None


_AUTH_WORDS = says(
    "authentication failed",
    "authentication unsuccessful",
    "authentication credentials invalid",
    "invalid credentials",
    "username and password not accepted",
    "incorrect authentication data",
    "bad username",
    "invalid login",
    "login failed",
)
_RATE_WORDS = says(
    "too many",
    "rate limit",
    "rate-limit",
    "throttl",
    "too quickly",
    "too fast",
    "too frequent",
    "slow down",
    "concurrent connection",
    "thread limit",
    "unusual rate",
    "at a rate",
    "maximum sending rate",
    "rate exceeded",
    "too much mail",  # Postfix's anvil limits: "450 4.7.1 Error: too much mail from 1.2.3.4"
)
_SUSPENDED = matches(
    r"\baccount\b(?: [\w-]+){0,3}? (?:is |has been |was )?"
    r"(?:suspended|disabled|terminated|blocked|paused|deactivated)\b"
) | says("sending paused", "bad outbound sender", "sending has been disabled")
_SUBMISSION = at("connect", "ehlo", "starttls", "auth", "mail")
_NO_ENHANCED = _Pred(lambda r: r.enhanced is None)
_AUTH_SKIPPED = _Pred(lambda r: r.auth_skipped)

RULES: tuple[Rule, ...] = (
    # ---------------------------------------------------------------- Microsoft 365 / Outlook
    # Microsoft Learn, "Enable or disable SMTP AUTH in Exchange Online" / SMTP AUTH
    # troubleshooting: "535 5.7.139 Authentication unsuccessful, SmtpClientAuthentication is
    # disabled for the Tenant. Visit https://aka.ms/smtp_auth_disabled for more information."
    Rule(
        says("smtpclientauthentication is disabled for the tenant"),
        "auth_disabled",
        MICROSOFT,
        "Microsoft 365 refused the login because SMTP AUTH is turned off for the whole tenant "
        "(organisation), whatever the password.",
        "Have an Exchange admin turn SMTP AUTH back on for the organisation (Exchange admin "
        "center > Settings > Mail flow), or better, configure oauth2 (XOAUTH2); Microsoft turns "
        "basic SMTP AUTH off by default at the end of 2026.",
    ),
    # "... SmtpClientAuthentication is disabled for the Mailbox. Visit https://aka.ms/..."
    Rule(
        says("smtpclientauthentication is disabled for the mailbox"),
        "auth_disabled",
        MICROSOFT,
        "Microsoft 365 refused the login because Authenticated SMTP is turned off for this "
        "mailbox.",
        "In the Microsoft 365 admin center open the user > Mail > Manage email apps and tick "
        "Authenticated SMTP (or Set-CASMailbox -SmtpClientAuthenticationDisabled $false), or "
        "configure oauth2 instead of a password.",
    ),
    # Outlook.com personal accounts (since 2024-09-16) and tenants without basic auth:
    # "535 5.7.139 Authentication unsuccessful, basic authentication is disabled."
    Rule(
        says("basic authentication is disabled"),
        "auth_disabled",
        OUTLOOK_OR_M365,
        "Microsoft no longer accepts a password over SMTP for this account: personal "
        "Outlook.com/Hotmail accounts have refused passwords since September 2024, and "
        "Microsoft 365 tenants can switch basic authentication off.",
        "Use oauth2 with provider microsoft: flow device_code plus `postroom oauth login` for a "
        "personal account, client_credentials for a Microsoft 365 tenant.",
    ),
    # Exchange Team blog on the SMTP AUTH basic-auth retirement:
    # "550 5.7.30 Basic authentication is not supported for Client Submission."
    Rule(
        enh("5.7.30") | says("basic authentication is not supported"),
        "auth_disabled",
        MICROSOFT,
        "Microsoft 365 no longer accepts a password (basic authentication) for SMTP submission "
        "in this tenant.",
        "Configure oauth2 (provider microsoft, flow client_credentials), or send through a "
        "connector-based relay at <domain>.mail.protection.outlook.com:25.",
    ),
    # "535 5.7.139 Authentication unsuccessful, user is locked by your organization's security
    # defaults policy. Contact your administrator."
    # "535 5.7.139 Authentication unsuccessful, the request did not meet the criteria to be
    # authenticated successfully. Contact your administrator."
    Rule(
        says("security defaults", "did not meet the criteria to be authenticated"),
        "auth_disabled",
        MICROSOFT,
        "Microsoft 365 blocked the password login by policy: Security Defaults or a Conditional "
        "Access rule (e.g. one requiring MFA) forbids basic authentication for this user.",
        "Have an Entra admin exclude this mailbox from the policy (Security Defaults must be off "
        "for basic SMTP AUTH), or switch to oauth2 which these policies allow.",
    ),
    # "535 5.7.139 Authentication unsuccessful, the user credentials were incorrect."
    Rule(
        says("user credentials were incorrect"),
        "auth_failed",
        MICROSOFT,
        "Microsoft 365 says the username or password is wrong.",
        "Use the mailbox's full sign-in address (UPN) as the username and its current password; "
        "if the account uses MFA, a password will not work and oauth2 is needed.",
    ),
    # "535 5.7.3 Authentication unsuccessful" (Microsoft 365 and smtp.azurecomm.net alike).
    Rule(
        (enh("5.7.3") | says("authentication unsuccessful")) & says("azurecomm"),
        "auth_failed",
        ACS,
        "Azure Communication Services refused the login: the username must be "
        "<resource>.<app id>.<tenant id> or an SMTP Username you created, the password the Entra "
        "app's client secret, and the app needs a role with send rights on the resource.",
        "Check the username format and client secret, and give the Entra app the 'Communication "
        "and Email Service Owner' role (or a custom role with email send rights) on the "
        "Communication Services resource.",
    ),
    Rule(
        enh("5.7.3") & says("authentication unsuccessful"),
        "auth_failed",
        M365_OR_ACS,
        "Microsoft refused the login. On Microsoft 365 the password is wrong or SMTP AUTH is off "
        "for the mailbox; on Azure Communication Services the username must be "
        "<resource>.<app id>.<tenant id> or an SMTP Username, and the Entra app needs a role "
        "with send rights on the resource.",
        "Microsoft 365: check the mailbox address and password and that Authenticated SMTP is "
        "enabled for it. Azure Communication Services: check the username format, the client "
        "secret and the app's role assignment.",
    ),
    # Bare "535 5.7.139 Authentication unsuccessful" with no reason given.
    Rule(
        enh("5.7.139"),
        "auth_failed",
        MICROSOFT,
        "Microsoft 365 refused the login without saying why: a wrong password, or a policy that "
        "blocks password logins for this mailbox.",
        "Check the password, then that Authenticated SMTP is enabled for the mailbox and that no "
        "Security Defaults or Conditional Access policy blocks it; oauth2 avoids all of these.",
    ),
    # Microsoft Learn, "Fix issues with printers, scanners, and LOB applications that send email
    # using Microsoft 365": "530 5.7.57 Client not authenticated to send mail." and
    # "5.7.57 SMTP; Client was not authenticated to send anonymous mail during MAIL FROM".
    Rule(
        enh("5.7.57") | says("client was not authenticated to send anonymous mail"),
        "auth_required",
        MICROSOFT,
        "smtp.office365.com:587 only accepts mail after a login; it is not an anonymous relay, "
        "even though some guides describe it as one.",
        "Add the mailbox's credentials (or oauth2) to the URI, or relay without a login through "
        "<domain-with-dashes>.mail.protection.outlook.com:25 with an inbound connector that "
        "trusts your static IP or certificate (preset microsoft365-relay).",
    ),
    # "550 5.7.60 SMTP; Client does not have permissions to send as this sender"
    # "554 5.2.0 STOREDRV.Submission.Exception:SendAsDeniedException.MapiExceptionSendAsDenied"
    Rule(
        enh("5.7.60") | says("send as this sender", "sendasdenied"),
        "sender_not_authorized",
        MICROSOFT,
        "Microsoft 365 lets a mailbox send only as itself unless it has been given Send As "
        "rights, and the From address is a different one.",
        "Set from_address to the signed-in mailbox's own address, or have an Exchange admin "
        "grant this mailbox Send As permission on the From address (or shared mailbox).",
    ),
    # "550 5.7.64 TenantAttribution; Relay Access Denied"
    Rule(
        enh("5.7.64") | says("tenantattribution"),
        "relay_denied",
        MICROSOFT,
        "Microsoft 365 could not match this connection to an inbound connector of your "
        "organisation, so it refuses to relay to outside recipients.",
        "Create (or fix) an inbound connector from your organisation's email server that trusts "
        "this machine's public static IP or its TLS certificate name.",
    ),
    # "550 5.7.54 SMTP; Unable to relay recipient in non-accepted domain"
    Rule(
        enh("5.7.54") | says("non-accepted domain"),
        "relay_denied",
        MICROSOFT,
        "Without a login or a connector, <domain>.mail.protection.outlook.com only delivers to "
        "your own tenant's mailboxes (direct send), and this recipient is outside it.",
        "Use the microsoft365-relay preset with an inbound connector for your IP or certificate, "
        "or authenticated submission on smtp.office365.com:587.",
    ),
    # Exchange Team blog, "Changes coming to the SMTP Authenticated Submission client protocol":
    # "432 4.3.2 STOREDRV.ClientSubmit; sender thread limit exceeded" and
    # "432 4.3.2 Concurrent connections limit exceeded".
    Rule(
        says("sender thread limit", "concurrent connection"),
        "rate_limited",
        MICROSOFT,
        "Microsoft 365 allows only three simultaneous SMTP connections per mailbox, and this "
        "one was over the limit.",
        "Lower the tenant's worker concurrency to 3 or less for this mailbox; the message is "
        "retried.",
    ),
    # "554 5.2.0 STOREDRV.Submission.Exception:SubmissionQuotaExceededException; Failed to
    # process message due to a permanent exception with message Cannot submit message."
    Rule(
        says("submissionquotaexceeded", "submission quota"),
        "quota_exceeded",
        MICROSOFT,
        "The Microsoft 365 mailbox used up its sending allowance (10,000 recipients a day, 30 "
        "messages a minute).",
        "Wait up to 24 hours for the allowance to recover and keep courier.rate_limits under "
        "Microsoft's limits; send bulk mail through a dedicated email provider.",
    ),
    # "550 5.1.90 Your message can't be sent because you've reached your daily limit for
    # message recipients."
    Rule(
        enh("5.1.90") | says("daily limit for message recipients"),
        "quota_exceeded",
        MICROSOFT,
        "The Microsoft 365 mailbox reached its daily recipient limit.",
        "Wait up to 24 hours, then retry the abandoned messages; keep courier.rate_limits below "
        "10,000 recipients a day.",
    ),
    # "550 5.1.8 Access denied, bad outbound sender"
    Rule(
        says("bad outbound sender"),
        "account_suspended",
        MICROSOFT,
        "Microsoft 365 has put this mailbox on its restricted-senders list, usually because it "
        "sent what looked like spam (often after its password leaked).",
        "Secure the account (change its password), then have an admin release it under Restricted "
        "entities in the Microsoft Defender portal.",
    ),
    # ------------------------------------------------------------------------------- Gmail
    # Google Workspace Admin Help, "Gmail SMTP errors and codes":
    # "534 5.7.9 Application-specific password required."
    Rule(
        says("application-specific password required", "application specific password required"),
        "app_password_required",
        GMAIL,
        "The Google account has 2-Step Verification on, so Gmail does not accept its normal "
        "password over SMTP.",
        "Create an app password at myaccount.google.com/apppasswords and use it as the SMTP "
        "password, or configure oauth2.",
    ),
    # "534-5.7.14 <https://accounts.google.com/signin/continue?...> Please log in via your web
    # browser and then try again."  (also "534 5.7.9 Please log in with your web browser ...")
    Rule(
        says("web browser", "web login required") | (enh("5.7.14") & at("auth")),
        "app_password_required",
        GMAIL,
        "Google blocked the sign-in as suspicious or because it needs a browser sign-in; "
        "Gmail no longer lets apps log in with the account's normal password.",
        "Turn on 2-Step Verification and create an app password for Postroom (or use oauth2); if "
        "an app password already fails, sign in once in a browser from the same network.",
    ),
    # "535-5.7.8 Username and Password not accepted. For more information, go to
    # https://support.google.com/mail/?p=BadCredentials ... - gsmtp"
    Rule(
        says("username and password not accepted"),
        "auth_failed",
        GMAIL,
        "Gmail rejected the username or password; most often a normal Google password was used, "
        "which Gmail no longer accepts from apps.",
        "Use the full Gmail or Workspace address as the username and an app password (needs "
        "2-Step Verification) as the password, or configure oauth2.",
    ),
    # "550 5.4.5 Daily sending quota exceeded." / "550 5.4.5 Daily user sending limit exceeded."
    Rule(
        says("daily sending quota", "daily user sending"),
        "quota_exceeded",
        GMAIL,
        "The Google account reached its daily sending limit (about 500 messages for Gmail, 2,000 "
        "for Google Workspace).",
        "Wait up to 24 hours for the limit to reset and retry the abandoned messages; for more "
        "volume use a transactional email provider, and keep courier.rate_limits under the limit.",
    ),
    # ------------------------------------------------------------------------------ Amazon SES
    # Amazon SES Developer Guide, "Errors related to the sending quotas":
    # "454 Throttling failure: Daily message quota exceeded."
    Rule(
        says("daily message quota exceeded"),
        "quota_exceeded",
        SES,
        "The Amazon SES account sent its whole 24-hour sending quota.",
        "Wait for the quota window to move on, and ask AWS for a higher quota in the SES "
        "console (Account dashboard) if you need more.",
    ),
    # "454 Throttling failure: Maximum sending rate exceeded."
    Rule(
        says("maximum sending rate exceeded"),
        "rate_limited",
        SES,
        "The Amazon SES account sends more messages per second than its sending rate allows.",
        "Set courier.rate_limits to the account's maximum send rate (SES console > Account "
        "dashboard); the message is retried.",
    ),
    # AWS re:Post, "554 Message rejected: Email address is not verified. The following
    # identities failed the check in region US-EAST-1: ..." -- SES does not say whether the
    # listed identity is the sender or (in the sandbox) a recipient. When the text says it is a
    # recipient we answer recipient_rejected (the sandbox refuses that recipient); otherwise
    # sender_not_authorized, with the sandbox mentioned as the other possibility.
    Rule(
        matches(r"\brecipients? (?:email )?(?:address(?:es)? )?(?:is |are )?not verified"),
        "recipient_rejected",
        None,
        "The recipient address is not verified: an Amazon SES account still in the sandbox (like "
        "other providers' trial modes) may only send to verified addresses.",
        "Request production access in the SES console of the endpoint's region (or leave the "
        "provider's trial mode), or verify the recipient address for testing.",
    ),
    Rule(
        says("email address is not verified", "failed the check in region"),
        "sender_not_authorized",
        SES,
        "Amazon SES only sends from addresses or domains verified in the same region as the "
        "SMTP endpoint, and the listed identity is not; in the SES sandbox recipients must be "
        "verified too.",
        "Verify the From domain (or address) in the SES console of the endpoint's region; if the "
        "listed address is a recipient, request production access to leave the sandbox.",
    ),
    # "554 Access denied: User 'arn:aws:iam::123456789012:user/ses-smtp' is not authorized to
    # perform 'ses:SendRawEmail' on resource '...'"
    Rule(
        says("is not authorized to perform") & says("ses:"),
        "sender_not_authorized",
        SES,
        "The IAM user behind these SES SMTP credentials has no permission to send from this "
        "identity.",
        "Attach a policy allowing ses:SendRawEmail on the identity to the IAM user the SMTP "
        "credentials belong to.",
    ),
    # Amazon SES Developer Guide, SMTP response codes: "535 Authentication Credentials Invalid".
    # RFC 4954 uses the same words with "5.7.8"; SES sends no enhanced code, which tells them
    # apart (a heuristic).
    Rule(
        says("authentication credentials invalid") & _NO_ENHANCED,
        "auth_failed",
        SES,
        "Amazon SES rejected the SMTP credentials; they are not the IAM access key and secret, "
        "and they only work in the region they were created for.",
        "Create SMTP credentials in the SES console of the region in the URI "
        "(email-smtp.<region>.amazonaws.com) and use that SMTP username and password.",
    ),
    # ---------------------------------------------------------------------------------- SendGrid
    # Twilio SendGrid docs, "SMTP Errors and Troubleshooting":
    # "451 Authentication failed: Maximum credits exceeded"
    Rule(
        says("maximum credits exceeded"),
        "quota_exceeded",
        SENDGRID,
        "The SendGrid account has used all the email credits of its plan for now.",
        "Check the plan under Settings > Account Details in SendGrid, upgrade it or wait for "
        "the credits to renew, and contact SendGrid support if the limit looks wrong.",
    ),
    # "550 The from address does not match a verified Sender Identity. Mail cannot be sent until
    # this error is resolved. Visit https://sendgrid.com/docs/for-developers/sending-email/
    # sender-identity/ to see the Sender Identity requirements"
    Rule(
        says("verified sender identity"),
        "sender_not_authorized",
        SENDGRID,
        "SendGrid only sends from a verified Sender Identity (a single verified sender or an "
        "authenticated domain), and the From address is neither.",
        "Verify the from_address as a Single Sender or authenticate its domain in SendGrid "
        "(Settings > Sender Authentication).",
    ),
    # "535 Authentication failed: Bad username / password"
    # "535 Authentication failed: The provided authorization grant is invalid, expired, or
    # revoked"
    Rule(
        says("bad username / password", "authorization grant is invalid"),
        "auth_failed",
        SENDGRID,
        "SendGrid rejected the login: over SMTP the username is literally 'apikey' and the "
        "password an API key that still exists and may send mail.",
        "Use username apikey and a current API key with Mail Send permission as the password "
        "(preset sendgrid).",
    ),
    # "550 Unauthenticated senders not allowed"
    Rule(
        says("unauthenticated senders not allowed"),
        "auth_required",
        SENDGRID,
        "SendGrid accepts mail only after a login, and none was made.",
        "Put apikey and an API key in the URI: smtp://apikey:<key>@smtp.sendgrid.net:587/.",
    ),
    # ----------------------------------------------------------------------- Mailgun, Postmark
    # Mailgun help, "Authorized Recipients": sandbox domains and free plans may only send to
    # authorized recipients; the refusal mentions "authorized recipients".
    Rule(
        says("authorized recipients"),
        "recipient_rejected",
        MAILGUN,
        "The Mailgun sandbox domain (or a free plan without a card) may only send to up to five "
        "authorized recipients, and this recipient is not one of them.",
        "Send from your own verified domain, or add the recipient under Authorized Recipients "
        "for the sandbox domain and have them accept the invitation.",
    ),
    # Postmark refuses From addresses that are not a confirmed Sender Signature or domain.
    Rule(
        says("sender signature"),
        "sender_not_authorized",
        POSTMARK,
        "Postmark only sends from a confirmed Sender Signature or a verified domain, and the "
        "From address is neither.",
        "Add and confirm the from_address as a Sender Signature, or verify its domain, in the "
        "Postmark account.",
    ),
    # ------------------------------------------------ generic: what a real Postfix answers
    # Postfix 3.7 with "smtpd_recipient_restrictions = permit_sasl_authenticated, reject" after
    # EHLO offered AUTH and the client did not log in: "554 5.7.1 <a@b>: Recipient address
    # rejected: Access denied". Known to have skipped an offered login, it is auth_required.
    Rule(
        _AUTH_SKIPPED
        & at("mail", "rcpt", "data")
        & (enh("5.7.0", "5.7.1") | says("access denied", "relay"))
        & ~says("blocked using"),
        "auth_required",
        cause="The server offered a login (AUTH) and Postroom did not log in, because the "
        "connection URI has no username; the server takes mail only from clients that log in.",
        fix="Put the SMTP username and password in the URI (smtp://user:pass@host:587/, "
        "percent-encoded) or configure oauth2.",
    ),
    # Without knowing whether a login was skipped (a pasted reply), the same words: a policy
    # refusal, not an unknown mailbox.
    Rule(
        enh("5.7.1") & says("recipient address rejected: access denied"),
        "recipient_rejected",
        cause='The server refused this recipient by policy ("Access denied"), not because the '
        "mailbox does not exist. Postfix answers this way when only clients that log in may "
        "send, and to addresses its restrictions refuse.",
        fix="If the server offers a login (`postroom test-smtp` shows AUTH after EHLO) and the "
        "URI has no username, add the credentials; otherwise ask for another address or ask "
        "the server's admin which restriction refused it.",
    ),
    # Postfix smtpd_check.c, reject_rbl_client: "554 5.7.1 Service unavailable; Client host
    # [1.2.3.4] blocked using zen.spamhaus.org; https://www.spamhaus.org/query/ip/1.2.3.4".
    Rule(
        (says("client host") & says("blocked using", "listed"))
        | says("banned sending ip", "ip is blocklisted", "ip is blacklisted", "ip blocklisted")
        | (
            says("blocklist", "blacklist", "block list", "black list", "dnsbl", "spamhaus")
            & ~says("sender address", "domain", "helo", "url", "uri")
        ),
        "ip_blocklisted",
    ),
    # Postfix smtpd.c: "501 5.1.7 Bad sender address syntax" (MAIL FROM it cannot parse).
    Rule(
        enh("5.1.7")
        | says("bad sender address syntax", "sender address syntax", "malformed sender address"),
        "sender_invalid",
    ),
    # Postfix with Cyrus SASL and no usable mechanism on the server (xsasl_cyrus_server.c
    # quotes sasl_errstring(SASL_NOMECH)): "535 5.7.8 Error: authentication failed: no
    # mechanism available". The password was never checked.
    Rule(
        says("no mechanism available", "no worthy mechs"),
        "auth_unsupported",
        cause="The server's own login system (SASL) failed: it has no mechanism it can use, so "
        "it never checked the username and password. This is a fault in the server's set-up, "
        "not a wrong password.",
        fix="Ask the server's admin to check its SASL set-up (Postfix: smtpd_sasl_type, "
        "smtpd_sasl_path, the Cyrus mech_list or a running saslauthd / Dovecot auth); nothing "
        "in Postroom's settings changes this.",
    ),
    # ------------------------------------------------------------------- generic: accounts
    # Gmail: "550-5.2.1 The email account that you tried to reach is disabled." is the
    # recipient's account, not ours.
    Rule(
        at("rcpt", "data") & (enh("5.2.1") | says("account that you tried to reach is disabled")),
        "recipient_rejected",
    ),
    Rule(_SUSPENDED, "account_suspended"),
    # Mailgun: "Domain mg.example.org is not allowed to send: ..." (domain not verified).
    Rule(says("is not allowed to send"), "sender_not_authorized"),
    # ------------------------------------------------------------- generic: TLS and login
    # RFC 3207 / Amazon SES / Gmail: "530 5.7.0 Must issue a STARTTLS command first."
    # RFC 4954: "538 5.7.11 Encryption required for requested authentication mechanism".
    # At the STARTTLS step itself: "502 5.5.1 STARTTLS not supported", "454 4.7.0 TLS not
    # available due to local problem".
    Rule(
        at("starttls") & (klass(5) | says("not available", "not supported")),
        "starttls_unavailable",
    ),
    Rule(
        says(
            "must issue a starttls",
            "starttls command first",
            "starttls required",
            "starttls first",
            "must use starttls",
            "encryption required",
            "requires tls",
            "tls required",
        )
        & ~says("tls required for rcpt domain"),
        "starttls_required",
    ),
    # Postal: "530 From/Sender name is not valid" is about the sender, not a missing login.
    Rule(
        klass(5) & says("sender name is not valid", "from/sender"),
        "sender_not_authorized",
    ),
    # RFC 4954: "530 5.7.0 Authentication required"
    Rule(
        basic(530)
        | says(
            "authentication required",
            "authentication is required",
            "auth required",
            "must authenticate",
            "not authenticated",
            "please authenticate",
        ),
        "auth_required",
    ),
    # RFC 4954: "534 5.7.9 Authentication mechanism is too weak"; "504 5.5.4 Unrecognized
    # authentication type"; Postfix: "503 5.5.1 Error: authentication not enabled".
    Rule(
        at("auth")
        & (
            basic(500, 502, 504)
            | says(
                "unrecognized authentication type",
                "mechanism is too weak",
                "mechanism not supported",
                "unsupported authentication",
                "authentication not enabled",
                "auth not available",
            )
        ),
        "auth_unsupported",
    ),
    # RFC 4954: "454 4.7.0 Temporary authentication failure"
    Rule(at("auth") & basic(454) & _RATE_WORDS, "rate_limited"),
    Rule(at("auth") & basic(454), "server_unavailable"),
    # RFC 4954: "535 5.7.8 Authentication credentials invalid"; Exim: "535 Incorrect
    # authentication data"; Postfix: "535 5.7.8 Error: authentication failed: ..."
    Rule(basic(535) | enh("5.7.8") | (at("auth") & _AUTH_WORDS), "auth_failed"),
    # ------------------------------------------------------ generic: limits and quotas
    # Recipient's mailbox: Gmail "452 4.2.2 The email account that you tried to reach is over
    # quota."; Exchange "554 5.2.2 mailbox full; STOREDRV.Deliver.Exception:QuotaExceeded..."
    Rule(
        enh("4.2.2", "5.2.2")
        | says(
            "over quota",
            "mailbox full",
            "mailbox is full",
            "shutoffquota",
            "exceeded storage",
            "storage limit",
            "insufficient storage",
            "out of storage",
        ),
        "mailbox_full",
    ),
    # "451 You've exceeded your messaging limits"; "5.7.1 <DATA>: Data command rejected: only 10
    # messages per day"; "User x has exceeded its 24-hour sending limit".
    Rule(
        says(
            "sending quota",
            "sending limit exceeded",
            "daily limit",
            "daily quota",
            "message quota",
            "plan limit",
            "messaging limits",
            "messages per day",
            "24-hour sending limit",
        ),
        "quota_exceeded",
    ),
    Rule(_SUBMISSION & says("quota"), "quota_exceeded"),
    Rule(at("rcpt", "data") & says("quota"), "mailbox_full"),
    # Greylisting (Postgrey: "450 4.2.0 <a@b>: Recipient address rejected: Greylisted, see
    # http://postgrey.schweikert.ch/help/example.org.html"; milter-greylist: "451 4.7.1 Please
    # try again later").
    Rule(
        says("greylist", "graylist", "grey-list", "gray-list")
        | (
            basic(450, 451)
            & enh("4.7.1", "4.2.0")
            & at("mail", "rcpt", "data")
            & says("try again later", "try later", "retry later", "deferred")
        ),
        "greylisted",
    ),
    # "Too many" alone is not a rate: a permanent "too many recipients/hops/bad commands"
    # is about this message or session, and retrying it later changes nothing.
    Rule(
        _RATE_WORDS
        & (
            klass(4)
            | ~says(
                "too many recipients",
                "too many hops",
                "too many invalid",
                "too many bad",
                "too many errors",
                "too many unknown",
            )
        ),
        "rate_limited",
    ),
    # Gmail: "552 5.3.4 Your message exceeded Google's message size limits."
    Rule(
        enh("5.3.4", "5.2.3", "4.3.4")
        | says(
            "message size",
            "size limit",
            "message too large",
            "message is too large",
            "message too big",
            "too big",
            "exceeds the maximum size",
            "maximum message size",
        ),
        "message_too_large",
    ),
    # ---------------------------------------------------------------- generic: relaying
    # Postfix: "554 5.7.1 <a@b>: Relay access denied"; Exchange: "550 5.7.1 Unable to relay".
    Rule(
        says(
            "relay access denied",
            "relaying denied",
            "relay denied",
            "relay not permitted",
            "not permitted to relay",
            "relaying not allowed",
            "not allowed to relay",
            "relay prohibited",
            "unable to relay",
            "we do not relay",
            "relaying disallowed",
        )
        | (enh("5.7.1") & says("relay")),
        "relay_denied",
    ),
    # ------------------------------------------------------------ generic: addresses
    # Postfix: "553 5.7.1 <a@b>: Sender address rejected: not owned by user x";
    # SendGrid: "403 You are not authorized to send from that email address".
    Rule(
        says("not authorized to send from", "not allowed to send from", "unverified sender")
        | (
            klass(5)
            & says(
                "sender address rejected",
                "sender rejected",
                "sender not allowed",
                "sender is not allowed",
                "not owned by user",
                "invalid mail from",
            )
        )
        | (at("mail") & klass(5) & (enh("5.7.1", "5.1.") | says("sender"))),
        "sender_not_authorized",
    ),
    # Gmail: "550-5.1.1 The email account that you tried to reach does not exist."; Postfix:
    # "550 5.1.1 <a@b>: Recipient address rejected: User unknown in virtual mailbox table";
    # Exchange Online: "550 5.4.1 Recipient address rejected: Access denied."
    Rule(
        (enh("5.1.") & ~at("mail"))
        | (
            at("rcpt", "data")
            & klass(5)
            & says(
                "user unknown",
                "unknown user",
                "does not exist",
                "no such user",
                "no such recipient",
                "recipient not found",
                "recipient rejected",
                "recipient address rejected",
                "mailbox unavailable",
                "mailbox not found",
                "invalid recipient",
                "invalid rcpt",
                "address rejected",
                "unrouteable",
            )
        )
        | (at("rcpt") & basic(550, 551, 553) & enh("5.7.1")),
        "recipient_rejected",
    ),
    # ----------------------------------------------------- generic: server availability
    # RFC 5321 greeting: "554 5.7.0 No SMTP service here".
    Rule(says("no smtp service"), "server_unavailable"),
    # Gmail: "421 4.7.0 Temporary System Problem. Try again later."; "451 4.3.0 Mail server
    # temporarily rejected message."; any 421 (RFC 5321: service not available, closing).
    Rule(
        basic(421)
        | enh("4.3.", "4.4.")
        | (klass(4) & says("temporar", "try again later", "service not available", "busy")),
        "server_unavailable",
    ),
    # RFC 5321 / RFC 3463 syntax and sequence errors: the conversation itself went wrong.
    Rule(basic(500, 501, 503) | enh("5.5.1", "5.5.2"), "protocol_error"),
)


@dataclass(frozen=True, slots=True)
class _Words:
    cause: str
    fix: str


# Provider-specific words for a plain login failure whose reply names only the provider.
_AUTH_FAILED_BY_PROVIDER: dict[str, _Words] = {
    GMAIL: _Words(
        "Gmail rejected the login; it accepts only an app password (with 2-Step Verification) "
        "or OAuth2, not the account's normal password.",
        "Create an app password at myaccount.google.com/apppasswords and use it, or configure "
        "oauth2.",
    ),
    MAILGUN: _Words(
        "Mailgun rejected the login: SMTP needs the per-domain SMTP credentials, not the account "
        "password or the private API key.",
        "Copy (or reset) the SMTP user and password under Sending > Domain settings > SMTP "
        "credentials for the sending domain, in the right region (US or EU).",
    ),
    POSTMARK: _Words(
        "Postmark rejected the login: over SMTP both username and password are the Server API "
        "Token, not the account token.",
        "Copy the Server API Token of the right server and use it as both username and password "
        "(preset postmark).",
    ),
}

# Provider-specific words when an XOAUTH2 login fails.
_OAUTH_BY_PROVIDER: dict[str, _Words] = {
    MICROSOFT: _Words(
        "Microsoft 365 refused the OAuth2 token: the Entra app needs the SMTP.SendAsApp "
        "permission with admin consent, and its service principal must be registered in "
        "Exchange with rights on this mailbox.",
        "Grant SMTP.SendAsApp (Office 365 Exchange Online) with admin consent, then run "
        "New-ServicePrincipal and Add-MailboxPermission for the app in Exchange Online "
        "PowerShell; the scope must be https://outlook.office365.com/.default.",
    ),
    GMAIL: _Words(
        "Google refused the OAuth2 token: the service account needs domain-wide delegation for "
        "the https://mail.google.com/ scope and must act as the sending user.",
        "In the Google Workspace admin console, add the service account's client ID under "
        "domain-wide delegation with scope https://mail.google.com/, and use the mailbox address "
        "as the SMTP username.",
    ),
}


def classify_reply(
    reply_code: int,
    text: str,
    *,
    stage: str,
    xoauth2: bool = False,
    auth_skipped: bool = False,
) -> Classified:
    """Say what an SMTP reply means.

    Returns the code of the first matching rule in :data:`RULES`, with the provider when the
    reply identifies one and a situation-specific cause and fix when known (``None`` means
    "use the catalogue's words"). A reply no rule names falls back to what RFC 3463 says of
    its enhanced status code, and is ``unknown`` when that says nothing either; a code
    outside 400..599 (a success or intermediate code reported as a failure, or no SMTP code at
    all) is ``protocol_error``. With ``xoauth2=True`` (the login used an OAuth2 token), a login
    failure is ``oauth_token_rejected`` instead of ``auth_failed``. With ``auth_skipped=True``
    (the server offered AUTH and no login was made), a policy refusal of the sender or a
    recipient is ``auth_required``. Never raises.
    """
    low = " ".join(text.split()).lower()
    detected = detect_provider(low)
    if not 400 <= reply_code <= 599:
        return Classified("protocol_error", detected)
    reply = _Reply(reply_code, _enhanced_code(reply_code, low), low, stage, auth_skipped)
    result = Classified(_rfc3463(reply), detected)
    for rule in RULES:
        if rule.when.test(reply):
            result = Classified(rule.code, rule.provider or detected, rule.cause, rule.fix)
            break
    if result.code == "auth_failed" and result.cause is None and result.provider:
        hint = _AUTH_FAILED_BY_PROVIDER.get(result.provider)
        if hint is not None:
            result = Classified("auth_failed", result.provider, hint.cause, hint.fix)
    if xoauth2 and result.code == "auth_failed":
        words = _OAUTH_BY_PROVIDER.get(_oauth_family(result.provider))
        result = Classified(
            "oauth_token_rejected",
            result.provider,
            words.cause if words else None,
            words.fix if words else None,
        )
    return result


# RFC 3463 (and the IANA registry of enhanced status codes, RFC 5248) for replies no rule
# names: subject.detail -> code. A 4xx reply falls back only to a code that is retried anyway,
# so the class of the reply (4xx: try again later) is never overruled into a give-up.
_RFC3463: dict[str, DiagnosisCode] = {
    "1.1": "recipient_rejected",  # bad destination mailbox address
    "1.2": "recipient_rejected",  # bad destination system address
    "1.3": "recipient_rejected",  # bad destination mailbox address syntax
    "1.6": "recipient_rejected",  # destination mailbox has moved
    "1.10": "recipient_rejected",  # recipient address has null MX (RFC 7505)
    "1.7": "sender_invalid",  # bad sender's mailbox address syntax
    "1.8": "sender_not_authorized",  # bad sender's system address
    "2.1": "recipient_rejected",  # mailbox disabled, not accepting messages
    "2.2": "mailbox_full",  # mailbox full
    "2.3": "message_too_large",  # message length exceeds administrative limit
    "3.1": "server_unavailable",  # mail system full
    "3.2": "server_unavailable",  # system not accepting network messages
    "3.4": "message_too_large",  # message too big for system
    "4.1": "server_unavailable",  # no answer from host
    "4.2": "server_unavailable",  # bad connection
    "4.5": "server_unavailable",  # mail system congestion
    "5.1": "protocol_error",  # invalid command
    "5.2": "protocol_error",  # syntax error
    "5.4": "protocol_error",  # invalid command arguments
    "7.4": "starttls_unavailable",  # security features not supported
    "7.8": "auth_failed",  # authentication credentials invalid (RFC 4954)
    "7.9": "auth_unsupported",  # authentication mechanism is too weak (RFC 4954)
    "7.10": "starttls_required",  # encryption needed
    "7.11": "starttls_required",  # encryption required for requested mechanism (RFC 4954)
    "7.12": "auth_failed",  # a password transition is needed (RFC 4954)
    "7.13": "account_suspended",  # user account disabled (RFC 5248 registry)
    "7.14": "auth_required",  # trust relationship required (RFC 5248 registry)
    "7.23": "sender_not_authorized",  # SPF validation failed (RFC 7372)
    "7.24": "sender_not_authorized",  # SPF validation error (RFC 7372)
    "7.26": "sender_not_authorized",  # multiple authentication checks failed (RFC 7372)
    "7.27": "sender_not_authorized",  # sender address has null MX (RFC 7505)
}
_RETRIED = {"server_unavailable", "rate_limited", "greylisted", "mailbox_full"}


def _rfc3463(reply: _Reply) -> DiagnosisCode:
    """The code the enhanced status code's subject and detail suggest, or ``unknown``."""
    if reply.enhanced is None:
        return "unknown"
    _klass, subject, detail = reply.enhanced.split(".")
    code = _RFC3463.get(f"{subject}.{detail}")
    if code is None and f"{subject}.{detail}" == "7.1":
        # "Delivery not authorized, message refused": whose problem depends on the command.
        by_stage: dict[str, DiagnosisCode] = {
            "mail": "sender_not_authorized",
            "rcpt": "recipient_rejected",
        }
        code = by_stage.get(reply.stage)
    if code is None or (reply.code // 100 == 4 and code not in _RETRIED):
        return "unknown"
    return code


def _oauth_family(provider: str | None) -> str:
    """Microsoft's several faces share one OAuth2 set-up."""
    if provider in (OUTLOOK_OR_M365, M365_OR_ACS):
        return MICROSOFT
    return provider or ""
