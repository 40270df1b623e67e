"""Server replies -> diagnosis codes, and the catalogue behind them.

Provider replies are quoted as the providers document them (source in the comment) or, where
marked "illustrative", as users report them; the tests pin the code and the provider.
"""

from __future__ import annotations

import pytest

from postroom.diagnosis import CODES, Classified, Entry, classify_reply, diagnose, is_transient
from postroom.diagnosis.replies import RULES, detect_provider
from postroom.models import Diagnosis

M365 = "Microsoft 365"
OUTLOOK_OR_M365 = "Microsoft 365 / Outlook.com"
M365_OR_ACS = "Microsoft 365 / Azure Communication Services"
ACS = "Azure Communication Services"
GMAIL = "Gmail"
SES = "Amazon SES"
SENDGRID = "SendGrid"
MAILGUN = "Mailgun"
POSTMARK = "Postmark"

# the documentation, "Diagnosis vocabulary", in table order.
DOCUMENTED_CODES = (
    "dns_unresolved",
    "connection_refused",
    "connection_timeout",
    "tls_wrong_mode",
    "tls_certificate_untrusted",
    "tls_hostname_mismatch",
    "tls_version_unsupported",
    "starttls_unavailable",
    "starttls_required",
    "auth_failed",
    "auth_disabled",
    "app_password_required",
    "auth_required",
    "auth_unsupported",
    "oauth_token_rejected",
    "sender_not_authorized",
    "sender_invalid",
    "account_suspended",
    "ip_blocklisted",
    "recipient_rejected",
    "relay_denied",
    "mailbox_full",
    "message_too_large",
    "rate_limited",
    "quota_exceeded",
    "greylisted",
    "server_unavailable",
    "http_error",
    "template_error",
    "target_forbidden",
    "settings_invalid",
    "expired",
    "cancelled",
    "protocol_error",
    "unknown",
)

