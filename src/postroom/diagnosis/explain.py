"""Explain a server reply or an error line pasted from a log (``postroom explain``).

:func:`~postroom.diagnosis.pasted.parse_reply` finds the reply code, the enhanced status code
and the text in it; when there is no SMTP reply,
:func:`~postroom.diagnosis.error_text.classify_error_text` recognises the connection and TLS
failures that Python, Go, Java and Node.js print. This module guesses the stage the text came
from and puts the answer together. The classification itself is the one the worker uses:
:func:`postroom.diagnosis.replies.classify_reply`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from postroom.diagnosis.catalogue import diagnose
from postroom.diagnosis.error_text import classify_error_text
from postroom.diagnosis.oauth import explain_aadsts
from postroom.diagnosis.pasted import ParsedReply, parse_reply, unescape
from postroom.diagnosis.replies import classify_reply, detect_provider
from postroom.errors import InputError
from postroom.models import Diagnosis

__all__ = [
    "STAGES",
    "Explanation",
    "explain_text",
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


# -- the stage --------------------------------------------------------------------------------

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
        words = " ".join(unescape(text).split())
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
