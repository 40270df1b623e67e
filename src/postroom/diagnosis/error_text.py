"""Recognising the connection, DNS and TLS failures that Python, Go, Java and Node.js print,
in an error text that holds no SMTP reply (``postroom explain``): a table of phrases, each
naming a documented code and the stage it belongs to."""

from __future__ import annotations

import re
from dataclasses import dataclass

from postroom.codes import DiagnosisCode
from postroom.diagnosis.pasted import unescape


@dataclass(frozen=True, slots=True)
class _TextRule:
    phrases: tuple[str, ...]
    code: DiagnosisCode
    stage: str
    cause: str | None = None
    fix: str | None = None


_TEXT_RULES: tuple[_TextRule, ...] = (
    # Python: "[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed: Hostname mismatch,
    # certificate is not valid for 'x'"; Go: "x509: certificate is valid for a, not b";
    # Node.js: "Hostname/IP does not match certificate's altnames".
    _TextRule(
        (
            "hostname mismatch",
            "ip address mismatch",
            "certificate is not valid for",
            "does not match certificate's altnames",
            "certificate is valid for",
            "no subject alternative",
        ),
        "tls_hostname_mismatch",
        "tls",
    ),
    _TextRule(
        ("certificate has expired", "cert_has_expired", "certificate expired"),
        "tls_certificate_untrusted",
        "tls",
        "The server's TLS certificate has expired, so it can no longer be trusted.",
        "The server's administrator must renew the certificate; for a test server only, add "
        "skip_ssl_verify=true to the URI in the meantime.",
    ),
    # Python: "certificate verify failed: unable to get local issuer certificate" / "self-signed
    # certificate"; Go: "x509: certificate signed by unknown authority"; Java: "PKIX path
    # building failed"; Node.js: "unable to verify the first certificate".
    _TextRule(
        (
            "certificate verify failed",
            "certificate_verify_failed",
            "self-signed certificate",
            "self signed certificate",
            "unable to get local issuer certificate",
            "signed by unknown authority",
            "pkix path building failed",
            "unable to verify the first certificate",
            "unable to find valid certification path",
        ),
        "tls_certificate_untrusted",
        "tls",
    ),
    # Python: "[SSL: WRONG_VERSION_NUMBER] wrong version number"; Go: "tls: first record does
    # not look like a TLS handshake"; Java: "Unrecognized SSL message, plaintext connection?".
    _TextRule(
        (
            "wrong version number",
            "wrong_version_number",
            "first record does not look like a tls handshake",
            "unrecognized ssl message",
            "packet length too long",
            "record layer failure",
            "http_request",
        ),
        "tls_wrong_mode",
        "tls",
    ),
    # Python: "[SSL: UNSUPPORTED_PROTOCOL] unsupported protocol", "tlsv1 alert protocol
    # version"; Java: "No appropriate protocol (protocol is disabled or cipher suites are
    # inappropriate)"; Go: "tls: protocol version not supported".
    _TextRule(
        (
            "unsupported protocol",
            "alert protocol version",
            "no protocols available",
            "no appropriate protocol",
            "protocol version not supported",
            "wrong ssl version",
        ),
        "tls_version_unsupported",
        "tls",
    ),
    # Python smtplib: "STARTTLS extension not supported by server."
    _TextRule(
        (
            "starttls extension not supported",
            "does not support starttls",
            "does not offer starttls",
            "starttls not supported",
            "starttls is not supported",
        ),
        "starttls_unavailable",
        "starttls",
    ),
    # Python smtplib: "SMTP AUTH extension not supported by server." and "No suitable
    # authentication method found."; Jakarta Mail: "No authentication mechanisms supported by
    # both server and client".
    _TextRule(
        (
            "smtp auth extension not supported",
            "no suitable authentication method",
            "no authentication mechanisms supported",
            "no authentication mechansims supported",
            "offers no auth",
        ),
        "auth_unsupported",
        "auth",
    ),
    # Python: "[Errno -2] Name or service not known", "[Errno -3] Temporary failure in name
    # resolution"; macOS: "nodename nor servname provided"; Go: "no such host"; Node.js:
    # "getaddrinfo ENOTFOUND"; Java: "UnknownHostException".
    _TextRule(
        (
            "name or service not known",
            "nodename nor servname",
            "temporary failure in name resolution",
            "no such host",
            "enotfound",
            "unknownhostexception",
            "could not resolve host",
            "getaddrinfo failed",
            "does not resolve",
            "no address associated with hostname",
        ),
        "dns_unresolved",
        "dns",
    ),
    # Python: "[Errno 111] Connection refused"; Windows: "[WinError 10061] No connection could
    # be made because the target machine actively refused it"; Node.js: "ECONNREFUSED";
    # asyncio (and Postroom's own "cannot connect to host:port: ..."): "ConnectionRefusedError:
    # [Errno 111] Connect call failed ('127.0.0.1', 2599)".
    _TextRule(
        (
            "connection refused",
            "econnrefused",
            "actively refused",
            "connectionrefusederror",
            "connect call failed",
            "errno 111]",
            "errno 61]",
        ),
        "connection_refused",
        "connect",
    ),
    # nodemailer: "Greeting never received" is the classic sign of plain SMTP spoken to an
    # implicit-TLS port (465); a hung server looks the same, so only with 465 in the text.
    _TextRule(
        ("greeting never received",),
        "connection_timeout",
        "connect",
        "The server accepted the connection but never sent its greeting. On port 465 that "
        "means plain SMTP was spoken to an implicit-TLS port; otherwise the server is hung or "
        "something in between holds the connection.",
        "For port 465 use smtps:// (implicit TLS), for 587 smtp:// (STARTTLS); if the scheme is "
        "right, check that the host and port point to a working mail server.",
    ),
    # Python: "timed out", "[Errno 110] Connection timed out"; Go: "i/o timeout"; Node.js:
    # "ETIMEDOUT".
    _TextRule(
        ("timed out", "etimedout", "i/o timeout", "timeout", "no answer from"),
        "connection_timeout",
        "connect",
    ),
    # Python smtplib: "Connection unexpectedly closed", "please run connect() first"
    # ("Server not connected"); "[Errno 104] Connection reset by peer"; "EOF occurred in
    # violation of protocol".
    _TextRule(
        (
            "connection unexpectedly closed",
            "server not connected",
            "please run connect() first",
            "connection reset",
            "econnreset",
            "broken pipe",
            "unexpected eof",
            "eof occurred in violation of protocol",
            "server disconnected",
            "connection closed",
            "closed the connection",
        ),
        "server_unavailable",
        "connect",
    ),
)


def classify_error_text(text: str) -> tuple[DiagnosisCode, str, str | None, str | None] | None:
    """Recognise a connection, DNS or TLS failure in an error message that holds no SMTP
    reply: ``(code, stage, cause, fix)`` (cause and fix None for the catalogue's words), or
    None."""
    low = " ".join(unescape(text).split()).lower()
    for rule in _TEXT_RULES:
        if any(phrase in low for phrase in rule.phrases):
            if rule.phrases == ("greeting never received",) and re.search(r"\b465\b", low):
                return ("tls_wrong_mode", "connect", None, None)
            return (rule.code, rule.stage, rule.cause, rule.fix)
    return None