# (stage, reply code, reply text, expected code, expected provider)
CASES = [
    # --- Microsoft 365 / Outlook.com ---------------------------------------------------------
    # Microsoft Learn, SMTP AUTH troubleshooting (tenant-wide switch).
    pytest.param(
        "auth",
        535,
        "5.7.139 Authentication unsuccessful, SmtpClientAuthentication is disabled for the "
        "Tenant. Visit https://aka.ms/smtp_auth_disabled for more information. "
        "[SN4PR0501CA0056.namprd05.prod.outlook.com]",
        "auth_disabled",
        M365,
        id="m365-smtp-auth-disabled-tenant",
    ),
    # Microsoft Learn, SMTP AUTH troubleshooting (per-mailbox switch).
    pytest.param(
        "auth",
        535,
        "5.7.139 Authentication unsuccessful, SmtpClientAuthentication is disabled for the "
        "Mailbox. Visit https://aka.ms/smtp_auth_disabled for more information.",
        "auth_disabled",
        M365,
        id="m365-smtp-auth-disabled-mailbox",
    ),
    # Outlook.com personal accounts since 2024-09-16 (and tenants without basic auth).
    pytest.param(
        "auth",
        535,
        "5.7.139 Authentication unsuccessful, basic authentication is disabled. "
        "[BN0PR04CA0075.namprd04.prod.outlook.com 2024-09-20T10:00:00.000Z 08DCD8C0E2A1B2C3]",
        "auth_disabled",
        OUTLOOK_OR_M365,
        id="outlook-basic-auth-disabled",
    ),
    # Microsoft Learn, SMTP AUTH troubleshooting: wrong password.
    pytest.param(
        "auth",
        535,
        "5.7.139 Authentication unsuccessful, the user credentials were incorrect.",
        "auth_failed",
        M365,
        id="m365-credentials-incorrect",
    ),
    # Microsoft Learn, SMTP AUTH troubleshooting: Conditional Access / security defaults.
    pytest.param(
        "auth",
        535,
        "5.7.139 Authentication unsuccessful, the request did not meet the criteria to be "
        "authenticated successfully. Contact your administrator.",
        "auth_disabled",
        M365,
        id="m365-did-not-meet-criteria",
    ),
    # Microsoft Learn, SMTP AUTH troubleshooting: security defaults.
    pytest.param(
        "auth",
        535,
        "5.7.139 Authentication unsuccessful, user is locked by your organization's security "
        "defaults policy. Contact your administrator.",
        "auth_disabled",
        M365,
        id="m365-security-defaults",
    ),
    # Microsoft Learn (MS-SMTPNTLM / printers & apps article): the classic 5.7.3; Azure
    # Communication Services answers the same words.
    pytest.param(
        "auth",
        535,
        "5.7.3 Authentication unsuccessful",
        "auth_failed",
        M365_OR_ACS,
        id="m365-or-acs-5.7.3",
    ),
    pytest.param(
        "auth",
        535,
        "5.7.3 Authentication unsuccessful [smtp.azurecomm.net]",
        "auth_failed",
        ACS,
        id="acs-5.7.3",
    ),
    # Exchange Team blog, basic-auth retirement for Client Submission.
    pytest.param(
        "auth",
        550,
        "5.7.30 Basic authentication is not supported for Client Submission.",
        "auth_disabled",
        M365,
        id="m365-5.7.30",
    ),
    # Microsoft Learn, "printers, scanners, and LOB applications": no login on 587.
    pytest.param(
        "mail",
        530,
        "5.7.57 Client not authenticated to send mail. [DM6PR11CA0012.namprd11.prod.outlook.com]",
        "auth_required",
        M365,
        id="m365-5.7.57",
    ),
    pytest.param(
        "mail",
        530,
        "5.7.57 SMTP; Client was not authenticated to send anonymous mail during MAIL FROM",
        "auth_required",
        M365,
        id="m365-5.7.57-anonymous",
    ),
    # Microsoft Learn, send-as permission missing.
    pytest.param(
        "mail",
        550,
        "5.7.60 SMTP; Client does not have permissions to send as this sender",
        "sender_not_authorized",
        M365,
        id="m365-5.7.60",
    ),
    # Exchange Team blog, "Changes coming to the SMTP Authenticated Submission client protocol".
    pytest.param(
        "connect",
        432,
        "4.3.2 Concurrent connections limit exceeded. Visit https://aka.ms/concurrent_sending "
        "for more information.",
        "rate_limited",
        M365,
        id="m365-concurrent-connections",
    ),
    pytest.param(
        "mail",
        432,
        "4.3.2 STOREDRV.ClientSubmit; sender thread limit exceeded",
        "rate_limited",
        M365,
        id="m365-sender-thread-limit",
    ),
    # Exchange Online sending limits (submission quota).
    pytest.param(
        "data",
        554,
        "5.2.0 STOREDRV.Submission.Exception:SubmissionQuotaExceededException; Failed to process "
        "message due to a permanent exception with message Cannot submit message.",
        "quota_exceeded",
        M365,
        id="m365-submission-quota",
    ),
    pytest.param(
        "data",
        550,
        "5.1.90 Your message can't be sent because you've reached your daily limit for message "
        "recipients.",
        "quota_exceeded",
        M365,
        id="m365-daily-recipient-limit",
    ),
    pytest.param(
        "mail",
        550,
        "5.1.8 Access denied, bad outbound sender",
        "account_suspended",
        M365,
        id="m365-restricted-sender",
    ),
    # Direct send (mail.protection.outlook.com) to an outside recipient.
    pytest.param(
        "rcpt",
        550,
        "5.7.54 SMTP; Unable to relay recipient in non-accepted domain",
        "relay_denied",
        M365,
        id="m365-direct-send-outside",
    ),
    pytest.param(
        "rcpt",
        550,
        "5.7.64 TenantAttribution; Relay Access Denied",
        "relay_denied",
        M365,
        id="m365-connector-mismatch",
    ),
    # The recipient's Exchange mailbox is full (a delivery, not a submission, quota).
    pytest.param(
        "data",
        554,
        "5.2.2 mailbox full; STOREDRV.Deliver.Exception:QuotaExceededException."
        "MapiExceptionShutoffQuotaExceeded; Failed to process message",
        "mailbox_full",
        M365,
        id="m365-recipient-mailbox-full",
    ),
    # Directory-based edge blocking: the recipient does not exist in the tenant.
    pytest.param(
        "rcpt",
        550,
        "5.4.1 Recipient address rejected: Access denied. AS(201806281) "
        "[DM6NAM11FT012.eop-nam11.prod.protection.outlook.com]",
        "recipient_rejected",
        M365,
        id="m365-dbeb",
    ),
    # --- Gmail / Google Workspace (Google Workspace Admin Help, "Gmail SMTP errors and codes")
    pytest.param(
        "auth",
        534,
        "5.7.9 Application-specific password required. For more information, go to "
        "https://support.google.com/mail/?p=InvalidSecondFactor d2-20020a05600c - gsmtp",
        "app_password_required",
        GMAIL,
        id="gmail-app-password",
    ),
    pytest.param(
        "auth",
        534,
        "5.7.14 <https://accounts.google.com/signin/continue?sarp=1&scc=1&plt=AKgnsbs> Please "
        "log in via your web browser and\n5.7.14 then try again.\n5.7.14  Learn more at\n"
        "5.7.14  https://support.google.com/mail/answer/78754 a1sm123 - gsmtp",
        "app_password_required",
        GMAIL,
        id="gmail-web-login",
    ),
    pytest.param(
        "auth",
        535,
        "5.7.8 Username and Password not accepted. For more information, go to\n"
        "5.7.8  https://support.google.com/mail/?p=BadCredentials x12sm456 - gsmtp",
        "auth_failed",
        GMAIL,
        id="gmail-bad-credentials",
    ),
    pytest.param(
        "data",
        550,
        "5.4.5 Daily user sending limit exceeded. For more information on Gmail's sending "
        "limits, go to https://support.google.com/a/answer/166852 - gsmtp",
        "quota_exceeded",
        GMAIL,
        id="gmail-daily-limit",
    ),
    pytest.param(
        "rcpt",
        550,
        "5.4.5 Daily sending quota exceeded. - gsmtp",
        "quota_exceeded",
        GMAIL,
        id="gmail-daily-quota",
    ),
    pytest.param(
        "mail",
        530,
        "5.7.0 Must issue a STARTTLS command first. a1sm789 - gsmtp",
        "starttls_required",
        GMAIL,
        id="gmail-starttls-first",
    ),
    pytest.param(
        "mail",
        530,
        "5.7.0 Authentication Required. For more information, go to "
        "https://support.google.com/mail/?p=WantAuthError - gsmtp",
        "auth_required",
        GMAIL,
        id="gmail-auth-required",
    ),
    pytest.param(
        "rcpt",
        550,
        "5.1.1 The email account that you tried to reach does not exist. Please try "
        "double-checking the recipient's email address for typos or unnecessary spaces. - gsmtp",
        "recipient_rejected",
        GMAIL,
        id="gmail-no-such-user",
    ),
    pytest.param(
        "rcpt",
        550,
        "5.2.1 The email account that you tried to reach is disabled. - gsmtp",
        "recipient_rejected",
        GMAIL,
        id="gmail-recipient-disabled",
    ),
    pytest.param(
        "rcpt",
        452,
        "4.2.2 The email account that you tried to reach is over quota. - gsmtp",
        "mailbox_full",
        GMAIL,
        id="gmail-over-quota",
    ),
    pytest.param(
        "data",
        552,
        "5.3.4 Your message exceeded Google's message size limits. - gsmtp",
        "message_too_large",
        GMAIL,
        id="gmail-too-large",
    ),
    pytest.param(
        "connect",
        421,
        "4.7.0 Temporary System Problem.  Try again later (WS). - gsmtp",
        "server_unavailable",
        GMAIL,
        id="gmail-temporary-problem",
    ),
    pytest.param(
        "rcpt",
        450,
        "4.2.1 The user you are trying to contact is receiving mail too quickly. Please resend "
        "your message at a later time. - gsmtp",
        "rate_limited",
        GMAIL,
        id="gmail-receiving-too-quickly",
    ),
    # --- Amazon SES (Amazon SES Developer Guide; AWS re:Post) ---------------------------------
    pytest.param(
        "data",
        554,
        "Message rejected: Email address is not verified. The following identities failed the "
        "check in region US-EAST-1: no-reply@example.org",
        "sender_not_authorized",
        SES,
        id="ses-identity-not-verified",
    ),
    # Illustrative: a log line that says outright the recipient is the unverified one.
    pytest.param(
        "rcpt",
        554,
        "Message rejected: Email address is not verified: recipient address not verified "
        "(identities failed the check in region EU-WEST-1)",
        "recipient_rejected",
        SES,
        id="ses-sandbox-recipient",
    ),
    pytest.param(
        "data",
        454,
        "Throttling failure: Maximum sending rate exceeded.",
        "rate_limited",
        SES,
        id="ses-rate",
    ),
    pytest.param(
        "data",
        454,
        "Throttling failure: Daily message quota exceeded.",
        "quota_exceeded",
        SES,
        id="ses-daily-quota",
    ),
    pytest.param(
        "auth",
        535,
        "Authentication Credentials Invalid",
        "auth_failed",
        SES,
        id="ses-bad-credentials",
    ),
    pytest.param(
        "auth",
        530,
        "Must issue a STARTTLS command first",
        "starttls_required",
        None,
        id="ses-starttls-first",
    ),
    pytest.param(
        "data",
        554,
        "Access denied: User 'arn:aws:iam::123456789012:user/ses-smtp-user' is not authorized to "
        "perform 'ses:SendRawEmail' on resource 'arn:aws:ses:us-east-1:123456789012:identity/"
        "example.org'",
        "sender_not_authorized",
        SES,
        id="ses-iam-denied",
    ),
    # Illustrative (Amazon SES docs describe a paused account).
    pytest.param(
        "data",
        554,
        "Message rejected: Sending paused for this account.",
        "account_suspended",
        None,
        id="ses-sending-paused",
    ),
    # --- SendGrid (Twilio SendGrid docs, "SMTP Errors and Troubleshooting") -------------------
    pytest.param(
        "mail",
        550,
        "The from address does not match a verified Sender Identity. Mail cannot be sent until "
        "this error is resolved. Visit https://sendgrid.com/docs/for-developers/sending-email/"
        "sender-identity/ to see the Sender Identity requirements",
        "sender_not_authorized",
        SENDGRID,
        id="sendgrid-sender-identity",
    ),
    pytest.param(
        "mail",
        403,
        "You are not authorized to send from that email address",
        "sender_not_authorized",
        None,
        id="sendgrid-403-from",
    ),
    pytest.param(
        "auth",
        451,
        "Authentication failed: Maximum credits exceeded",
        "quota_exceeded",
        SENDGRID,
        id="sendgrid-credits",
    ),
    pytest.param(
        "auth",
        535,
        "Authentication failed: Bad username / password",
        "auth_failed",
        SENDGRID,
        id="sendgrid-bad-password",
    ),
    pytest.param(
        "mail",
        550,
        "Unauthenticated senders not allowed",
        "auth_required",
        SENDGRID,
        id="sendgrid-no-login",
    ),
    pytest.param(
        "data",
        452,
        "Too many recipients received this hour (throttled)",
        "rate_limited",
        None,
        id="sendgrid-throttled",
    ),
    # --- Mailgun, Postmark (illustrative wording, as users report it) --------------------------
    pytest.param(
        "rcpt",
        550,
        "Domain sandbox0123456789abcdef.mailgun.org is not allowed to send: Free accounts are for "
        "test purposes only. Please upgrade or add the address to authorized recipients in "
        "Account Settings.",
        "recipient_rejected",
        MAILGUN,
        id="mailgun-sandbox",
    ),
    pytest.param(
        "auth",
        535,
        "5.7.0 Mailgun is not loving your login or password",
        "auth_failed",
        MAILGUN,
        id="mailgun-login",
    ),
    pytest.param(
        "mail",
        550,
        "5.7.1 The From address is not a confirmed Sender Signature on this Postmark server",
        "sender_not_authorized",
        POSTMARK,
        id="postmark-sender-signature",
    ),
    # --- Generic servers (RFC 5321 / 3463 / 4954, Postfix, Exim, Exchange, Postgrey) ----------
    pytest.param(
        "rcpt",
        550,
        "5.1.1 <nobody@example.org>: Recipient address rejected: User unknown in virtual "
        "mailbox table",
        "recipient_rejected",
        None,
        id="postfix-user-unknown",
    ),
    pytest.param(
        "rcpt", 551, "User not local; please try <a@example.net>", "unknown", None, id="551"
    ),
    pytest.param(
        "rcpt",
        553,
        "5.1.0 <bad@@example.org>: Address rejected",
        "recipient_rejected",
        None,
        id="553-address-rejected",
    ),
    pytest.param(
        "rcpt",
        550,
        "No such user here",
        "recipient_rejected",
        None,
        id="no-such-user",
    ),
    pytest.param(
        "rcpt",
        554,
        "5.7.1 <someone@example.net>: Relay access denied",
        "relay_denied",
        None,
        id="postfix-relay-denied",
    ),
    pytest.param(
        "rcpt",
        550,
        "5.7.1 Unable to relay for someone@example.net",
        "relay_denied",
        None,
        id="exchange-unable-to-relay",
    ),
    pytest.param(
        "rcpt",
        550,
        "5.7.1 Relaying denied. IP name possibly forged [192.0.2.10]",
        "relay_denied",
        None,
        id="relaying-denied",
    ),
    pytest.param(
        "rcpt",
        450,
        "4.2.0 <a@example.org>: Recipient address rejected: Greylisted, see "
        "http://postgrey.schweikert.ch/help/example.org.html",
        "greylisted",
        None,
        id="postgrey",
    ),
    pytest.param(
        "rcpt", 451, "4.7.1 Please try again later", "greylisted", None, id="milter-greylist"
    ),
    pytest.param("rcpt", 552, "5.2.2 Mailbox full", "mailbox_full", None, id="552-mailbox-full"),
    pytest.param(
        "rcpt", 452, "4.2.2 Mailbox over quota", "mailbox_full", None, id="452-over-quota"
    ),
    pytest.param(
        "data",
        552,
        "5.3.4 Message size exceeds fixed limit",
        "message_too_large",
        None,
        id="552-size",
    ),
    pytest.param(
        "mail",
        552,
        "5.2.3 Message size exceeds fixed maximum message size",
        "message_too_large",
        None,
        id="552-5.2.3",
    ),
    pytest.param(
        "auth",
        454,
        "4.7.0 Temporary authentication failure",
        "server_unavailable",
        None,
        id="454-temporary",
    ),
    pytest.param(
        "auth",
        454,
        "4.7.0 Too many login attempts, please try again later.",
        "rate_limited",
        None,
        id="454-too-many",
    ),
    pytest.param(
        "auth",
        504,
        "5.7.4 Unrecognized authentication type",
        "auth_unsupported",
        None,
        id="504-unrecognized",
    ),
    pytest.param(
        "auth", 502, "5.5.1 Command not implemented", "auth_unsupported", None, id="502-auth"
    ),
    pytest.param(
        "auth",
        503,
        "5.5.1 Error: authentication not enabled",
        "auth_unsupported",
        None,
        id="postfix-auth-not-enabled",
    ),
    pytest.param(
        "auth",
        534,
        "5.7.9 Authentication mechanism is too weak",
        "auth_unsupported",
        None,
        id="rfc4954-too-weak",
    ),
    pytest.param(
        "auth",
        535,
        "5.7.8 Authentication credentials invalid",
        "auth_failed",
        None,
        id="rfc4954-535",
    ),
    pytest.param("auth", 535, "Incorrect authentication data", "auth_failed", None, id="exim-535"),
    pytest.param(
        "mail", 530, "5.7.0 Authentication required", "auth_required", None, id="530-auth"
    ),
    pytest.param(
        "auth",
        538,
        "5.7.11 Encryption required for requested authentication mechanism",
        "starttls_required",
        None,
        id="rfc4954-538",
    ),
    pytest.param(
        "starttls",
        454,
        "4.7.0 TLS not available due to local problem",
        "starttls_unavailable",
        None,
        id="starttls-not-available",
    ),
    pytest.param(
        "connect",
        421,
        "4.7.0 mx.example.org Error: too many connections from 192.0.2.10",
        "rate_limited",
        None,
        id="421-too-many-connections",
    ),
    pytest.param(
        "data",
        421,
        "4.7.0 Message rate exceeded, try again later",
        "rate_limited",
        None,
        id="421-rate",
    ),
    pytest.param(
        "connect",
        421,
        "mx.example.org Service not available, closing transmission channel",
        "server_unavailable",
        None,
        id="421-unavailable",
    ),
    pytest.param(
        "connect",
        554,
        "5.7.0 No SMTP service here",
        "server_unavailable",
        None,
        id="554-no-service",
    ),
    pytest.param(
        "data",
        451,
        "4.3.0 Mail server temporarily rejected message.",
        "server_unavailable",
        None,
        id="451-4.3.0",
    ),
    pytest.param(
        "data",
        451,
        "Temporary local problem - please try later",
        "server_unavailable",
        None,
        id="451-temporary-local",
    ),
    pytest.param(
        "mail",
        553,
        "5.7.1 <app@example.org>: Sender address rejected: not owned by user mailer",
        "sender_not_authorized",
        None,
        id="postfix-not-owned",
    ),
    pytest.param(
        "mail",
        550,
        "5.7.1 Sender rejected by policy",
        "sender_not_authorized",
        None,
        id="550-sender-rejected",
    ),
    pytest.param(
        "mail",
        550,
        "5.7.1 Your account has been disabled",
        "account_suspended",
        None,
        id="account-disabled",
    ),
    pytest.param(
        "data",
        554,
        "Account suspended due to spam complaints",
        "account_suspended",
        None,
        id="account-suspended",
    ),
    pytest.param(
        "data",
        503,
        "5.5.1 Error: need RCPT command",
        "protocol_error",
        None,
        id="503-sequence",
    ),
    # Fallbacks: the class decides.
    pytest.param("rcpt", 450, "4.7.1 Client host rejected", "unknown", None, id="4xx-unknown"),
    pytest.param("data", 554, "5.6.0 Something odd happened", "unknown", None, id="5xx-unknown"),
    # An IP address must not be read as an enhanced status code ("10.5.1.1" is not 5.1.1).
    pytest.param("rcpt", 550, "Rejected by 10.5.1.1 policy", "unknown", None, id="ip-not-enhanced"),
    pytest.param("data", 250, "2.0.0 Ok: queued as 4F1B2", "protocol_error", None, id="2xx"),
    pytest.param("ehlo", 0, "HTTP/1.1 400 Bad Request", "protocol_error", None, id="not-smtp"),
    pytest.param("ehlo", 600, "what", "protocol_error", None, id="600"),
    pytest.param("ehlo", 199, "what", "protocol_error", None, id="199"),
]


