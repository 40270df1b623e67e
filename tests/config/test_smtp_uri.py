"""The SMTP connection URI: the six security modes, ports, credentials, errors."""

from __future__ import annotations

import pytest

from postroom.config import Security, parse_smtp_uri
from postroom.errors import ConfigError

SECRET = "hunter2-Secret"


@pytest.mark.parametrize(
    ("uri", "security", "verify", "server_name"),
    [
        ("smtp://user:pass@mail.example.org:587/", Security.STARTTLS, True, None),
        (
            "smtp://user:pass@mail.example.org:587/?skip_ssl_verify=true",
            Security.STARTTLS,
            False,
            None,
        ),
        (
            "smtp://user:pass@mail.example.org:25/?disable_starttls=true",
            Security.CLEARTEXT,
            True,
            None,
        ),
        ("smtps://user:pass@mail.example.org:465/", Security.IMPLICIT_TLS, True, None),
        (
            "smtps://user:pass@mail.example.org:465/?skip_ssl_verify=true",
            Security.IMPLICIT_TLS,
            False,
            None,
        ),
        (
            "smtps://user:pass@10.0.0.5:465/?server_name=mail.example.test",
            Security.IMPLICIT_TLS,
            True,
            "mail.example.test",
        ),
        (
            "smtp://user:pass@10.0.0.5:587/?server_name=mail.example.test",
            Security.STARTTLS,
            True,
            "mail.example.test",
        ),
    ],
)
def test_the_six_modes(uri: str, security: Security, verify: bool, server_name: str | None) -> None:
    parsed = parse_smtp_uri(uri)
    assert parsed.security is security
    assert parsed.verify is verify
    assert parsed.server_name == server_name


def test_server_name_replaces_the_host_for_tls_only() -> None:
    parsed = parse_smtp_uri("smtps://10.0.0.5/?server_name=mail.example.test")
    assert parsed.host == "10.0.0.5"
    assert parsed.tls_name == "mail.example.test"
    assert parse_smtp_uri("smtps://mail.example.org/").tls_name == "mail.example.org"


@pytest.mark.parametrize(
    ("uri", "port"),
    [
        ("smtp://mail.example.org", 587),
        ("smtp://user:pass@mail.example.org/", 587),
        ("smtps://user:pass@mail.example.org/", 465),
        ("smtp://mail.example.org:2525/", 2525),
        ("smtps://mail.example.org:1465/", 1465),
        ("smtp://mail.example.org:25/?disable_starttls=true", 25),
    ],
)
def test_default_and_explicit_ports(uri: str, port: int) -> None:
    assert parse_smtp_uri(uri).port == port


def test_scheme_and_host_are_case_insensitive() -> None:
    parsed = parse_smtp_uri("SMTPS://user:pass@Mail.Example.ORG/")
    assert parsed.security is Security.IMPLICIT_TLS
    assert parsed.host == "mail.example.org"


@pytest.mark.parametrize(
    ("encoded", "decoded"),
    [
        ("p%40ss", "p@ss"),
        ("p%3Ass", "p:ss"),
        ("p%2Fss", "p/ss"),
        ("p%25ss", "p%ss"),
        ("p%2Bss", "p+ss"),
        ("p+ss", "p+ss"),  # a plus sign is not a space in the user-info part
        ("p%C3%A4ss", "päss"),
        ("%40%3A%2F%25%2B%C3%A4", "@:/%+ä"),
    ],
)
def test_password_is_percent_decoded(encoded: str, decoded: str) -> None:
    parsed = parse_smtp_uri(f"smtp://user:{encoded}@mail.example.org:587/")
    assert parsed.password == decoded
    assert parsed.username == "user"


def test_user_is_percent_decoded() -> None:
    parsed = parse_smtp_uri("smtp://some-user%40mailgun.example.org:pw@smtp.mailgun.org:587/")
    assert parsed.username == "some-user@mailgun.example.org"
    assert parsed.password == "pw"


def test_no_credentials() -> None:
    parsed = parse_smtp_uri("smtp://relay.example.org:25/")
    assert parsed.username is None
    assert parsed.password is None


