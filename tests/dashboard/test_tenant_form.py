"""The tenant form's mapping between a courier section and form fields, and the presets the
picker offers."""

from __future__ import annotations

import pytest

from postroom.config.secrets import mask_secrets
from postroom.config.smtp_uri import parse_smtp_uri
from postroom.errors import InputError
from postroom.presets import PRESETS
from postroom.web.dashboard.tenant_form import (
    BRANDING_FIELDS,
    build_connection_uri,
    courier_from_form,
    form_from_courier,
    form_from_submission,
    preset_choice,
)

SMTP_FIELDS = {
    "strategy": "smtp",
    "host": "smtp.example.org",
    "port": "587",
    "security": "starttls",
    "server_name": "",
    "username": "user@example.org",
    "password": "",
    "from_address": "no-reply@example.org",
}


@pytest.mark.parametrize(
    ("security", "server_name", "expected"),
    [
        ("starttls", "", "smtp://u:p@mail.example.org:587/"),
        ("starttls-unverified", "", "smtp://u:p@mail.example.org:587/?skip_ssl_verify=true"),
        ("cleartext", "", "smtp://u:p@mail.example.org:587/?disable_starttls=true"),
        ("tls", "", "smtps://u:p@mail.example.org:587/"),
        ("tls-unverified", "", "smtps://u:p@mail.example.org:587/?skip_ssl_verify=true"),
        (
            "tls",
            "cert.example.org",
            "smtps://u:p@mail.example.org:587/?server_name=cert.example.org",
        ),
    ],
)
def test_every_security_mode_builds_its_uri(security: str, server_name: str, expected: str) -> None:
    uri = build_connection_uri(
        host="mail.example.org",
        port="587",
        security=security,
        server_name=server_name,
        username="u",
        password="p",
    )
    assert uri == expected
    form = form_from_courier({"smtp": {"connection_uri": uri}})
    assert (form.security, form.server_name, form.password_stored) == (security, server_name, True)


def test_credentials_are_percent_encoded_and_round_trip() -> None:
    uri = build_connection_uri(
        host="smtp.mailgun.org",
        port="",
        security="starttls",
        server_name="",
        username="some-user@mailgun.example.org",
        password="p@ss:w/rd%",
    )
    assert uri.startswith("smtp://some-user%40mailgun.example.org:p%40ss%3Aw%2Frd%25@")
    parsed = parse_smtp_uri(uri)
    assert (parsed.username, parsed.password, parsed.port) == (
        "some-user@mailgun.example.org",
        "p@ss:w/rd%",
        587,
    )
    assert build_connection_uri(
        host="relay.example.org",
        port="25",
        security="starttls",
        server_name="",
        username="",
        password=None,
    ) == ("smtp://relay.example.org:25/")


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"host": ""}, "host"),
        ({"host": "{domain}.mail.protection.outlook.com"}, "host"),
        ({"port": "99999"}, "port"),
        ({"security": "maybe"}, "security"),
        ({"username": "", "password": "x"}, "username"),
        ({"security": "cleartext", "server_name": "a.example"}, "server_name"),
        ({"strategy": "pigeon"}, "strategy"),
        ({"preset": "nope"}, "preset"),
    ],
)
def test_what_the_form_can_tell_is_wrong_names_the_field(
    changes: dict[str, str], field: str
) -> None:
    with pytest.raises(InputError) as caught:
        courier_from_form({**SMTP_FIELDS, **changes}, {})
    assert caught.value.field == field


def test_empty_password_keeps_the_stored_one_and_other_keys_stay() -> None:
    stored = mask_secrets(
        {
            "smtp": {
                "connection_uri": "smtp://user%40example.org:secret@smtp.example.org:587/",
                "headers": {"X-Tag": "identity"},
            },
            "intake_tokens": ["sha256:abc"],
            "message_retries": 2,
        }
    )
    before = form_from_courier(stored)
    assert before.password_stored and before.username == "user@example.org"
    out = courier_from_form(SMTP_FIELDS, stored)
    assert (
        out["smtp"]["connection_uri"] == "smtp://user%40example.org:%2A%2A%2A@smtp.example.org:587/"
    )
    assert parse_smtp_uri(out["smtp"]["connection_uri"]).password == "***"
    assert out["smtp"]["headers"] == {"X-Tag": "identity"}
    assert out["intake_tokens"] == ["***"] and out["message_retries"] == 2
    # No username: no login at all, nothing kept.
    anonymous = courier_from_form({**SMTP_FIELDS, "username": ""}, stored)
    assert anonymous["smtp"]["connection_uri"] == "smtp://smtp.example.org:587/"