@pytest.mark.parametrize(("stage", "reply_code", "text", "code", "provider"), CASES)
def test_classify_reply(
    stage: str, reply_code: int, text: str, code: str, provider: str | None
) -> None:
    result = classify_reply(reply_code, text, stage=stage)
    assert isinstance(result, Classified)
    assert (result.code, result.provider) == (code, provider)
    assert result.code in CODES


def test_every_rule_names_a_catalogue_code() -> None:
    assert {rule.code for rule in RULES} <= set(CODES)
    for rule in RULES:
        # A rule that explains a situation explains it completely.
        assert (rule.cause is None) == (rule.fix is None), rule


def test_provider_specific_words_replace_the_catalogue() -> None:
    relay = classify_reply(530, "5.7.57 Client not authenticated to send mail.", stage="mail")
    assert relay.cause is not None
    assert relay.fix is not None
    assert "smtp.office365.com" in relay.cause
    assert "mail.protection.outlook.com:25" in relay.fix
    assert "connector" in relay.fix

    acs = classify_reply(535, "5.7.3 Authentication unsuccessful", stage="auth")
    assert acs.cause is not None
    assert "<resource>.<app id>.<tenant id>" in acs.cause
    assert "SMTP Username" in acs.cause
    assert "role" in acs.cause

    ses = classify_reply(
        554,
        "Message rejected: Email address is not verified. The following identities failed the "
        "check in region US-EAST-1: no-reply@example.org",
        stage="data",
    )
    assert ses.cause is not None
    assert "sandbox" in ses.cause

    sendgrid = classify_reply(535, "Authentication failed: Bad username / password", stage="auth")
    assert sendgrid.cause is not None
    assert "apikey" in sendgrid.cause


