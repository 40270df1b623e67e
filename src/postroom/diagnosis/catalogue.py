"""The documented diagnosis codes as data: every code with its retry rule and plain words.

Pure data and two small functions, no I/O. ``diagnose`` turns a code (plus what is known about
the failure) into a :class:`postroom.models.Diagnosis`.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from postroom.codes import DiagnosisCode
from postroom.models import Diagnosis


@dataclass(frozen=True, slots=True)
class Entry:
    """One code of the vocabulary.

    ``transient`` is ``True`` (retry), ``False`` (give up) or ``None`` when it depends on the
    reply class: 4xx is transient and 5xx permanent (for ``http_error``: 429 and 5xx are
    transient, other 4xx are not).
    """

    code: DiagnosisCode
    transient: bool | None
    cause: str
    fix: str


_ENTRIES: tuple[Entry, ...] = (
    Entry(
        "dns_unresolved",
        True,
        "The server name in the connection URI could not be turned into an address: it may be "
        "misspelt, or DNS does not work on the machine running Postroom.",
        "Check the host name in the URI for typos (compare it with the provider's settings page) "
        "and try `nslookup <host>` on the machine running Postroom.",
    ),
    Entry(
        "connection_refused",
        True,
        "The host exists but nothing accepts connections on that port, so the port is probably "
        "wrong or the mail service is down.",
        "Check the port: 587 goes with smtp:// (STARTTLS) and 465 with smtps:// (implicit TLS); "
        "confirm on the provider's settings page which ports it listens on.",
    ),
    Entry(
        "connection_timeout",
        True,
        "The server never answered, which usually means a firewall silently drops the traffic; "
        "many cloud providers block outgoing connections to port 25.",
        "Use port 587 (or 2525 where the provider offers it) instead of 25, and make sure the "
        "firewall or security group allows outgoing traffic to that port.",
    ),
    Entry(
        "tls_wrong_mode",
        False,
        "Postroom and the server disagree on how encryption starts: implicit TLS was spoken to a "
        "STARTTLS port, or plain SMTP to a port that expects TLS from the first byte.",
        "Use smtps:// for port 465 (implicit TLS) and smtp:// for 587 (STARTTLS).",
    ),
    Entry(
        "tls_certificate_untrusted",
        False,
        "The server's certificate is not signed by an authority this machine trusts: it is "
        "self-signed, issued by a private CA, or sent without its intermediate certificates.",
        "Add the issuing CA to the system trust store (or point SSL_CERT_FILE at it); for a test "
        "server only, add skip_ssl_verify=true to the URI.",
    ),
    Entry(
        "tls_hostname_mismatch",
        False,
        "The certificate is valid but was issued for a different name than the host in the URI, "
        "which happens when connecting by IP address or through an alias.",
        "Connect using the name written on the certificate, or add server_name=<that name> to the "
        "URI so the TLS check uses it.",
    ),
    Entry(
        "tls_version_unsupported",
        False,
        "Postroom and the server share no TLS version: Postroom requires TLS 1.2 or newer and the "
        "server offers only older ones (or the other way round).",
        "Enable TLS 1.2 or 1.3 on the mail server; older versions are insecure and Postroom does "
        "not fall back to them.",
    ),
    Entry(
        "starttls_unavailable",
        False,
        "The URI asks for STARTTLS, but the server did not offer it, so the connection would have "
        "stayed unencrypted.",
        "Check host and port (submission port 587 normally offers STARTTLS) or use smtps:// on "
        "465; use disable_starttls=true only for a trusted relay on a private network.",
    ),
    Entry(
        "starttls_required",
        False,
        "The server insists on encryption before it continues, but the URI turned STARTTLS off.",
        "Remove disable_starttls=true from the connection URI so Postroom upgrades the connection "
        "with STARTTLS.",
    ),
    Entry(
        "auth_failed",
        False,
        "The server rejected the username or password.",
        "Check the username and password in the URI (percent-encode special characters: @ as "
        "%40, : as %3A, / as %2F) and that they are the provider's SMTP credentials.",
    ),
    Entry(
        "auth_disabled",
        False,
        "The provider has switched off password (basic) login over SMTP for this account; "
        'Microsoft 365 controls "SMTP AUTH" per tenant and per mailbox and plans to turn basic '
        "SMTP AUTH off by default for existing tenants at the end of 2026.",
        "Ask a Microsoft 365 admin to enable Authenticated SMTP for this mailbox (and not disable "
        "it for the tenant), or better, configure oauth2 (XOAUTH2) so no password is needed.",
    ),
    Entry(
        "app_password_required",
        False,
        "The account's normal password cannot be used by apps: Gmail and Google Workspace accept "
        "only an app password (which needs 2-step verification) or OAuth2 over SMTP.",
        "Turn on 2-Step Verification for the Google account, create an app password at "
        "myaccount.google.com/apppasswords and use it as the SMTP password, or configure oauth2.",
    ),
    Entry(
        "auth_required",
        False,
        "The server wants a login before it accepts mail, and none was given.",
        "Put the SMTP username and password in the URI (smtp://user:pass@host:587/) or configure "
        "oauth2; for login-free sending use the provider's relay host, not its submission host.",
    ),
    Entry(
        "auth_unsupported",
        False,
        "The server offers no login method Postroom can use: it advertises no AUTH at all, or "
        "only mechanisms Postroom does not speak.",
        "Connect to the submission port (587 or 465) rather than relay port 25, and keep TLS on: "
        "many servers offer AUTH only after STARTTLS.",
    ),
    Entry(
        "oauth_token_rejected",
        False,
        "The server refused the OAuth2 access token, so the app registration, its permissions or "
        "its access to this mailbox are not set up the way the provider expects.",
        "Check the oauth2 settings (tenant_id, client_id, secret, scope) and that the app has "
        "been granted SMTP sending rights for this mailbox by the provider's admin.",
    ),
    Entry(
        "sender_not_authorized",
        False,
        "The account Postroom logs in with may not send with this From address, or the address "
        "or its domain has not been verified with the provider.",
        "Set from_address to an address the account owns or has verified with the provider, or "
        'give the login "Send As" rights for that address.',
    ),
    Entry(
        "sender_invalid",
        False,
        "The server cannot read the sender address Postroom gave it (MAIL FROM): "
        "from_address is not a plain, valid email address.",
        "Set courier.smtp.from_address to a bare address such as no-reply@example.org (put the "
        "display name in from_name, not in the address) and check it for stray spaces, quotes "
        "or angle brackets.",
    ),
    Entry(
        "account_suspended",
        False,
        "The provider has blocked or paused the sending account, usually because of spam "
        "complaints, bounces or billing.",
        "Sign in to the provider's dashboard, read the notice, and resolve it with their support; "
        "retrying will not help until the account is reinstated.",
    ),
    Entry(
        "ip_blocklisted",
        None,
        "The receiving server refuses the connection's IP address because it is on a DNS "
        "blocklist (such as Spamhaus); the message itself was not judged.",
        "Look the sending IP up on the blocklist the reply names and follow its removal "
        "procedure (a dynamic or residential address will not be removed), or send through "
        "your provider's relay or an authenticated submission port whose IP is not listed.",
    ),
    Entry(
        "recipient_rejected",
        False,
        "The receiving side says the recipient address does not exist or may not receive this "
        "mail.",
        "Check the address for typos; if it is right, the mailbox was removed or does not accept "
        "your mail, and the person needs to give another address.",
    ),
    Entry(
        "relay_denied",
        None,
        "The server delivers mail for other domains only for senders it trusts, and it does not "
        "trust this connection.",
        "Log in with SMTP credentials (user:pass in the URI), or ask the server's admin to allow "
        "relaying from this machine's IP address or certificate. A temporary (4xx) refusal "
        "(Postfix's defer_unauth_destination) is retried.",
    ),
    Entry(
        "mailbox_full",
        None,
        "The recipient's mailbox is over its storage quota.",
        "Nothing to change on your side: a temporary (4xx) refusal is retried, a permanent (5xx) "
        "one needs the recipient to free up space first.",
    ),
    Entry(
        "message_too_large",
        False,
        "The message is bigger than the server accepts.",
        "Make the email smaller (fewer or smaller inline images, no attachments); identity emails "
        "normally stay far below any provider's limit.",
    ),
    Entry(
        "rate_limited",
        True,
        "The provider is slowing you down: too many messages, connections or logins in a short "
        "time.",
        "Postroom retries later by itself; set courier.rate_limits below the provider's documented "
        "limit and lower the worker concurrency so it stops happening.",
    ),
    Entry(
        "quota_exceeded",
        False,
        "A daily or plan sending quota is used up, so the provider refuses more mail for now.",
        "Wait for the quota to reset (usually within 24 hours) and retry the abandoned messages; "
        "raise the plan's limit and set courier.rate_limits to match it.",
    ),
    Entry(
        "greylisted",
        True,
        "The receiving server turned the message away for now as an anti-spam measure "
        "(greylisting) and expects it to be sent again a little later.",
        "Nothing to do while attempts remain: Postroom retries, and the retry is normally "
        "accepted after a few minutes.",
    ),
    Entry(
        "server_unavailable",
        True,
        "The server closed the connection or said it cannot take mail right now (busy, "
        "maintenance or an internal problem).",
        "Postroom retries automatically; if it keeps happening, check the provider's status page.",
    ),
    Entry(
        "http_error",
        None,
        "The HTTP email provider answered with an error status instead of accepting the message.",
        "Read the provider's answer: 401 or 403 mean a wrong or missing API key, 400 or 422 a "
        "request body it does not accept (check the Jsonnet body); 429 and 5xx are retried.",
    ),
    Entry(
        "template_error",
        False,
        "A template or the Jsonnet request body failed to render, so there was nothing to send.",
        "Fix the template or Jsonnet body named in the error (often a missing variable or a "
        "syntax error), then retry the message.",
    ),
    Entry(
        "target_forbidden",
        False,
        "The tenant's server address points to a private or loopback address, which tenants "
        "saved through the API may not use.",
        "Use the provider's public host name, or set serve.allow_private_targets: true in the "
        "configuration file if reaching an internal server is intended.",
    ),
    Entry(
        "settings_invalid",
        True,
        "The tenant's saved settings cannot be used right now (for example a stored credential "
        "no longer decrypts, or the settings break a rule of this Postroom version), so nothing "
        "was sent; other tenants are not affected.",
        "Save the tenant's settings again (the dashboard's tenant page or PUT /admin/tenants/<id>) "
        "or restore the secret in secrets.default; the message is retried until it expires.",
    ),
    Entry(
        "expired",
        False,
        "The message was not handed off before courier.message_ttl ran out, so it was given up: "
        "a late login or verification code is useless.",
        "Look at the earlier attempts for the real failure and fix that; raise "
        "courier.message_ttl only if late delivery is still useful.",
    ),
    Entry(
        "cancelled",
        False,
        "An operator cancelled the message before it was sent.",
        "Nothing to fix; retry the message if it should go out after all.",
    ),
    Entry(
        "protocol_error",
        False,
        "The server answered something that makes no sense at this point of the SMTP "
        "conversation, which usually means the port is not a mail server or something in between "
        "rewrites the traffic.",
        "Check that host and port point to a mail server (not a web port) and that no proxy or "
        "antivirus intercepts the connection.",
    ),
    Entry(
        "unknown",
        None,
        "The failure did not match any known pattern.",
        "Read the server's reply for details; a temporary (4xx) reply is retried and a permanent "
        "(5xx) one is not.",
    ),
)

CODES: dict[DiagnosisCode, Entry] = {entry.code: entry for entry in _ENTRIES}
"""Every code of the documented diagnosis vocabulary, in the order of its table."""


def entry_of(code: str) -> Entry | None:
    """The catalogue entry of a code read back from storage, or None for a code that is no
    longer in the vocabulary."""
    return _BY_NAME.get(code)


_BY_NAME: dict[str, Entry] = {code: entry for code, entry in CODES.items()}


def _depends(code: DiagnosisCode, reply_code: int | None) -> bool:
    """Retry rule of the codes whose entry says ``None``."""
    if reply_code is None:
        return False
    if code == "http_error":
        return reply_code == 429 or 500 <= reply_code <= 599
    return 400 <= reply_code <= 499


HOSTNAME_MISMATCH = frozenset({62, 64})
"""``verify_code`` of a certificate for another name: X509_V_ERR_HOSTNAME_MISMATCH and
X509_V_ERR_IP_ADDRESS_MISMATCH (any other verification failure means it is not trusted)."""


def is_transient(code: DiagnosisCode, reply_code: int | None = None) -> bool:
    """Whether a failure with this code is worth retrying by default.

    Codes that depend on the reply class use ``reply_code``: 4xx retries, 5xx does not (for
    ``http_error``: 429 and 5xx retry, other statuses do not); without a reply code they do not
    retry. Raises ``KeyError`` for a code outside the vocabulary.
    """
    entry = CODES[code]
    if entry.transient is not None:
        return entry.transient
    return _depends(code, reply_code)


def diagnose(
    code: DiagnosisCode,
    *,
    stage: str | None = None,
    reply: str | None = None,
    reply_code: int | None = None,
    cause: str | None = None,
    fix: str | None = None,
) -> Diagnosis:
    """Build the :class:`Diagnosis` for ``code``.

    ``transient`` follows :func:`is_transient`. ``cause`` and ``fix`` default to the
    catalogue's plain words and are replaced when given (e.g. by a provider-specific
    explanation). ``stage`` and ``reply`` are carried as they are. Raises ``KeyError`` for a
    code outside the vocabulary, which is a programming error.
    """
    entry = CODES[code]
    return Diagnosis(
        code=entry.code,
        transient=is_transient(code, reply_code),
        cause=cause if cause is not None else entry.cause,
        fix=fix if fix is not None else entry.fix,
        stage=stage,
        reply=reply,
    )


# What to check when a temporary problem outlasted every attempt: the catalogue's fix says
# "Postroom retries", which is no longer true once the message is abandoned.
_AFTER_GIVING_UP: dict[str, str] = {
    "dns_unresolved": "Check the host name in the URI and DNS on the machine running Postroom "
    "(`nslookup <host>`).",
    "connection_refused": "Check that the server is running and listens on that port (587 for "
    "smtp://, 465 for smtps://).",
    "connection_timeout": "Check that the server is up and that the firewall or security group "
    "allows outgoing traffic to that port.",
    "rate_limited": "Set courier.rate_limits below the provider's documented limit and lower "
    "the worker concurrency.",
    "greylisted": "The receiving server kept deferring the message: raise courier.retry.max "
    "or courier.message_retries so that the attempts last longer than its delay.",
    "server_unavailable": "Check the provider's status page and the reply above; if the "
    "connection keeps dropping, look for a proxy or an idle timeout in between.",
    "mailbox_full": "The recipient's mailbox stayed full: the person needs to free up space.",
    "http_error": "Check the provider's status page and its answer above (429: send more "
    "slowly with courier.rate_limits; 5xx: an outage on their side).",
    "unknown": "Read the server's reply above for what it wants, and ask the provider or the "
    "server's admin when it is unclear.",
}


def gave_up(diagnosis: Diagnosis, *, attempts: int) -> Diagnosis:
    """``diagnosis`` of a temporary failure that outlasted all ``attempts``: the fix says the
    attempts ran out and what to check, instead of promising another try."""
    entry = entry_of(diagnosis.code)
    check = _AFTER_GIVING_UP.get(diagnosis.code) or (entry.fix if entry else "")
    tries = "The only attempt" if attempts == 1 else f"All {attempts} attempts"
    fix = (
        f"{tries} failed with this temporary problem, so the message was given up. {check} "
        "Then retry the message (`postroom messages retry <id>`, or Retry now in the dashboard)."
    )
    return Diagnosis(
        code=diagnosis.code,
        transient=diagnosis.transient,
        cause=diagnosis.cause,
        fix=fix,
        stage=diagnosis.stage,
        reply=diagnosis.reply,
    )


def diagnose_unexpected(exc: BaseException) -> Diagnosis:
    """The diagnosis of a failure that is a bug in Postroom (no reply, no known pattern):
    code ``unknown``, and transient, because the message did nothing wrong and a fixed or
    luckier attempt may deliver it."""
    return replace(
        diagnose(
            "unknown",
            cause=f"Postroom failed unexpectedly: {exc!r}.",
            fix="This is a bug in Postroom; the message will be retried. Please report it.",
        ),
        transient=True,
    )
