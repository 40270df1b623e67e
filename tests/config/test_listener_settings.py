"""The listener's settings: sizes as people write them, TLS required beyond loopback, one
tenant per username and per client network, passwords never kept in plain."""

from __future__ import annotations

from pathlib import Path

import pytest

from postroom.config import load_settings
from postroom.config.listener import parse_size
from postroom.config.passwords import keyed_hash, scrypt_hash, verify
from postroom.errors import ConfigError


def load(tmp_path: Path, text: str, **env: str) -> object:
    path = tmp_path / "postroom.yaml"
    path.write_text(text)
    return load_settings(path, environ=env).settings


@pytest.mark.parametrize(
    ("written", "size"),
    [(1000, 1000), ("10MiB", 10 * 1024**2), ("500KiB", 500 * 1024), ("2MB", 2_000_000)],
)
def test_sizes(written: object, size: int) -> None:
    assert parse_size(written) == size


def test_a_size_in_words_is_refused_naming_the_forms(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="write bytes, or like 10MiB"):
        load(tmp_path, "listener: {smtp: {max_message_size: ten megs}}\n")


def test_listening_beyond_loopback_needs_a_certificate(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="needs TLS") as info:
        load(tmp_path, "listener: {smtp: {host: 0.0.0.0}}\n")
    assert "cert_path and key_path" in str(info.value)


def test_the_environment_turns_the_listener_on(tmp_path: Path) -> None:
    settings = load(tmp_path, "{}\n", LISTENER_SMTP_PORT="2600")
    assert settings.listener.smtp_enabled and settings.listener.smtp.port == 2600  # type: ignore[attr-defined]
    assert not load(tmp_path, "{}\n").listener.smtp_enabled  # type: ignore[attr-defined]


def test_a_username_of_two_tenants_is_refused(tmp_path: Path) -> None:
    text = (
        "courier: {listener: {logins: [{username: kc, password: a-long-password-1}]}}\n"
        "tenants:\n  acme: {courier: {listener: {logins: "
        "[{username: kc, password: a-long-password-2}]}}}\n"
    )
    with pytest.raises(ConfigError, match="'kc' is a login of tenants 'default' and 'acme'"):
        load(tmp_path, text)


def test_overlapping_allow_from_networks_are_refused(tmp_path: Path) -> None:
    text = (
        "courier: {listener: {allow_from: [10.0.0.0/8]}}\n"
        "tenants:\n  acme: {courier: {listener: {allow_from: [10.1.2.3]}}}\n"
    )
    with pytest.raises(ConfigError, match=r"10\.1\.2\.3/32 overlaps 10\.0\.0\.0/8"):
        load(tmp_path, text)


def test_passwords_are_hashed_as_read_and_short_ones_refused(tmp_path: Path) -> None:
    settings = load(
        tmp_path,
        "courier: {listener: {logins: [{username: kc, password: a-long-password-1}]}}\n",
    )
    login = settings.courier.listener.logins[0]  # type: ignore[attr-defined]
    assert login.password.startswith("sha256$") and verify("a-long-password-1", login.password)
    assert "a-long-password-1" not in repr(settings)
    with pytest.raises(ConfigError, match="shorter than 12"):
        load(tmp_path, "courier: {listener: {logins: [{username: kc, password: short}]}}\n")
    with pytest.raises(ConfigError, match="starts like a stored hash"):
        load(tmp_path, "courier: {listener: {logins: [{username: kc, password: scrypt$1$2}]}}\n")


def test_stored_forms_match_only_their_password() -> None:
    for stored in (keyed_hash("right-password"), scrypt_hash("right-password")):
        assert verify("right-password", stored)
        assert not verify("wrong-password", stored)
        assert not verify(stored, stored)  # a hash is never a password
