"""Built-in templates for every type, overrides file by file, the sandbox, template errors."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from postroom.errors import TemplateError
from postroom.models import TemplateType
from postroom.render.templates import render_email

DATA = {
    "to": "jane@example.org",
    "recovery_code": "R-482913",
    "recovery_url": "https://id.example.org/recovery?token=abc&flow=1",
    "verification_code": "V-771204",
    "verification_url": "https://id.example.org/verify?token=xyz&flow=2",
    "login_code": "L-123456",
    "registration_code": "G-654321",
    "expires_in_minutes": 15,
}

# What the recipient must find in the email, in both parts.
ESSENTIAL = {
    TemplateType.RECOVERY_VALID: "https://id.example.org/recovery?token=abc",
    TemplateType.RECOVERY_CODE_VALID: "R-482913",
    TemplateType.VERIFICATION_VALID: "https://id.example.org/verify?token=xyz",
    TemplateType.VERIFICATION_CODE_VALID: "V-771204",
    TemplateType.LOGIN_CODE_VALID: "L-123456",
    TemplateType.REGISTRATION_CODE_VALID: "G-654321",
}


def data_for(kind: TemplateType) -> dict[str, object]:
    if kind is TemplateType.STUB:
        return {"to": "jane@example.org", "subject": "Hello there", "body": "Plain body"}
    return dict(DATA)


# Mail of type relay arrives ready-made through the SMTP listener: it has no template.
RENDERED = [t for t in TemplateType if t is not TemplateType.RELAY]


@pytest.mark.parametrize("kind", RENDERED)
def test_every_type_renders_subject_text_and_html(kind: TemplateType) -> None:
    email = render_email(kind, data_for(kind))
    assert email.subject.strip()
    assert "\n" not in email.subject and "\r" not in email.subject
    assert email.subject == email.subject.strip()
    assert email.text.strip()
    assert email.html is not None
    assert "<html" in email.html and "</html>" in email.html
    assert "{{" not in email.text and "{{" not in email.html and "{%" not in email.html


@pytest.mark.parametrize("kind", RENDERED)
def test_every_type_renders_without_optional_data(kind: TemplateType) -> None:
    data = {"subject": "S", "body": "B"} if kind is TemplateType.STUB else {}
    email = render_email(kind, data)
    assert email.subject.strip()
    assert email.text.strip()
    assert email.html


@pytest.mark.parametrize("kind", list(ESSENTIAL))
def test_the_code_or_link_is_in_both_parts(kind: TemplateType) -> None:
    email = render_email(kind, data_for(kind))
    assert email.html is not None
    assert ESSENTIAL[kind] in email.text
    assert ESSENTIAL[kind] in email.html


def test_expiry_is_mentioned_when_given() -> None:
    email = render_email(
        TemplateType.LOGIN_CODE_VALID, {"login_code": "1", "expires_in_minutes": 15}
    )
    assert email.html is not None
    assert "15 minutes" in email.text and "15 minutes" in email.html
    email = render_email(TemplateType.LOGIN_CODE_VALID, {"login_code": "1"})
    assert "minute" not in email.text


def test_product_name_goes_into_the_subject() -> None:
    email = render_email(TemplateType.LOGIN_CODE_VALID, {"login_code": "1", "product_name": "Acme"})
    assert "Acme" in email.subject


def test_multi_line_data_cannot_break_the_subject() -> None:
    email = render_email(
        TemplateType.LOGIN_CODE_VALID, {"login_code": "1", "product_name": "Acme\r\nBcc: x@y"}
    )
    assert "\n" not in email.subject and "\r" not in email.subject


def test_html_escapes_data_and_plaintext_keeps_it() -> None:
    code = "<script>alert(1)</script>"
    email = render_email(TemplateType.LOGIN_CODE_VALID, {"login_code": code})
    assert email.html is not None
    assert "<script>" not in email.html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in email.html
    assert code in email.text


@pytest.mark.parametrize("kind", RENDERED)
def test_data_is_never_template_code_in_the_built_ins(kind: TemplateType) -> None:
    # The built-ins render outside the sandbox: what the caller sends is only ever a value.
    hostile = "{{ 7 * 7 }}{% for x in range(3) %}x{% endfor %}{{ ''.__class__ }}"
    data = {key: hostile for key in data_for(kind)}
    email = render_email(kind, data | {"expires_in_minutes": 15})
    assert "49" not in email.text and "xxx" not in email.text and "<class" not in email.text
    assert hostile in email.text or hostile in email.subject


def test_html_escapes_ampersands_in_links() -> None:
    email = render_email(TemplateType.RECOVERY_VALID, {"recovery_url": "https://x.test/r?a=1&b=2"})
    assert email.html is not None
    assert 'href="https://x.test/r?a=1&amp;b=2"' in email.html
    assert "https://x.test/r?a=1&b=2" in email.text


def test_stub_uses_the_callers_subject_and_body() -> None:
    email = render_email(
        TemplateType.STUB, {"subject": "Welcome <b>", "body": "Line one\nLine <two>"}
    )
    assert email.subject == "Welcome <b>"
    assert "Line one\nLine <two>" in email.text
    assert email.html is not None
    assert "Line &lt;two&gt;" in email.html


def test_stub_with_an_html_body_sends_it_as_given() -> None:
    email = render_email(
        TemplateType.STUB, {"subject": "S", "body": "text", "html_body": "<p>Mine</p>"}
    )
    assert email.html == "<p>Mine</p>"
    assert "text" in email.text


def test_stub_without_subject_renders_an_empty_subject() -> None:
    email = render_email(TemplateType.STUB, {"body": "only a body"})
    assert email.subject == ""
    assert "only a body" in email.text


# -- overrides ---------------------------------------------------------------------------


def override(root: Path, kind: str, name: str, text: str) -> Path:
    path = root / kind / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def test_override_replaces_only_the_subject(tmp_path: Path) -> None:
    override(tmp_path, "login_code_valid", "email.subject.j2", "Your Acme code: {{ login_code }}")
    builtin = render_email(TemplateType.LOGIN_CODE_VALID, {"login_code": "424242"})
    email = render_email(
        TemplateType.LOGIN_CODE_VALID, {"login_code": "424242"}, override_path=str(tmp_path)
    )
    assert email.subject == "Your Acme code: 424242"
    assert email.text == builtin.text
    assert email.html == builtin.html


def test_override_replaces_only_the_html_body(tmp_path: Path) -> None:
    override(tmp_path, "login_code_valid", "email.body.html.j2", "<p>Code {{ login_code }}</p>")
    builtin = render_email(TemplateType.LOGIN_CODE_VALID, {"login_code": "7"})
    email = render_email(
        TemplateType.LOGIN_CODE_VALID, {"login_code": "7"}, override_path=str(tmp_path)
    )
    assert email.html == "<p>Code 7</p>"
    assert email.subject == builtin.subject
    assert email.text == builtin.text


def test_override_plaintext_for_one_type_leaves_other_types_alone(tmp_path: Path) -> None:
    override(tmp_path, "login_code_valid", "email.body.plaintext.j2", "CODE={{ login_code }}")
    email = render_email(
        TemplateType.LOGIN_CODE_VALID, {"login_code": "7"}, override_path=str(tmp_path)
    )
    assert email.text == "CODE=7"
    other = render_email(
        TemplateType.RECOVERY_CODE_VALID, {"recovery_code": "9"}, override_path=str(tmp_path)
    )
    assert other.text == render_email(TemplateType.RECOVERY_CODE_VALID, {"recovery_code": "9"}).text


def test_override_html_is_autoescaped(tmp_path: Path) -> None:
    override(tmp_path, "login_code_valid", "email.body.html.j2", "<p>{{ login_code }}</p>")
    email = render_email(
        TemplateType.LOGIN_CODE_VALID, {"login_code": "<b>x</b>"}, override_path=str(tmp_path)
    )
    assert email.html == "<p>&lt;b&gt;x&lt;/b&gt;</p>"


def test_an_edited_override_is_picked_up(tmp_path: Path) -> None:
    path = override(tmp_path, "login_code_valid", "email.subject.j2", "First")

    def subject() -> str:
        return render_email(
            TemplateType.LOGIN_CODE_VALID, {"login_code": "1"}, override_path=str(tmp_path)
        ).subject

    assert subject() == "First"
    path.write_text("Second version", encoding="utf-8")
    stat = path.stat()
    os.utime(path, (stat.st_atime, stat.st_mtime + 5))  # a later edit, whatever the clock
    assert subject() == "Second version"


@pytest.mark.parametrize(
    "expression",
    [
        "{{ ''.__class__.__mro__ }}",
        "{{ ''.__class__.__mro__[1].__subclasses__() }}",
        "{{ login_code.__class__ }}",
        "{{ cycler.__init__.__globals__ }}",
    ],
)
def test_sandbox_refuses_internals_in_an_override(tmp_path: Path, expression: str) -> None:
    override(tmp_path, "login_code_valid", "email.subject.j2", f"Hi {expression}")
    with pytest.raises(TemplateError) as info:
        render_email(
            TemplateType.LOGIN_CODE_VALID, {"login_code": "1"}, override_path=str(tmp_path)
        )
    assert "unsafe" in str(info.value) or "undefined" in str(info.value)
    assert "email.subject.j2" in str(info.value)


def test_syntax_error_names_the_file_and_line(tmp_path: Path) -> None:
    path = override(
        tmp_path, "login_code_valid", "email.body.html.j2", "<p>\nHello\n{{ login_code }\n</p>"
    )
    with pytest.raises(TemplateError) as info:
        render_email(
            TemplateType.LOGIN_CODE_VALID, {"login_code": "1"}, override_path=str(tmp_path)
        )
    message = str(info.value)
    assert str(path) in message
    assert "line 3" in message


def test_runtime_error_names_the_file_and_line(tmp_path: Path) -> None:
    path = override(tmp_path, "login_code_valid", "email.body.plaintext.j2", "a\nb\n{{ 1 // 0 }}")
    with pytest.raises(TemplateError) as info:
        render_email(
            TemplateType.LOGIN_CODE_VALID, {"login_code": "1"}, override_path=str(tmp_path)
        )
    assert str(path) in str(info.value)
    assert "line 3" in str(info.value)


def test_unknown_filter_is_a_template_error(tmp_path: Path) -> None:
    override(tmp_path, "login_code_valid", "email.subject.j2", "{{ login_code | shout }}")
    with pytest.raises(TemplateError, match="shout"):
        render_email(
            TemplateType.LOGIN_CODE_VALID, {"login_code": "1"}, override_path=str(tmp_path)
        )


def test_missing_include_names_the_missing_file(tmp_path: Path) -> None:
    override(tmp_path, "login_code_valid", "email.subject.j2", "{% include 'footer.j2' %}")
    with pytest.raises(TemplateError, match=r"footer\.j2"):
        render_email(
            TemplateType.LOGIN_CODE_VALID, {"login_code": "1"}, override_path=str(tmp_path)
        )


def test_the_verification_code_shows_the_link_too_when_given() -> None:
    url = "https://id.example.org/verify?flow=1&code=615208"
    with_link = render_email(
        TemplateType.VERIFICATION_CODE_VALID,
        {"verification_code": "615208", "verification_url": url},
    )
    assert with_link.html is not None
    assert "615208" in with_link.text and url in with_link.text
    assert 'href="https://id.example.org/verify?flow=1&amp;code=615208"' in with_link.html
    code_only = render_email(TemplateType.VERIFICATION_CODE_VALID, {"verification_code": "615208"})
    assert code_only.html is not None
    assert "link" not in code_only.text and "href" not in code_only.html
