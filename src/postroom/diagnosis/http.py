"""HTTP delivery failures -> :class:`Diagnosis`, in HTTP words.

A status answer is ``http_error``: 429 and 5xx are transient, every other status (4xx, and a
3xx, which Postroom does not follow) is permanent; ``reply`` is the status and the start of the
response body. A failure before any answer gets the connection and TLS codes
(``dns_unresolved``, ``connection_refused``, ``connection_timeout``, ``tls_*``,
``server_unavailable``) and ``target_forbidden``; a Jsonnet body that fails is
``template_error`` with Jsonnet's message. Where the URL names a known provider (SendGrid,
Mailgun, Postmark), the fix says what that provider expects.
"""

from __future__ import annotations

import dataclasses
import ssl

import httpx

from postroom.diagnosis.catalogue import HOSTNAME_MISMATCH, diagnose
from postroom.errors import HttpDeliveryError, exception_chain
from postroom.models import Diagnosis

_PROVIDERS = {
    "sendgrid.com": "SendGrid",
    "sendgrid.net": "SendGrid",
    "mailgun.net": "Mailgun",
    "mailgun.org": "Mailgun",
    "postmarkapp.com": "Postmark",
}
_AUTH_FIX = {
    "SendGrid": "Use auth {type: api_key, config: {name: Authorization, value: Bearer <API key>, "
    "in: header}} with a SendGrid API key that has the Mail Send permission.",
    "Mailgun": "Use auth {type: basic_auth, config: {user: api, password: <private API key>}}; "
    "an EU domain's key works only on api.eu.mailgun.net.",
    "Postmark": "Send the Server API token (not the Account token) in the X-Postmark-Server-Token "
    "header: auth {type: api_key, config: {name: X-Postmark-Server-Token, value: <token>}}.",
}
_WRONG_MODE = {"WRONG_VERSION_NUMBER", "RECORD_LAYER_FAILURE", "HTTP_REQUEST", "UNKNOWN_PROTOCOL"}
_VERSION = {
    "UNSUPPORTED_PROTOCOL",
    "TLSV1_ALERT_PROTOCOL_VERSION",
    "NO_PROTOCOLS_AVAILABLE",
    "WRONG_SSL_VERSION",
}


def provider_of(text: str) -> str | None:
    """The provider a URL or message names (``SendGrid``, ``Mailgun``, ``Postmark``), if any."""
    lowered = text.lower()
    return next((name for host, name in _PROVIDERS.items() if host in lowered), None)


def _status_words(status: int, provider: str | None) -> tuple[str | None, str | None]:
    who = provider or "The HTTP API"
    whose = f"{provider}'s" if provider else "the provider's"
    if 300 <= status < 400:
        return (
            f"{who} answered with a redirect ({status}); Postroom does not follow redirects, "
            "so a request never ends up somewhere the configuration does not name.",
            "Set courier.http.request_config.url to the address the redirect points to (shown "
            "in the reply), often just the https:// form of the same URL.",
        )
    if status in {400, 422}:
        return (
            f"{who} refused the request body: it is not the shape its API expects.",
            f"Compare the Jsonnet body with {whose} API reference; the reply names the field "
            "it objects to.",
        )
    if status == 401:
        return (
            f"{who} did not accept the credentials: the API key is missing, wrong or revoked.",
            _AUTH_FIX.get(
                provider or "",
                "Check courier.http.request_config.auth: the key's value, and whether the API "
                "wants it in a header or a cookie, or as basic_auth.",
            ),
        )
    if status == 403:
        return (
            f"{who} accepted the credentials but refuses to send: the key may lack the "
            "permission to send mail, or the sender address or domain is not verified.",
            f"Give the API key permission to send mail and verify the From address or domain "
            f"with {provider or 'the provider'}.",
        )
    if status == 404:
        return (
            f"The URL does not exist on {whose} API.",
            "Check courier.http.request_config.url"
            + (
                " (your sending domain belongs in the path, and EU domains use api.eu.mailgun.net)."
                if provider == "Mailgun"
                else " against the API reference."
            ),
        )
    if status == 405:
        return (
            f"{who} does not accept this HTTP method at that URL.",
            "Set courier.http.request_config.method to the one the API reference gives "
            "(usually POST).",
        )
    if status == 413:
        return (
            f"{who} says the request is too large.",
            "Make the email smaller; identity emails normally stay far below any limit.",
        )
    if status == 415:
        return (
            f"{who} does not accept the request's Content-Type.",
            "Set the Content-Type header to what the API expects: application/json, or "
            "application/x-www-form-urlencoded with a body that produces a flat object.",
        )
    if status == 429:
        return (
            f"{who} is rate limiting: too many requests for now.",
            "Postroom retries by itself, no sooner than the Retry-After the provider asks for; "
            "set courier.rate_limits below the provider's limit so it stops happening.",
        )
    if 500 <= status <= 599:
        return (
            f"{who} had a problem on its side ({status}) and could not take the message now.",
            f"Postroom retries by itself; if it keeps happening, check {whose} status page.",
        )
    return None, None


