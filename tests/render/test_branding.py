"""Branding per tenant in every built-in template, per-locale override files, and HTML that
mail clients can show: inlined CSS, no <style> left, small."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path

import pytest

from postroom.config.branding import BrandingSettings
from postroom.models import TemplateType
from postroom.render.locales import fallback_chain
from postroom.render.templates import render_email

BRAND = {
    "product_name": "Acme <script>alert(1)</script>",
    "logo_url": "https://cdn.acme.example/logo.png",
    "accent_color": "#0f766e",
    "footer_text": "Acme Cloud & Co.",
    "support_email": "help@acme.example",
    "address": "1 Main Street, Springfield",
}
DATA = {
    "to": "jane@example.org",
    "recovery_code": "482913",
    "recovery_url": "https://id.example.org/recovery?token=abc",
    "verification_code": "771204",
    "verification_url": "https://id.example.org/verify?token=xyz",
    "login_code": "123456",
    "registration_code": "654321",
    "expires_in_minutes": 15,
    "subject": "A stub subject",
    "body": "A stub body",
}


class _Reader(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.texts: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self.texts.extend(value for _name, value in attrs if value)

    def handle_data(self, data: str) -> None:
        self.texts.append(data)


def parse(html: str) -> tuple[list[str], list[str]]:
    """The elements of an HTML document as a browser would see them, and its texts (attribute
    values included)."""
    reader = _Reader()
    reader.feed(html)
    return reader.tags, reader.texts


@pytest.mark.parametrize("kind", [t for t in TemplateType if t is not TemplateType.RELAY])
def test_every_built_in_template_shows_the_branding_with_the_name_as_text(
    kind: TemplateType,
) -> None:
    email = render_email(kind, dict(DATA), branding=BRAND, locales=("de",))
    assert email.html is not None
    tags, texts = parse(email.html)
    assert "script" not in tags  # the name stays text: in the alt attribute, or escaped
    assert any("Acme <script>alert(1)</script>" in t for t in texts)
    assert 'src="https://cdn.acme.example/logo.png"' in email.html
    for text in ("Acme Cloud &amp; Co.", "help@acme.example", "1 Main Street, Springfield"):
        assert text in email.html
    assert "#0f766e" in email.html
    if kind is not TemplateType.STUB:
        assert "Acme <script>alert(1)</script>" in email.subject  # a subject is plain text
        assert "help@acme.example" in email.text and "Acme Cloud & Co." in email.text


def test_without_a_logo_the_product_name_heads_the_mail_escaped() -> None:
    email = render_email(
        TemplateType.LOGIN_CODE_VALID, dict(DATA), branding={"product_name": "<b>Acme</b>"}
    )
    assert email.html is not None
    assert re.search(r'class="brand"[^>]*>&lt;b&gt;Acme&lt;/b&gt;</td>', email.html)


def test_the_product_name_in_the_data_wins_over_the_tenant_s() -> None:
    data = dict(DATA, product_name="Widgets")
    email = render_email(TemplateType.LOGIN_CODE_VALID, data, branding=BRAND)
    assert email.subject == "Widgets: Your sign-in code"
    assert email.html is not None and "Acme &lt;script" not in email.html


def test_a_light_accent_gets_dark_button_text() -> None:
    email = render_email(
        TemplateType.RECOVERY_VALID, dict(DATA), branding={"accent_color": "#fde047"}
    )
    assert email.html is not None
    assert re.search(r'class="button"[^>]*color: #111827', email.html)
    dark = render_email(
        TemplateType.RECOVERY_VALID, dict(DATA), branding={"accent_color": "#1e3a8a"}
    )
    assert dark.html is not None and re.search(r'class="button"[^>]*color: #ffffff', dark.html)


@pytest.mark.parametrize(
    ("field", "value", "words"),
    [
        ("logo_url", "http://acme.example/logo.png", "https://"),
        ("logo_url", 'https://acme.example/" onerror="x', "https://"),
        ("accent_color", "red; background:url(x)", "#1d4ed8"),
        ("support_email", "not an address", "not a valid email address"),
        ("product_name", "Acme\nBcc: x", "one line"),
    ],
)
def test_bad_branding_is_refused_with_the_fix(field: str, value: str, words: str) -> None:
    with pytest.raises(ValueError, match=re.escape(words)):
        BrandingSettings.model_validate({field: value})


@pytest.mark.parametrize(
    "kind", [t for t in TemplateType if t not in (TemplateType.STUB, TemplateType.RELAY)]
)
@pytest.mark.parametrize("locale", ["en", "ar", "ja"])
def test_the_html_is_mail_client_safe(kind: TemplateType, locale: str) -> None:
    email = render_email(kind, dict(DATA), branding=BRAND, locales=(locale,))
    assert email.html is not None
    assert "<style" not in email.html  # inlined into style attributes
    assert "<link" not in email.html and "@import" not in email.html  # no external fonts
    assert len(email.html.encode()) < 100 * 1024
    assert 'name="color-scheme" content="light dark"' in email.html
    assert re.search(r'<td class="card"[^>]*style="[^"]*background-color: #ffffff', email.html)


def test_per_locale_overrides_follow_the_fallback_chain(tmp_path: Path) -> None:
    folder = tmp_path / "login_code_valid"
    folder.mkdir()
    (folder / "email.subject.j2").write_text("Generic {{ login_code }}")
    (folder / "email.subject.de.j2").write_text("Deutsch {{ login_code }}")
    (folder / "email.subject.fi.j2").write_text("Suomi {{ login_code }}")
    kind = TemplateType.LOGIN_CODE_VALID

    def render(asked: str, default: str = "en") -> tuple[str, str, str]:
        email = render_email(
            kind, dict(DATA), override_path=str(tmp_path), locales=fallback_chain(asked, default)
        )
        return email.locale, email.subject, email.text

    assert render("de-AT")[:2] == ("de", "Deutsch 123456")
    locale, subject, text = render("fr")
    assert (locale, subject) == ("fr", "Generic 123456")  # no fr file: the file without one
    assert "Saisissez ce code" in text  # the bodies stay built-in, in French
    # Finnish has no built-in strings, but the override makes it the message's locale.
    assert render("fi")[:2] == ("fi", "Suomi 123456")
    # A Swedish message never takes the German file of the tenant's default.
    assert render("sv", default="de")[:2] == ("sv", "Generic 123456")
    assert render("is", default="de")[:2] == ("de", "Deutsch 123456")
