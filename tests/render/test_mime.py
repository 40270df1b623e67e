"""MIME assembly: what a mail client sees when it parses the bytes Postroom sends."""

from __future__ import annotations

import email
import random
import sys
from datetime import UTC, datetime
from email.charset import QP, Charset
from email.header import Header
from email.message import EmailMessage, Message
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from email.policy import compat32, default
from email.utils import format_datetime, formataddr
from typing import Any

import pytest

from postroom.errors import InputError
from postroom.models import RenderedEmail
from postroom.render.mime import build_mime, header_address
from postroom.text import HEADER_BREAKS

WHEN = datetime(2024, 5, 1, 12, 30, tzinfo=UTC)
RENDERED = RenderedEmail(
    subject="Your sign-in code",
    text="Your code is 123456\n",
    html="<p>Your code is <b>123456</b></p>\n",
)


DEFAULTS: dict[str, Any] = {
    "sender": "no-reply@example.org",
    "sender_name": "Example",
    "recipient": "jane@example.org",
    "reply_to": "support@example.org",
    "headers": {"X-SES-CONFIGURATION-SET": "identity"},
    "date": WHEN,
}


def build(email_: RenderedEmail = RENDERED, **overrides: Any) -> bytes:
    return build_mime(email_, **{**DEFAULTS, **overrides})


def parse(raw: bytes) -> EmailMessage:
    message = email.message_from_bytes(raw, policy=default)
    assert isinstance(message, EmailMessage)
    return message


def test_multipart_alternative_with_text_and_html() -> None:
    message = parse(build())
    assert message.get_content_type() == "multipart/alternative"
    parts = list(message.iter_parts())
    assert [p.get_content_type() for p in parts] == ["text/plain", "text/html"]
    text = message.get_body(("plain",))
    html = message.get_body(("html",))
    assert text is not None and html is not None
    assert "123456" in text.get_content()
    assert "<b>123456</b>" in html.get_content()


def test_text_only_is_a_single_text_part() -> None:
    message = parse(build(RenderedEmail(subject="S", text="Only text\n", html=None)))
    assert message.get_content_type() == "text/plain"
    assert message.get_content().strip() == "Only text"


def test_envelope_headers() -> None:
    message = parse(build())
    assert message["From"].addresses[0].addr_spec == "no-reply@example.org"
    assert message["From"].addresses[0].display_name == "Example"
    assert message["To"].addresses[0].addr_spec == "jane@example.org"
    assert message["Reply-To"].addresses[0].addr_spec == "support@example.org"
    assert message["Subject"] == "Your sign-in code"
    assert message["Date"].datetime == WHEN
    assert message["X-SES-CONFIGURATION-SET"] == "identity"


def test_message_id_is_unique_and_uses_the_sender_domain() -> None:
    first, second = parse(build())["Message-ID"], parse(build())["Message-ID"]
    assert first != second
    assert first.startswith("<") and first.endswith("@example.org>")


def test_no_reply_to_and_no_name_when_not_configured() -> None:
    message = parse(build(reply_to=None, sender_name=None, headers=None))
    assert message["Reply-To"] is None
    assert str(message["From"]) == "no-reply@example.org"


def test_lines_end_with_crlf() -> None:
    raw = build()
    assert b"\r\n" in raw
    assert b"\n" not in raw.replace(b"\r\n", b"")


def test_non_ascii_sender_name_is_encoded_and_reads_back() -> None:
    raw = build(sender_name='Jörg Müller, "Support" 🚀')
    header_block = raw.split(b"\r\n\r\n", 1)[0]
    assert header_block.isascii()  # encoded, not raw UTF-8 in a header
    sender = parse(raw)["From"].addresses[0]
    assert sender.display_name == 'Jörg Müller, "Support" 🚀'
    assert sender.addr_spec == "no-reply@example.org"


def test_utf8_subject_round_trips() -> None:
    subject = "Ihr Anmeldecode für Ärger – 🚀 " + "lang " * 30
    raw = build(RenderedEmail(subject=subject.strip(), text="ü\n", html="<p>ü</p>"))
    assert raw.split(b"\r\n\r\n", 1)[0].isascii()
    message = parse(raw)
    assert message["Subject"] == subject.strip()
    text = message.get_body(("plain",))
    assert text is not None and text.get_content().strip() == "ü"