def _tls(exc: HttpDeliveryError) -> Diagnosis | None:
    for err in exception_chain(exc):
        if isinstance(err, ssl.SSLCertVerificationError):
            if err.verify_code in HOSTNAME_MISMATCH:
                return diagnose(
                    "tls_hostname_mismatch",
                    stage="tls",
                    fix="Use the host name written on the provider's certificate in "
                    "request_config.url, not an IP address or an alias.",
                )
            return diagnose(
                "tls_certificate_untrusted",
                stage="tls",
                fix="Add the issuing CA to the system trust store (or point SSL_CERT_FILE at "
                "it); Postroom never skips certificate checks for HTTP delivery.",
            )
    for err in exception_chain(exc):
        if isinstance(err, ssl.SSLError):
            reason = str(getattr(err, "reason", "") or "")
            if reason in _VERSION:
                return diagnose("tls_version_unsupported", stage="tls")
            if reason in _WRONG_MODE:
                return diagnose(
                    "tls_wrong_mode",
                    stage="tls",
                    cause="The URL says https://, but the server on that port speaks plain "
                    "HTTP (or another protocol).",
                    fix="Use http:// for that port, or the port where the server speaks HTTPS "
                    "(443 by default).",
                )
            return diagnose("tls_wrong_mode", stage="tls")
    return None


def diagnose_http(exc: HttpDeliveryError) -> Diagnosis:
    """Explain an HTTP delivery failure with one documented code."""
    provider = provider_of(str(exc))
    reply = exc.reply
    if exc.hint == "template_error":
        message = str(exc).removeprefix("the Jsonnet body failed: ")
        limited = any(getattr(err, "limit", None) for err in exception_chain(exc))
        fix = (
            "Make the body do less work (no unbounded recursion, no huge strings); a body has "
            "about a second, 256 MiB of memory and 256 KiB of output."
            if limited
            else "Fix the Jsonnet body at the place the message names (often a missing field: "
            'test with `"key" in ctx.template_data`), then retry the message.'
        )
        return diagnose(
            "template_error",
            stage="render",
            cause=f"The Jsonnet request body failed: {message}.",
            fix=fix,
        )
    if exc.stage == "render":  # the evaluator could not run at all: worth another try
        found = diagnose(
            "unknown",
            stage="render",
            cause=f"The Jsonnet evaluator could not run: {exc}.",
            fix="Check that the machine has free memory and processes; the message is retried.",
        )
        return dataclasses.replace(found, transient=True)
    if exc.hint == "target_forbidden":
        return diagnose(
            "target_forbidden",
            stage=exc.stage,
            cause=f"The request was not sent: {exc}.",
            fix="Use the provider's public host name in request_config.url, or set "
            "serve.allow_private_targets: true in the configuration file if reaching an "
            "internal service is intended.",
        )
    if exc.reply_code is not None:
        status_cause, status_fix = _status_words(exc.reply_code, provider)
        return diagnose(
            "http_error",
            stage=exc.stage,
            reply=reply,
            reply_code=exc.reply_code,
            cause=status_cause,
            fix=status_fix,
        )
    if exc.hint == "dns_unresolved":
        return diagnose(
            "dns_unresolved",
            stage="dns",
            cause=f"{str(exc)[:1].upper()}{str(exc)[1:]}: the name in request_config.url may be "
            "misspelt, or DNS does not work on the machine running Postroom.",
            fix="Check the host in courier.http.request_config.url for typos and try "
            "`nslookup <host>` on the machine running Postroom.",
        )
    tls = _tls(exc) if exc.stage in {"tls", "connect"} else None
    if tls is not None:
        return tls
    chain = exception_chain(exc)
    timed_out = exc.hint == "connection_timeout" or any(
        isinstance(e, (TimeoutError, httpx.TimeoutException)) for e in chain
    )
    if timed_out:
        if exc.stage == "connect":
            return diagnose(
                "connection_timeout",
                stage="connect",
                fix="Check the host and port in request_config.url, and that the firewall "
                "allows outgoing HTTPS to it; Postroom retries by itself.",
            )
        return diagnose(
            "connection_timeout",
            stage=exc.stage,
            cause="The HTTP API accepted the connection but did not answer within "
            "courier.http.timeout.",
            fix="Postroom retries by itself; if the provider is often this slow, raise "
            "courier.http.timeout (its status page may say more).",
        )
    if exc.hint == "connection_refused" or any(
        isinstance(e, ConnectionRefusedError) or "refused" in str(e).lower() for e in chain
    ):
        return diagnose(
            "connection_refused",
            stage="connect",
            cause="The host exists but nothing accepts connections on the URL's port.",
            fix="Check the port in request_config.url (https:// means 443 and http:// 80 "
            "unless the URL gives one) and that the service is running.",
        )
    if exc.hint:
        return diagnose(exc.hint, stage=exc.stage, reply=reply, reply_code=exc.reply_code)
    return diagnose(
        "server_unavailable",
        stage=exc.stage,
        cause=f"The connection to the HTTP API failed before it answered: {exc}.",
        fix="Postroom retries by itself; if it keeps happening, check the provider's status "
        "page and the network between Postroom and the API.",
    )
