"""The OAuth2 presets: no password in their URI, and set-up notes that name what to do."""

from __future__ import annotations

import pytest

from postroom.errors import InputError
from postroom.presets import PRESETS, build_uri, get_preset


def words(name: str) -> str:
    preset = PRESETS[name]
    return " ".join((*preset.steps, *preset.notes))


@pytest.mark.parametrize(
    ("name", "host"),
    [("microsoft365-oauth", "smtp.office365.com"), ("google-workspace-oauth", "smtp.gmail.com")],
)
def test_oauth_presets_build_a_uri_without_a_password(name: str, host: str) -> None:
    preset = get_preset(name)
    assert preset.kind == "smtp"
    assert build_uri(preset, username="a@example.org").uri == f"smtp://a%40example.org@{host}:587/"
    with pytest.raises(InputError, match="not a password"):
        build_uri(preset, username="a@example.org", password="pw")
    with pytest.raises(InputError, match="--username"):
        build_uri(preset)


def test_microsoft365_oauth_notes_cover_the_entra_and_exchange_set_up() -> None:
    text = words("microsoft365-oauth")
    for needed in (
        "SMTP.SendAsApp",
        "Grant admin consent",
        "New-ServicePrincipal",
        "Add-MailboxPermission",
        "provider: microsoft",
        "token_url",
    ):
        assert needed in text
    limits = [limit.to_json() for limit in PRESETS["microsoft365-oauth"].rate_limits]
    assert limits == [
        {"count": 30, "per": "1m"},
        {"count": 10_000, "per": "1d", "unit": "recipients"},
    ]


def test_google_workspace_oauth_notes_cover_the_service_account_and_delegation() -> None:
    text = words("google-workspace-oauth")
    for needed in (
        "service account",
        "Domain-wide delegation",
        "https://mail.google.com/",
        "provider: google",
        "service_account_json",
    ):
        assert needed in text
