"""Explain a server reply or an error line pasted from a log (``postroom explain``).

A pasted text is rarely a bare reply: it comes wrapped by a library ("Invalid login: 535-5.7.8
..."), as a Python tuple ("(535, b'5.7.8 ...')"), or as a bounce ("said: 550 5.1.1 ... (in reply
to RCPT TO command)"). :func:`parse_reply` finds the reply code, the enhanced status code and
the text in it; when there is no SMTP reply, :func:`classify_error_text` recognises the
connection and TLS failures that Python, Go, Java and Node.js print. The classification itself
is the one the worker uses: :func:`postroom.diagnosis.replies.classify_reply`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from postroom.codes import DiagnosisCode
from postroom.diagnosis.catalogue import diagnose
from postroom.diagnosis.oauth import explain_aadsts
from postroom.diagnosis.replies import classify_reply, detect_provider
from postroom.errors import InputError
from postroom.models import Diagnosis

__all__ = [
    "STAGES",
    "Explanation",
    "ParsedReply",
    "classify_error_text",
    "explain_text",
    "parse_reply",
]

STAGES = (
    "render",
    "dns",
    "connect",
    "tls",
    "ehlo",
    "starttls",
    "token",
    "auth",
    "mail",
    "rcpt",
    "data",
    "quit",
    "request",
)
"""the stages of a delivery attempt."""

MAX_TEXT = 20_000


@dataclass(frozen=True, slots=True)
class ParsedReply:
    """What was found in a pasted text: the basic reply code (None when the text holds none),
    the enhanced status code, and the reply's text from the code on."""

    reply_code: int | None
    enhanced: str | None
    text: str

    @property
    def reply(self) -> str:
        """The reply on one line, as Postroom prints replies."""
        if self.reply_code is None:
            return self.text
        return f"{self.reply_code} {self.text}".strip()


@dataclass(frozen=True, slots=True)
class Explanation:
    """The answer of ``explain``: the diagnosis, the stage used (and whether it was guessed),
    the provider the text betrays, and what was parsed."""

    diagnosis: Diagnosis
    stage: str | None
    stage_guessed: bool
    provider: str | None
    parsed: ParsedReply | None

    def to_json(self) -> dict[str, Any]:
        """``explain --json``: the fields the text output shows (``code``, ``transient``,
        ``provider``, ``stage``, ``stage_guessed``, ``reply``, ``cause``, ``fix``); those not
        known are null."""
        d = self.diagnosis
        return {
            "code": d.code,
            "transient": d.transient,
            "provider": self.provider,
            "stage": self.stage,
            "stage_guessed": self.stage_guessed,
            "reply": d.reply,
            "cause": d.cause,
            "fix": d.fix,
        }


# -- finding the reply ----------------------------------------------------------------------

# A basic reply code where a reply starts: at the start of a line or after a space, quote,
# bracket or "="; followed by a space, a dash (multi-line reply), a quote or the end. RFC 5321
# codes have 0-5 as their second digit, which keeps ports such as 465 and 587 out.
_CODE = re.compile(r"(?:^|(?<=[\s\"'(\[=>]))([2-5][0-5]\d)(?=[ \-\"',;:)]|$)", re.MULTILINE)
_ENH = re.compile(r"^[ \-]*([245]\.\d{1,3}\.\d{1,3})(?![\d.]*\d)")
_ENH_ANYWHERE = re.compile(r"(?<![\d.])([245]\.\d{1,3}\.\d{1,3})(?![\d]|\.\d)")
# Python's smtplib errors: (535, b'5.7.8 Username and Password not accepted...')
_PY_TUPLE = re.compile(r"\((\d{3}), b?(['\"])(.*?)\2\)", re.DOTALL)
# Postfix bounces and logs say which command the reply answered.
_IN_REPLY_TO = (
    ("in reply to rcpt to", "rcpt"),
    ("reject: rcpt from", "rcpt"),
    ("end-of-message", "data"),
    ("data command rejected", "data"),
    ("in reply to mail from", "mail"),
    ("in reply to end of data", "data"),
    ("after end of data", "data"),
    ("in reply to data", "data"),
    ("after rcpt to", "rcpt"),
    ("after mail from", "mail"),
)


def _unescape(text: str) -> str:
    """Undo the escaping logs apply: literal ``\\r\\n`` and ``\\n`` become line breaks."""
    return text.replace("\\r\\n", "\n").replace("\\n", "\n").replace("\\r", "")