def test_idn_recipient_domain_is_written_in_ascii() -> None:
    message = parse(build(recipient="jane@bücher.de"))
    assert message["To"].addresses[0].addr_spec == "jane@xn--bcher-kva.de"


def test_non_ascii_before_the_at_is_refused() -> None:
    with pytest.raises(InputError) as info:
        build(recipient="jörg@example.org")
    assert info.value.field == "recipient"


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"subject": "Hi\r\nBcc: x@evil.test"}, "subject"),
        ({"subject": "Hi\nthere"}, "subject"),
        ({"recipient": "jane@example.org\r\nBcc: x@evil.test"}, "recipient"),
        ({"recipient": "jane@example.org\n"}, "recipient"),
        ({"sender_name": "Example\r\nBcc: x@evil.test"}, "from_name"),
        ({"sender_name": "Example\r"}, "from_name"),
        ({"reply_to": "support@example.org\nBcc: x@evil.test"}, "reply_to"),
        ({"sender": "no-reply@example.org\r\n"}, "from_address"),
        ({"headers": {"X-Tag": "a\r\nBcc: x@evil.test"}}, "headers.X-Tag"),
        ({"headers": {"X-Tag": "a\nb"}}, "headers.X-Tag"),
        ({"headers": {"X-Tag\r\nBcc": "x@evil.test"}}, "headers"),
        ({"headers": {"X-Tag\n": "v"}}, "headers"),
    ],
)
def test_line_breaks_in_a_header_are_refused_naming_the_field(
    overrides: dict[str, Any], field: str
) -> None:
    kwargs = dict(overrides)
    rendered = RenderedEmail(subject=kwargs.pop("subject", "Hi"), text="t", html="<p>t</p>")
    with pytest.raises(InputError) as info:
        build(rendered, **kwargs)
    assert info.value.field == field
    assert str(info.value).startswith(f"{field}:")


@pytest.mark.parametrize("char", sorted(HEADER_BREAKS), ids=lambda c: f"U+{ord(c):04X}")
@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"subject": "Hi{}Bcc: x@evil.test"}, "subject"),
        ({"sender_name": "Example{}Bcc: x@evil.test"}, "from_name"),
        ({"headers": {"X-Tag": "a{}Bcc: x@evil.test"}}, "headers.X-Tag"),
        ({"recipient": "jane@example.org{}"}, "recipient"),
        ({"reply_to": "support@example.org{}"}, "reply_to"),
    ],
)
def test_every_character_that_splits_a_header_is_refused_when_building_mime(
    overrides: dict[str, Any], field: str, char: str
) -> None:
    # compat32 splits header values on str.splitlines(): each of these starts a new header.
    def fill(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: fill(v) for k, v in value.items()}
        return value.format(char)

    kwargs = {key: fill(value) for key, value in overrides.items()}
    rendered = RenderedEmail(subject=kwargs.pop("subject", "Hi"), text="t", html="<p>t</p>")
    with pytest.raises(InputError) as info:
        build(rendered, **kwargs)
    assert info.value.field == field


@pytest.mark.parametrize(
    "name",
    [
        "From",
        "to",
        "SUBJECT",
        "Date",
        "Message-ID",
        "Reply-To",
        "MIME-Version",
        "Content-Type",
        "Content-Transfer-Encoding",
        "Cc",
        "Bcc",
    ],
)
def test_configured_headers_cannot_replace_our_own(name: str) -> None:
    with pytest.raises(InputError) as info:
        build(headers={name: "x@evil.test"})
    assert name in str(info.value)


@pytest.mark.parametrize("name", ["", "X Tag", "X-Tag:", "X-Tag\x00", "X-Tägg"])
def test_invalid_header_names_are_refused(name: str) -> None:
    with pytest.raises(InputError) as info:
        build(headers={name: "v"})
    assert info.value.field == "headers"


def test_non_ascii_configured_header_value_is_encoded() -> None:
    message = parse(build(headers={"X-Team": "Zürich"}))
    assert message["X-Team"] == "Zürich"


@pytest.mark.parametrize("sender", ["no-reply", "not an address", "a@b@c", "@example.org"])
def test_invalid_sender_is_an_input_error_not_a_crash(sender: str) -> None:
    with pytest.raises(InputError) as info:
        build(sender=sender)
    assert info.value.field == "from_address"


