"""Finding the SMTP reply in a text pasted from a log (``postroom explain``).

A pasted text is rarely a bare reply: it comes wrapped by a library ("Invalid login: 535-5.7.8
..."), as a Python tuple ("(535, b'5.7.8 ...')"), or as a bounce ("said: 550 5.1.1 ... (in reply
to RCPT TO command)"). :func:`parse_reply` finds the reply code, the enhanced status code and
the text in it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass


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


# A basic reply code where a reply starts: at the start of a line or after a space, quote,
# bracket or "="; followed by a space, a dash (multi-line reply), a quote or the end. RFC 5321
# codes have 0-5 as their second digit, which keeps ports such as 465 and 587 out.
_CODE = re.compile(r"(?:^|(?<=[\s\"'(\[=>]))([2-5][0-5]\d)(?=[ \-\"',;:)]|$)", re.MULTILINE)
_ENH = re.compile(r"^[ \-]*([245]\.\d{1,3}\.\d{1,3})(?![\d.]*\d)")
_ENH_ANYWHERE = re.compile(r"(?<![\d.])([245]\.\d{1,3}\.\d{1,3})(?![\d]|\.\d)")
# Python's smtplib errors: (535, b'5.7.8 Username and Password not accepted...')
_PY_TUPLE = re.compile(r"\((\d{3}), b?(['\"])(.*?)\2\)", re.DOTALL)


def unescape(text: str) -> str:
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
    raw = unescape(text).strip()
    py = _PY_TUPLE.search(raw)
    if py is not None:
        code = int(py.group(1))
        body = _join_continuations(code, unescape(py.group(3)))
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