def test_generic_reply_keeps_catalogue_words() -> None:
    result = classify_reply(550, "5.1.1 User unknown", stage="rcpt")
    assert result == Classified("recipient_rejected", None, None, None)
    diagnosis = diagnose(
        result.code,
        stage="rcpt",
        reply="550 5.1.1 User unknown",
        reply_code=550,
        cause=result.cause,
        fix=result.fix,
    )
    assert diagnosis.cause == CODES["recipient_rejected"].cause
    assert diagnosis.transient is False


def test_provider_named_only_in_text_gets_provider_words() -> None:
    result = classify_reply(535, "5.7.0 Mailgun is not loving your login or password", stage="auth")
    assert (result.code, result.provider) == ("auth_failed", MAILGUN)
    assert result.cause is not None
    assert "API key" in result.cause
    assert result.fix is not None
    assert "SMTP credentials" in result.fix


def test_xoauth2_login_failure_is_a_token_rejection() -> None:
    result = classify_reply(535, "5.7.3 Authentication unsuccessful", stage="auth", xoauth2=True)
    assert result.code == "oauth_token_rejected"
    assert result.cause is not None
    assert "SMTP.SendAsApp" in result.cause

    # The SMTP AUTH switch blocks OAuth2 logins as well: still auth_disabled.
    disabled = classify_reply(
        535,
        "5.7.139 Authentication unsuccessful, SmtpClientAuthentication is disabled for the "
        "Mailbox.",
        stage="auth",
        xoauth2=True,
    )
    assert disabled.code == "auth_disabled"

    plain = classify_reply(535, "5.7.3 Authentication unsuccessful", stage="auth")
    assert plain.code == "auth_failed"


