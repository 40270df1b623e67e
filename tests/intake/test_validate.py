"""Validation of what callers hand to intake: addresses, template types, sizes."""

from __future__ import annotations

import pytest

from postroom.errors import InputError
from postroom.intake.validate import (
    MAX_BODY,
    MAX_SUBJECT,
    validate_address,
    validate_template_type,
    validate_text,
)
from postroom.models import TemplateType


@pytest.mark.parametrize(
    "address",
    [
        "jane@example.org",
        "jane.doe+tag@mail.example.co.uk",
        "o'brien@example.org",
        "a_b-c@example-domain.org",
        "x@localhost",
        "jane@bücher.de",
        "jane@例え.jp",
        "jane@xn--bcher-kva.de",
        "JANE@EXAMPLE.ORG",
    ],
)
def test_valid_addresses_are_accepted_as_given(address: str) -> None:
    assert validate_address(address) == address


def test_surrounding_space_is_stripped() -> None:
    assert validate_address("  jane@example.org \t") == "jane@example.org"


@pytest.mark.parametrize(
    "address",
    [
        "Jane Doe <jane@example.org>",
        "<jane@example.org>",
        "jane@example.org, john@example.org",
        "jane@example.org;john@example.org",
        "jane@example.org john@example.org",
        "jane doe@example.org",
        "jane.example.org",
        "jane@",
        "@example.org",
        "jane@@example.org",
        "jane@john@example.org",
        "jane@-example.org",
        "jane@example-.org",
        "jane@exa_mple.org",
        "jane@exa$mple.org",
        "jane@exa/mple.org",
        "jane@example..org",
        "jane@.example.org",
        "jane@example.org.",
        "jane@" + "x" * 64 + ".org",
        ".jane@example.org",
        "jane.@example.org",
        "ja..ne@example.org",
        "x" * 65 + "@example.org",
        "jane@example.org\x00",
        "ja\x07ne@example.org",
        '"jane"@example.org',
        "jane@[127.0.0.1]",
    ],
)
def test_invalid_addresses_are_refused_naming_the_field(address: str) -> None:
    with pytest.raises(InputError) as info:
        validate_address(address, field="to")
    assert info.value.field == "to"
    assert "you@example.org" in str(info.value)


@pytest.mark.parametrize(
    "address", ["jane@example.org\r\nBcc: x@evil.test", "jane@example.org\n", "ja\rne@example.org"]
)
def test_line_breaks_are_refused(address: str) -> None:
    with pytest.raises(InputError, match="line break") as info:
        validate_address(address)
    assert info.value.field == "recipient"


def test_non_ascii_before_the_at_is_refused_with_a_reason() -> None:
    with pytest.raises(InputError, match="non-ASCII"):
        validate_address("jörg@example.org")


@pytest.mark.parametrize("value", [None, "", "   ", 42, ["jane@example.org"]])
def test_missing_address_is_refused(value: object) -> None:
    with pytest.raises(InputError, match="required"):
        validate_address(value)


def test_over_long_address_is_refused() -> None:
    local = "a" * 64
    domain = ".".join(["b" * 60] * 5)  # 304 characters: valid labels, too long overall
    with pytest.raises(InputError):
        validate_address(f"{local}@{domain}")


@pytest.mark.parametrize("kind", [t for t in TemplateType if t is not TemplateType.RELAY])
def test_every_template_type_is_known(kind: TemplateType) -> None:
    assert validate_template_type(kind.value) is kind


def test_relay_is_no_template_a_caller_can_name() -> None:
    # Mail of type relay came ready-made through the SMTP listener; there is no template.
    with pytest.raises(InputError, match="SMTP listener"):
        validate_template_type("relay")


@pytest.mark.parametrize("value", ["login_code", "LOGIN_CODE_VALID", "", None, 3])
def test_unknown_template_type_lists_the_known_ones(value: object) -> None:
    with pytest.raises(InputError) as info:
        validate_template_type(value, field="template")
    message = str(info.value)
    assert info.value.field == "template"
    assert repr(value) in message
    for kind in TemplateType:
        assert (kind.value in message) is (kind is not TemplateType.RELAY)


def test_text_within_the_limit_is_returned() -> None:
    assert validate_text("x" * MAX_SUBJECT, field="subject", limit=MAX_SUBJECT) == "x" * 998


def test_oversized_subject_names_the_limit() -> None:
    with pytest.raises(InputError) as info:
        validate_text("x" * (MAX_SUBJECT + 1), field="subject", limit=MAX_SUBJECT, one_line=True)
    assert info.value.field == "subject"
    assert str(MAX_SUBJECT) in str(info.value)
    assert str(MAX_SUBJECT + 1) in str(info.value)


def test_oversized_body_names_the_limit() -> None:
    with pytest.raises(InputError) as info:
        validate_text("x" * (MAX_BODY + 1), field="text", limit=MAX_BODY)
    assert info.value.field == "text"
    assert str(MAX_BODY) in str(info.value)


def test_one_line_text_refuses_line_breaks() -> None:
    with pytest.raises(InputError, match="line break"):
        validate_text("a\r\nb", field="subject", limit=100, one_line=True)
    assert validate_text("a\nb", field="text", limit=100) == "a\nb"


def test_text_must_be_a_string() -> None:
    with pytest.raises(InputError, match="string"):
        validate_text(12, field="subject", limit=100)