def _join_continuations(code: int, text: str) -> str:
    """``535-5.7.8 Username ...\\n535 5.7.8 https://...`` -> one line without the repeats."""
    lines = [line.strip() for line in text.splitlines()]
    out: list[str] = []
    for line in lines:
        match = re.match(rf"^{code}[ \-](?:[245]\.\d{{1,3}}\.\d{{1,3}}\s*)?", line)
        if out and match:
            line = line[match.end() :]
        elif out:
            # A continuation may repeat only the enhanced code (Python joins lines that way).
            line = re.sub(r"^[245]\.\d{1,3}\.\d{1,3}\s+", "", line)
        if line:
            out.append(line)
    return " ".join(" ".join(out).split())


def parse_reply(text: str) -> ParsedReply | None:
    """Find an SMTP reply in ``text``; None when there is neither a reply code nor an
    enhanced status code in it.

    Of several candidates the first one followed by an enhanced status code of its own class
    wins (in "got code 535, with message 535 5.7.8 ..." that is the second), else the first
    4xx or 5xx code. A text with only an enhanced status code (as MailKit prints them) gives
    ``reply_code`` None and keeps the enhanced code.
    """
    raw = _unescape(text).strip()
    py = _PY_TUPLE.search(raw)
    if py is not None:
        code = int(py.group(1))
        body = _join_continuations(code, _unescape(py.group(3)))
        return ParsedReply(code, _first_enhanced(body), body)
    candidates: list[tuple[int, str, str | None]] = []  # code, its text, enhanced code
    for match in _CODE.finditer(raw):
        code = int(match.group(1))
        rest = raw[match.end() :]
        enh = _ENH.match(rest)
        enhanced = enh.group(1) if enh else None
        if enhanced is not None and enhanced[0] != str(code)[0]:
            enhanced = None
        quote = raw[match.start() - 1] if match.start() > 0 else ""
        if quote in ("'", '"') and quote in rest:
            rest = rest[: rest.index(quote)]  # a quoted reply ends at its closing quote
        body = _balance(_join_continuations(code, rest.lstrip(" -:)")))
        candidates.append((code, body, enhanced))
    # The first code that carries an enhanced status code, else the first failure code that
    # comes with words ("got code "550", with message "550 ..." has an empty first one).
    chosen = next((c for c in candidates if c[2] is not None), None)
    if chosen is None:
        worded = [c for c in candidates if c[0] >= 400 and re.search(r"[A-Za-z]{3}", c[1])]
        chosen = worded[0] if worded else next((c for c in candidates if c[0] >= 400), None)
    if chosen is not None:
        code, body, _ = chosen
        return ParsedReply(code, _first_enhanced(body), body)
    enhanced = _first_enhanced(raw)
    if enhanced is not None:
        return ParsedReply(None, enhanced, " ".join(raw.split()))
    return None


def _balance(text: str) -> str:
    """Drop trailing quotes and a closing bracket that belong to the wrapper, not the reply."""
    text = text.rstrip("\"'")
    while text.endswith(")") and text.count(")") > text.count("("):
        text = text[:-1].rstrip("\"'")
    return text.strip()


def _first_enhanced(text: str) -> str | None:
    match = _ENH_ANYWHERE.search(text)
    return match.group(1) if match else None


# -- errors that are not SMTP replies ------------------------------------------------------------


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
    low = " ".join(_unescape(text).split()).lower()
    for rule in _TEXT_RULES:
        if any(phrase in low for phrase in rule.phrases):
            if rule.phrases == ("greeting never received",) and re.search(r"\b465\b", low):
                return ("tls_wrong_mode", "connect", None, None)
            return (rule.code, rule.stage, rule.cause, rule.fix)
    return None


# -- the stage --------------------------------------------------------------------------------

_AUTH_HINTS = (
    "auth",
    "login",
    "password",
    "credentials",
    "username",
    "application-specific",
    "smtpclientauthentication",
)