def test_enhanced_code_of_the_reply_class_wins() -> None:
    # A version number like "2.10.1" must not hide the real enhanced code.
    result = classify_reply(550, "Postfix 2.10.1 says 5.1.1 user unknown", stage="rcpt")
    assert result.code == "recipient_rejected"


def test_stage_changes_the_meaning() -> None:
    # The same words: a sender problem at MAIL FROM, a recipient problem at RCPT TO.
    assert classify_reply(550, "5.1.0 Address rejected", stage="mail").code == (
        "sender_not_authorized"
    )
    assert classify_reply(550, "5.1.0 Address rejected", stage="rcpt").code == (
        "recipient_rejected"
    )
    # "quota" alone: our sending quota during submission, their mailbox at delivery.
    assert classify_reply(550, "Quota exceeded", stage="mail").code == "quota_exceeded"
    assert classify_reply(552, "Quota exceeded", stage="rcpt").code == "mailbox_full"


def test_detect_provider() -> None:
    assert detect_provider("... - gsmtp") == GMAIL
    assert detect_provider("[AM0PR02MB1234.eurprd02.prod.outlook.com]") == M365
    assert detect_provider("smtp.azurecomm.net") == ACS
    assert detect_provider("Queued mail for delivery") is None


# --- the catalogue ---------------------------------------------------------------------------