def _as_the_email_package_writes_it(
    email_: RenderedEmail, *, message_id: str, **kwargs: Any
) -> bytes:
    """The same message built and serialised with the email package's compat32 classes, as
    Postroom built it before it wrote the bytes itself."""
    charset = Charset("utf-8")
    charset.header_encoding = charset.body_encoding = QP

    def header(value: str) -> Any:
        return value if value.isascii() else Header(value, charset)

    body: Message = MIMEText(email_.text, "plain", charset)  # type: ignore[arg-type]
    if email_.html:
        html = MIMEText(email_.html, "html", charset)  # type: ignore[arg-type]
        body = MIMEMultipart("alternative", _subparts=[body, html])
    sender = header_address(kwargs["sender"], field="from_address")
    body["From"] = formataddr((kwargs["sender_name"] or "", sender.addr_spec), charset="utf-8")
    body["To"] = header_address(kwargs["recipient"], field="recipient").addr_spec
    body["Subject"] = header(email_.subject)
    body["Date"] = format_datetime(kwargs["date"])
    body["Message-ID"] = message_id
    if kwargs["reply_to"]:
        body["Reply-To"] = header_address(kwargs["reply_to"], field="reply_to").addr_spec
    for name, value in (kwargs["headers"] or {}).items():
        body[name] = header(value)
    return body.as_bytes(policy=compat32.clone(linesep="\r\n"))


LONG = "word " * 30
SAME_BYTES_CASES = [
    {},
    {"email_": RenderedEmail(subject="S", text="Only text\n", html=None)},
    {"email_": RenderedEmail(subject="S", text="", html="<p>x</p>")},
    {"email_": RenderedEmail(subject="S", text="no newline at the end", html="<p>\r\nx\r</p>")},
    {"email_": RenderedEmail(subject="Ärger – 🚀 " + LONG.strip(), text="ü " * 90, html=None)},
    {"email_": RenderedEmail(subject=LONG.strip(), text="a\tb \nc\t\n" + "=" * 200, html="é")},
    {"email_": RenderedEmail(subject="two  spaces ", text="--x\n", html=" lead;and,semi")},
    {"email_": RenderedEmail(subject="=?utf-8?q?x?=", text="x", html="<p>x</p>")},
    {"sender_name": 'Jörg Müller, "Support" 🚀', "reply_to": None, "headers": None},
    {"sender_name": "A; Very, Long Name " * 4, "recipient": "jane@bücher.de"},
    {"recipient": "o'hara+tag@sub-1.example.org", "reply_to": '"quoted local"@example.org'},
    {"recipient": "x" * 60 + "@" + "a" * 63 + ".example.org"},
    {"headers": {"X-Team": "Zürich", "X-Long": LONG, "X-Tab": "a\tb", "X-Empty": ""}},
    {"headers": {"X-Campaign": "spring;sale,2024", "x-lower": " padded "}},
]


@pytest.mark.parametrize("case", SAME_BYTES_CASES, ids=range(len(SAME_BYTES_CASES)))
def test_the_bytes_are_those_the_email_package_writes(
    case: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    kwargs = {**DEFAULTS, **case}
    rendered = kwargs.pop("email_", RENDERED)
    message_id = "<171456300000.4242.1234567890@example.org>"
    monkeypatch.setattr("postroom.render.mime.make_msgid", lambda domain: message_id)
    random.seed(7)
    ours = build_mime(rendered, **kwargs)
    random.seed(7)  # the same multipart boundary
    assert ours == _as_the_email_package_writes_it(rendered, message_id=message_id, **kwargs)


def test_a_part_that_holds_the_boundary_line_does_not_split_the_message(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("postroom.render.mime.make_msgid", lambda domain: "<1@example.org>")
    boundary = "=" * 15 + f"{random.Random(7).randrange(sys.maxsize):019d}" + "=="
    text = f"Your code is 123456\n--{boundary}\nContent-Type: text/html\n\n<p>forged</p>\n"
    random.seed(7)  # the boundary this message gets is the one its text holds
    raw = build(RenderedEmail(subject="S", text=text, html="<p>real</p>"))
    assert f'boundary="{boundary}"'.encode() in raw
    message = parse(raw)
    parts = list(message.iter_parts())
    assert [p.get_content_type() for p in parts] == ["text/plain", "text/html"]
    assert parts[0].get_content().replace("\r\n", "\n") == text
    assert parts[1].get_content().strip() == "<p>real</p>"