def test_http_settings_with_write_only_auth_and_masked_headers() -> None:
    stored = mask_secrets(
        {
            "http": {
                "request_config": {
                    "url": "https://api.example.org/send",
                    "headers": {"Content-Type": "application/json", "X-Api-Key": "hdr"},
                    "auth": {
                        "type": "api_key",
                        "config": {"name": "Authorization", "value": "Bearer k", "in": "header"},
                    },
                    "body": "function(ctx) {to: ctx.recipient}\n",
                }
            }
        }
    )
    form = form_from_courier(stored)
    assert form.strategy == "http" and form.http_auth == "api_key" and form.http_key_stored
    assert form.http_headers == "Content-Type: application/json\nX-Api-Key: ***"
    fields = {
        "strategy": "http",
        "http_url": form.http_url,
        "http_method": "post",
        "http_headers": form.http_headers,
        "http_auth": "api_key",
        "http_key_name": "Authorization",
        "http_key_in": "header",
        "http_key_value": "",
        "http_body": "function(ctx) {\r\n  to: ctx.recipient\r\n}",
    }
    out = courier_from_form(fields, stored)
    config = out["http"]["request_config"]
    # The masked header goes back masked: the registry puts the stored value in its place.
    assert config["headers"] == {"Content-Type": "application/json", "X-Api-Key": "***"}
    assert config["auth"]["config"] == {"name": "Authorization", "value": "***", "in": "header"}
    assert (
        config["method"] == "POST" and config["body"] == "function(ctx) {\n  to: ctx.recipient\n}\n"
    )
    assert "smtp" not in out
    with pytest.raises(InputError) as caught:
        courier_from_form({**fields, "http_auth": "basic_auth", "http_user": "api"}, stored)
    assert caught.value.field == "http_password"
    with pytest.raises(InputError) as caught:
        courier_from_form({**fields, "http_headers": "X-New: ***"}, stored)
    assert caught.value.field == "http_headers"
    none = courier_from_form(
        {**fields, "http_auth": "none", "http_body": "", "http_headers": ""}, stored
    )
    assert "auth" not in none["http"]["request_config"]
    assert "body" not in none["http"]["request_config"]


def test_a_refused_form_shows_what_was_typed_but_no_credential() -> None:
    typed = {**SMTP_FIELDS, "host": "typo host", "password": "typed-secret"}
    shown = form_from_submission(typed, form_from_courier({}))
    assert shown.host == "typo host" and "typed-secret" not in repr(shown)


def test_preset_choices_fill_what_the_provider_needs() -> None:
    sendgrid = preset_choice(PRESETS["sendgrid"])
    assert (sendgrid["host"], sendgrid["port"], sendgrid["security"], sendgrid["username"]) == (
        "smtp.sendgrid.net",
        "587",
        "starttls",
        "apikey",
    )
    assert sendgrid["notes"] and sendgrid["steps"]
    m365 = preset_choice(PRESETS["microsoft365"])
    assert m365["username"] == "" and m365["login"] and "sign-in address" in m365["username_format"]
    assert any("30 messages per 1m" in limit for limit in m365["limits"])
    relay = preset_choice(PRESETS["microsoft365-relay"])
    assert relay["host"] == "{domain}.mail.protection.outlook.com" and not relay["login"]
    assert preset_choice(PRESETS["mailgun"])["host"] == "smtp.mailgun.org"
    http = preset_choice(PRESETS["sendgrid-http"])
    assert http["kind"] == "http" and http["auth"] == "api_key"
    assert http["key_hint"] == "Bearer {api_key}" and "function(ctx)" in http["body"]


def test_language_and_branding_round_trip_and_absent_fields_stay() -> None:
    stored = {"branding": {"footer_text": "Old footer", "logo_url": "https://a.example/l.png"}}
    form = form_from_courier(stored)
    assert form.footer_text == "Old footer" and form.logo_url == "https://a.example/l.png"
    out = courier_from_form(
        {
            **SMTP_FIELDS,
            "locale": "pt-BR",
            "product_name": "Acme",
            "postal_address": "1 Main Street",
            "footer_text": "",  # emptied: removed
        },
        stored,
    )
    assert out["locale"] == "pt-BR"
    assert out["branding"] == {
        "product_name": "Acme",
        "address": "1 Main Street",
        "logo_url": "https://a.example/l.png",  # not in this submission: kept
    }
    cleared = courier_from_form(
        {**SMTP_FIELDS, **{name: "" for name in BRANDING_FIELDS}, "locale": ""}, out
    )
    assert "branding" not in cleared and "locale" not in cleared