def test_catalogue_has_exactly_the_spec_codes_in_order() -> None:
    assert tuple(CODES) == DOCUMENTED_CODES
    assert len(CODES) == 35


@pytest.mark.parametrize("code", DOCUMENTED_CODES)
def test_every_entry_explains_itself(code: str) -> None:
    entry = CODES[code]
    assert isinstance(entry, Entry)
    assert entry.code == code
    for words in (entry.cause, entry.fix):
        assert words.strip() == words
        assert len(words) > 20
        assert words.endswith("."), words
        assert len(words) <= 320, words


@pytest.mark.parametrize(
    ("code", "needles"),
    [
        ("tls_wrong_mode", ("smtps://", "465", "smtp://", "587")),
        ("tls_hostname_mismatch", ("server_name",)),
        ("starttls_required", ("disable_starttls=true",)),
        ("connection_timeout", ("25", "587")),
        ("auth_disabled", ("Microsoft 365", "SMTP AUTH", "2026", "oauth2")),
        ("app_password_required", ("Gmail", "app password", "2-step")),
    ],
)
def test_entries_name_the_concrete_fix(code: str, needles: tuple[str, ...]) -> None:
    entry = CODES[code]
    text = f"{entry.cause} {entry.fix}".lower()
    for needle in needles:
        assert needle.lower() in text, (code, needle)


