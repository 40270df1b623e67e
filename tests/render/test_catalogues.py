"""The catalogues of the built-in templates: complete, placeholders intact, every plural form
each language needs, and an honest review statement; and what the recipient then reads."""

from __future__ import annotations

import html
import io
import re
from datetime import UTC, datetime
from pathlib import Path

import pytest
from babel.messages.catalog import Catalog
from babel.messages.frontend import parse_mapping_cfg

from postroom.models import TemplateType
from postroom.render.catalogues import (
    EXTRACT_METHODS,
    EXTRACT_OPTIONS,
    catalogue_problems,
    read_catalogue,
    template_strings,
)
from postroom.render.locales import BUILTIN_LOCALES, fallback_chain
from postroom.render.templates import render_email

TRANSLATED = [tag for tag in BUILTIN_LOCALES if tag != "en"]
ROOT = Path(__file__).parents[2]
EXPECTED = template_strings()
SAMPLE = {
    "to": "jane@example.org",
    "recovery_code": "482913",
    "recovery_url": "https://id.example.org/recovery?token=abc",
    "verification_code": "771204",
    "verification_url": "https://id.example.org/verify?token=xyz",
    "login_code": "123456",
    "registration_code": "654321",
    "expires_in_minutes": 15,
    "identity": {"traits": {"name": "Jane"}},
    "uri": "smtp://user:***@smtp.example.org:587/",
    "sent_at": datetime(2026, 3, 4, 5, 6, 7, tzinfo=UTC),
}
TYPES = [t for t in TemplateType if t not in (TemplateType.STUB, TemplateType.RELAY)]


def test_babel_cfg_finds_the_strings_the_same_way_the_tests_do() -> None:
    methods, options = parse_mapping_cfg(io.StringIO((ROOT / "babel.cfg").read_text()))
    assert [(pattern.split("/")[-1], method) for pattern, method in methods] == EXTRACT_METHODS
    assert [opts for _pattern, opts in options.items()] == list(EXTRACT_OPTIONS.values())


def test_the_templates_have_translatable_strings_with_a_plural() -> None:
    ids = [m.id for m in EXPECTED if m.id]
    assert len(ids) > 30
    assert any(isinstance(i, tuple) for i in ids)  # "expires in N minutes"


@pytest.mark.parametrize("tag", TRANSLATED)
def test_each_catalogue_serves_every_string(tag: str) -> None:
    assert catalogue_problems(read_catalogue(tag), EXPECTED) == []


@pytest.mark.parametrize("tag", TRANSLATED)
def test_each_catalogue_says_honestly_whether_a_native_speaker_reviewed_it(tag: str) -> None:
    review = [
        line
        for line in read_catalogue(tag).header_comment.splitlines()
        if line.startswith("# Review: ")
    ]
    assert review == ["# Review: not reviewed by a native speaker."]


def _copy(tag: str) -> Catalog:
    return read_catalogue(tag)  # a fresh parse each time: safe to break


def test_a_missing_string_is_reported() -> None:
    broken = _copy("de")
    del broken["Never share this code with anyone."]
    assert catalogue_problems(broken, EXPECTED) == ["missing: 'Never share this code with anyone.'"]


def test_a_dropped_or_renamed_placeholder_is_reported() -> None:
    broken = _copy("fr")
    broken["This email was sent to %(address)s."].string = "Cet e-mail a été envoyé."
    broken["Hello %(name)s,"].string = "Bonjour %(nom)s,"
    problems = catalogue_problems(broken, EXPECTED)
    assert "'This email was sent to %(address)s.': form 0 has placeholders [], not ['address']" in (
        problems
    )
    assert "'Hello %(name)s,': form 0 has placeholders ['nom'], not ['name']" in problems


def test_a_missing_plural_form_is_reported() -> None:
    broken = _copy("uk")
    key = "This code expires in %(num)s minute."
    message = broken[key]
    message.string = message.string[:2]  # the "many" form (5 хвилин) is gone
    assert catalogue_problems(broken, EXPECTED) == [
        f"{key!r} has 2 plural forms; the language needs 3"
    ]


def test_a_string_no_template_uses_is_reported() -> None:
    broken = _copy("ja")
    broken.add("Old wording", "古い文言")
    assert catalogue_problems(broken, EXPECTED) == ["no template uses 'Old wording'"]