def _guess_stage(parsed: ParsedReply, raw: str) -> str:
    low = " ".join(raw.split()).lower()
    for phrase, stage in _IN_REPLY_TO:
        if phrase in low:
            return stage
    code, text = parsed.reply_code, parsed.text.lower()
    if code == 421 or "no smtp service" in text:  # a refused greeting (RFC 5321 section 3.1)
        return "connect"
    if "relay" in text and code is not None and code >= 400:  # refused for the recipient
        return "rcpt"
    if code in (504, 534, 535, 538):
        return "auth"
    if code in (454, 502, 503) and any(h in text for h in _AUTH_HINTS):
        return "auth"
    if parsed.enhanced in ("5.7.8", "5.7.139", "5.7.3", "5.7.9", "5.7.14", "5.7.30"):
        return "auth"
    if "starttls" in text and code is not None and code in (454, 502, 500, 501):
        return "starttls"
    if any(w in text for w in ("recipient", "mailbox", "user unknown", "no such user")):
        return "rcpt"
    if parsed.enhanced is not None and parsed.enhanced[2:].startswith(("1.1", "2.1", "2.2")):
        return "rcpt"
    if any(w in text for w in ("message size", "too large", "too big", "size limit")):
        return "data"
    return "mail"


# -- putting it together ---------------------------------------------------------------------


def explain_text(text: str, *, stage: str | None = None) -> Explanation:
    """Explain a pasted reply or error text with the documented codes.

    ``stage`` (one of :data:`STAGES`) says where the text came from; without it the stage is
    guessed from the text. Raises :class:`InputError` for an empty text or an unknown stage.
    A text that matches nothing is explained as ``unknown``.
    """
    if not isinstance(text, str) or not text.strip():
        raise InputError("is empty; paste the server's reply or the error line", field="text")
    if len(text) > MAX_TEXT:
        raise InputError(f"is longer than {MAX_TEXT} characters; paste one reply", field="text")
    if stage is not None and stage not in STAGES:
        raise InputError(f"unknown stage {stage!r}; use one of {', '.join(STAGES)}", field="stage")
    token_error = explain_aadsts(text, stage=stage or "token")
    if token_error is not None:  # Entra ID's answer to a token request: no SMTP reply in it
        return Explanation(token_error, stage or "token", stage is None, "microsoft", None)
    parsed = parse_reply(text)
    if parsed is not None and (parsed.reply_code is None or parsed.reply_code >= 400):
        used = stage or _guess_stage(parsed, text)
        # A text with only an enhanced code: classify it as a generic reply of its class.
        code = parsed.reply_code or (451 if parsed.enhanced and parsed.enhanced[0] == "4" else 554)
        found = classify_reply(code, parsed.text, stage=used)
        diagnosis = diagnose(
            found.code,
            stage=used,
            reply=parsed.reply,
            reply_code=code,
            cause=found.cause,
            fix=found.fix,
        )
        return Explanation(diagnosis, used, stage is None, found.provider, parsed)
    known = classify_error_text(text)
    if known is None and parsed is None:
        # No code at all, but the words may still be a provider's reply ("Email address is not
        # verified", "Bad username / password"): read it as a permanent reply of unknown code.
        words = " ".join(_unescape(text).split())
        used = stage or _guess_stage(ParsedReply(None, None, words), text)
        found = classify_reply(554, words, stage=used)
        if found.code != "unknown":
            diagnosis = diagnose(
                found.code,
                stage=used,
                reply=words,
                reply_code=554,
                cause=found.cause,
                fix=found.fix,
            )
            return Explanation(diagnosis, used, stage is None, found.provider, None)
    if known is not None:
        code_name, rule_stage, cause, fix = known
        used = stage or rule_stage
        diagnosis = diagnose(code_name, stage=used, cause=cause, fix=fix)
        return Explanation(diagnosis, used, stage is None, detect_provider(text), parsed)
    if parsed is not None and parsed.reply_code is not None:
        # A 2xx or 3xx code: not a failure at all.
        found = classify_reply(parsed.reply_code, parsed.text, stage=stage or "")
        diagnosis = diagnose(
            found.code,
            stage=stage,
            reply=parsed.reply,
            cause=f"{parsed.reply} is not a failure: {parsed.reply_code // 100}xx replies mean "
            "the server accepted the command or waits for more.",
            fix="Look for the reply that came after it; that one says what went wrong.",
        )
        return Explanation(diagnosis, stage, False, found.provider, parsed)
    diagnosis = diagnose(
        "unknown",
        stage=stage,
        cause="The text holds no SMTP reply code and no error Postroom recognises.",
        fix="Paste the server's reply itself (it starts with a three-digit code such as 535 "
        "or 550), or the exception message with its type.",
    )
    return Explanation(diagnosis, stage, False, detect_provider(text), None)