@pytest.mark.parametrize(
    ("code", "reply_code", "transient"),
    [
        ("mailbox_full", 452, True),
        ("mailbox_full", 552, False),
        ("mailbox_full", None, False),
        ("unknown", 451, True),
        ("unknown", 554, False),
        ("unknown", None, False),
        ("http_error", 429, True),
        ("http_error", 503, True),
        ("http_error", 400, False),
        ("http_error", 401, False),
        ("rate_limited", 554, True),
        ("auth_failed", 454, False),
        ("quota_exceeded", 451, False),
        ("greylisted", None, True),
        ("server_unavailable", 421, True),
        ("expired", None, False),
    ],
)
def test_transient_follows_the_spec(code: str, reply_code: int | None, transient: bool) -> None:
    assert diagnose(code, reply_code=reply_code).transient is transient
    assert is_transient(code, reply_code) is transient


def test_diagnose_defaults_and_overrides() -> None:
    default = diagnose("auth_failed", stage="auth", reply="535 5.7.8 nope", reply_code=535)
    assert default == Diagnosis(
        code="auth_failed",
        transient=False,
        cause=CODES["auth_failed"].cause,
        fix=CODES["auth_failed"].fix,
        stage="auth",
        reply="535 5.7.8 nope",
    )
    custom = diagnose("auth_failed", cause="Wrong key.", fix="Use the other key.")
    assert (custom.cause, custom.fix) == ("Wrong key.", "Use the other key.")
    assert custom.stage is None
    assert custom.reply is None
    assert Diagnosis.from_json(default.to_json()) == default


def test_diagnose_refuses_codes_outside_the_vocabulary() -> None:
    with pytest.raises(KeyError):
        diagnose("no_such_code")
