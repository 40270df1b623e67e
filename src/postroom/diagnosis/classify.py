"""Turn an exception from a transport (or the configuration) into a :class:`Diagnosis`.

Transports wrap library errors into :class:`~postroom.errors.DeliveryError` with the stage and
the server's reply; this module reads that evidence (the reply, the ``hint`` a transport gives
where the situation is structural, and the chained low-level error) and picks the code.
"""

from __future__ import annotations

import ssl
from typing import Any

import aiosmtplib

from postroom.codes import DiagnosisCode, Situation
from postroom.diagnosis.catalogue import HOSTNAME_MISMATCH, diagnose
from postroom.diagnosis.http import diagnose_http
from postroom.diagnosis.oauth import diagnose_oauth
from postroom.diagnosis.replies import classify_reply
from postroom.errors import (
    ConfigError,
    DeliveryError,
    HttpDeliveryError,
    OAuthError,
    TemplateError,
    exception_chain,
)
from postroom.models import Diagnosis

# OpenSSL reasons seen when one side speaks TLS and the other plain SMTP.
_WRONG_MODE_REASONS = {
    "WRONG_VERSION_NUMBER",
    "PACKET_LENGTH_TOO_LONG",
    "RECORD_LAYER_FAILURE",
    "HTTP_REQUEST",
    "UNKNOWN_PROTOCOL",
}
_VERSION_REASONS = {
    "UNSUPPORTED_PROTOCOL",
    "TLSV1_ALERT_PROTOCOL_VERSION",
    "NO_PROTOCOLS_AVAILABLE",
    "WRONG_SSL_VERSION",
}


# Situations a transport reports beyond its code (DeliveryError.situation): the code, and the
# words that replace the catalogue's.
_SITUATIONS: dict[Situation, tuple[DiagnosisCode, str, str]] = {
    "no_greeting": (
        "connection_timeout",
        "The server accepted the connection but never sent its greeting (the 220 line): it is "
        "overloaded or hung, or what listens on that port is not an SMTP server (a proxy, a "
        "load balancer or another service that holds the connection).",
        "Check that host and port belong to a working mail server (`openssl s_client "
        "-starttls smtp -connect host:port` shows a 220 line); if the server greets slowly on "
        "purpose, raise courier.smtp.timeout.",
    ),
}


def diagnose_error(exc: BaseException) -> Diagnosis:
    """Explain a failure with one documented code, its cause and its fix."""
    if isinstance(exc, TemplateError):
        return diagnose("template_error", stage="render", cause=f"{exc}.")
    if isinstance(exc, ConfigError):
        return diagnose(
            "unknown",
            cause=f"The tenant's configuration is invalid: {exc}.",
            fix="Correct the configuration; the message can then be retried.",
        )
    if not isinstance(exc, DeliveryError):
        return diagnose("unknown", cause=f"{type(exc).__name__}: {exc}")
    if isinstance(exc, HttpDeliveryError):
        return diagnose_http(exc)
    if isinstance(exc, OAuthError) and (explained := diagnose_oauth(exc)) is not None:
        return explained
    stage, reply = exc.stage, exc.reply
    common: dict[str, Any] = {"stage": stage, "reply": reply, "reply_code": exc.reply_code}
    if exc.situation is not None:
        code, cause, fix = _SITUATIONS[exc.situation]
        return diagnose(code, **common, cause=cause, fix=fix)
    if exc.hint:
        return diagnose(exc.hint, **common)
    if exc.reply_code is not None:
        found = classify_reply(
            exc.reply_code, exc.reply_text or "", stage=stage, auth_skipped=exc.auth_skipped
        )
        return diagnose(found.code, **common, cause=found.cause, fix=found.fix)
    return diagnose(_code_from_chain(exc), **common)


def _code_from_chain(exc: DeliveryError) -> DiagnosisCode:
    chain = exception_chain(exc)
    for err in chain:
        if isinstance(err, ssl.SSLCertVerificationError):
            if err.verify_code in HOSTNAME_MISMATCH:
                return "tls_hostname_mismatch"
            return "tls_certificate_untrusted"
    for err in chain:
        if isinstance(err, ssl.SSLError):
            reason = str(getattr(err, "reason", "") or "")
            if reason in _VERSION_REASONS:
                return "tls_version_unsupported"
            if reason in _WRONG_MODE_REASONS:
                return "tls_wrong_mode"
            if exc.stage == "tls":
                return "tls_wrong_mode" if "EOF" in str(err) else "protocol_error"
    for err in chain:
        if isinstance(err, TimeoutError):
            if exc.stage in {"connect", "tls"}:
                return "connection_timeout"
            return "server_unavailable"
        if isinstance(err, ConnectionRefusedError):
            return "connection_refused"
        if isinstance(err, (aiosmtplib.SMTPServerDisconnected, ConnectionError)):
            if exc.stage == "tls":
                return "tls_wrong_mode"
            return "server_unavailable"
    if exc.stage in {"dns"}:
        return "dns_unresolved"
    if exc.stage in {"connect"}:
        return "connection_refused"
    return "unknown"