def _english_fragments() -> set[str]:
    """Pieces of the English strings long enough that finding one means it was not translated."""
    out: set[str] = set()
    for message in EXPECTED:
        for text in (message.id,) if isinstance(message.id, str) else message.id:
            out.update(p.strip() for p in re.split(r"%\(\w+\)s", text) if len(p.strip()) >= 10)
    return out


@pytest.mark.parametrize("tag", TRANSLATED)
def test_every_type_renders_with_no_english_left(tag: str) -> None:
    fragments = _english_fragments()
    for kind in TYPES:
        email = render_email(kind, dict(SAMPLE), locales=(tag, "en"))
        assert email.locale == tag
        assert email.html is not None
        for part in (email.subject, email.text, email.html):
            left = [f for f in fragments if f in part]
            assert left == [], f"{kind.value} in {tag}: English left: {left}"


@pytest.mark.parametrize(
    ("tag", "minutes", "words"),
    [
        ("en", 1, "This code expires in 1 minute."),
        ("en", 15, "This code expires in 15 minutes."),
        ("de", 1, "Dieser Code läuft in 1 Minute ab."),
        ("uk", 1, "через 1 хвилину."),
        ("uk", 3, "через 3 хвилини."),
        ("uk", 5, "через 5 хвилин."),
        ("uk", 21, "через 21 хвилину."),
        ("pl", 22, "za 22 minuty."),
        ("pl", 25, "za 25 minut."),
        ("ar", 3, "خلال 3 دقائق."),
        ("ar", 11, "خلال 11 دقيقة."),
        ("ja", 5, "有効期限は5分です。"),
        # Whole hours and days are said in the language's own unit words (Babel, CLDR).
        ("de", 120, "Dieser Code ist 2 Stunden gültig."),
        ("fr", 1440, "Ce code expire dans 1\u00a0jour."),
        ("uk", 300, "Код дійсний: 5 годин."),
        ("en", 90, "This code expires in 90 minutes."),
    ],
)
def test_expiry_uses_the_plural_form_the_number_needs(tag: str, minutes: int, words: str) -> None:
    data = dict(SAMPLE, expires_in_minutes=minutes)
    email = render_email(TemplateType.LOGIN_CODE_VALID, data, locales=(tag,))
    assert words in email.text
    assert email.html is not None and words in html.unescape(email.html)


@pytest.mark.parametrize(
    ("tag", "when"),
    [("en", "Mar 4, 2026, 5:06:07\u202fAM UTC"), ("de", "04.03.2026, 05:06:07 UTC")],
)
def test_dates_are_written_the_locale_s_way(tag: str, when: str) -> None:
    email = render_email(TemplateType.TEST, dict(SAMPLE), locales=(tag,))
    assert when in email.text


def test_arabic_html_is_right_to_left_with_codes_and_links_left_to_right() -> None:
    email = render_email(TemplateType.VERIFICATION_CODE_VALID, dict(SAMPLE), locales=("ar",))
    assert email.html is not None
    assert '<html lang="ar" dir="rtl">' in email.html
    assert re.search(r'class="card"[^>]*text-align: right', email.html)
    assert re.search(r'<div class="code" dir="ltr"[^>]*>771204</div>', email.html)
    english = render_email(TemplateType.VERIFICATION_CODE_VALID, dict(SAMPLE))
    assert english.html is not None and '<html lang="en" dir="ltr">' in english.html


def test_the_chain_picks_the_first_locale_with_strings() -> None:
    kind = TemplateType.LOGIN_CODE_VALID
    assert render_email(kind, dict(SAMPLE), locales=fallback_chain("pt-BR")).locale == "pt-BR"
    assert render_email(kind, dict(SAMPLE), locales=fallback_chain("pt-PT")).locale == "pt"
    assert render_email(kind, dict(SAMPLE), locales=fallback_chain("zh-CN")).locale == "zh-Hans"
    assert render_email(kind, dict(SAMPLE), locales=fallback_chain("fi", "sv")).locale == "sv"
    assert render_email(kind, dict(SAMPLE), locales=fallback_chain("fi")).locale == "en"