def test_redacted_form_hides_the_password() -> None:
    parsed = parse_smtp_uri(f"smtp://user:{SECRET}@host:587/")
    assert parsed.redacted() == "smtp://user:***@host:587/"
    assert str(parsed) == "smtp://user:***@host:587/"
    assert SECRET not in repr(parsed)
    assert parsed.password == SECRET


def test_redacted_form_keeps_the_mode_and_hides_an_encoded_password() -> None:
    parsed = parse_smtp_uri("smtps://user:p%40ss%2Fw0rd@host/?skip_ssl_verify=true")
    text = str(parsed)
    assert text.startswith("smtps://user:***@host:465/")
    assert "skip_ssl_verify=true" in text
    assert "p@ss" not in text and "p%40ss" not in text and "w0rd" not in text


def test_redacted_form_without_a_password() -> None:
    assert str(parse_smtp_uri("smtp://relay.example.org/")) == "smtp://relay.example.org:587/"


def _error(uri: str) -> str:
    with pytest.raises(ConfigError) as info:
        parse_smtp_uri(uri)
    message = str(info.value)
    assert SECRET not in message
    return message


@pytest.mark.parametrize("scheme", ["http", "smtpx", "ftp"])
def test_another_scheme_is_refused(scheme: str) -> None:
    message = _error(f"{scheme}://user:{SECRET}@host:587/")
    assert repr(scheme) in message
    assert "smtp://" in message and "smtps://" in message


def test_missing_scheme_is_refused() -> None:
    message = _error(f"user:{SECRET}@host:587")
    assert "smtp://" in message


def test_missing_host_is_refused() -> None:
    assert "no host" in _error(f"smtp://user:{SECRET}@:587/")
    assert "no host" in _error("smtp:///")


def test_unknown_query_parameter_is_named_with_the_allowed_ones() -> None:
    message = _error(f"smtp://user:{SECRET}@host:587/?verify_tls=false")
    assert "'verify_tls'" in message
    for allowed in ("skip_ssl_verify", "disable_starttls", "server_name"):
        assert allowed in message


@pytest.mark.parametrize("flag", ["skip_ssl_verify", "disable_starttls"])
def test_non_boolean_flag_is_refused(flag: str) -> None:
    message = _error(f"smtp://user:{SECRET}@host:587/?{flag}=maybe")
    assert flag in message
    assert "true or false" in message


@pytest.mark.parametrize("port", ["abc", "587x", "99999", "-1"])
def test_bad_port_is_refused(port: str) -> None:
    message = _error(f"smtp://user:{SECRET}@host:{port}/")
    assert "port" in message.lower()


def test_port_zero_is_refused_not_replaced_by_the_default() -> None:
    assert "port 0" in _error(f"smtp://user:{SECRET}@host:0/")


def test_host_with_a_space_is_refused() -> None:
    assert "space" in _error(f"smtp://user:{SECRET}@mail example.org:587/")


def test_empty_server_name_is_refused() -> None:
    assert "server_name" in _error(f"smtps://user:{SECRET}@host/?server_name=")


def test_disable_starttls_with_implicit_tls_is_refused() -> None:
    assert "disable_starttls" in _error(f"smtps://user:{SECRET}@host/?disable_starttls=true")


@pytest.mark.parametrize("char", ["/", "?", "#"])
def test_unencoded_special_character_in_the_password_is_refused_without_echoing_it(
    char: str,
) -> None:
    # Without the check, the parser cuts the password there and prints the piece before it
    # as a "port", or connects to a host named after the user.
    password = f"Zq9x{char}{SECRET}"
    with pytest.raises(ConfigError) as info:
        parse_smtp_uri(f"smtp://user:{password}@host:587/")
    message = str(info.value)
    assert "Zq9x" not in message
    assert SECRET not in message
    assert "percent-encoded" in message


def test_unencoded_slash_in_the_user_does_not_silently_change_the_host() -> None:
    with pytest.raises(ConfigError):
        parse_smtp_uri(f"smtp://us/er:{SECRET}@mail.example.org/")


def test_unencoded_at_sign_in_the_password_still_finds_the_host() -> None:
    parsed = parse_smtp_uri("smtp://user:p@ss@mail.example.org:587/")
    assert parsed.host == "mail.example.org"
    assert parsed.password == "p@ss"


def test_empty_uri_is_refused() -> None:
    assert "empty" in _error("   ")
