"""Provider presets: the connection URIs, validation, notes, limits and the registry."""

from __future__ import annotations

import base64
import hashlib
import hmac
import importlib.util
from typing import Any

import pytest

from postroom.config.settings import CourierSettings
from postroom.config.smtp_uri import parse_smtp_uri
from postroom.errors import InputError
from postroom.presets import (
    PRESETS,
    SES_REGIONS,
    build_uri,
    derive_ses_smtp_password,
    encode_credential,
    get_preset,
    looks_like_aws_secret_key,
)

# the documentation, "Provider presets": every name of its table.
DOCUMENTED_NAMES = (
    "sendgrid",
    "mailgun",
    "amazon-ses",
    "postmark",
    "microsoft365",
    "microsoft365-relay",
    "microsoft365-direct-send",
    "azure-communication-services",
    "google-workspace",
    "gmail",
    "outlook",
)
ACS_USER = "my-acs.0f1e2d3c-4b5a-6978-8a9b-0c1d2e3f4a5b.11111111-2222-3333-4444-555555555555"
SES_USER = "AKIAIOSFODNN7EXAMPLE"
SES_SMTP_PASSWORD = "BExampleSmtpPasswordThatIs44CharactersLong12"
# AWS's documentation example secret access key (40 characters).
AWS_SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"


def uri(name: str, **kwargs: Any) -> str:
    return build_uri(get_preset(name), **kwargs).uri


def warnings(name: str, **kwargs: Any) -> tuple[str, ...]:
    return build_uri(get_preset(name), **kwargs).warnings


# -- the documented URI formats ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "kwargs", "expected"),
    [
        ("sendgrid", {"password": "SG.abc"}, "smtp://apikey:SG.abc@smtp.sendgrid.net:587/"),
        (
            "sendgrid",
            {"username": "apikey", "password": "SG.abc"},
            "smtp://apikey:SG.abc@smtp.sendgrid.net:587/",
        ),
        (
            "mailgun",
            {"username": "postmaster@mg.example.org", "password": "pw"},
            "smtp://postmaster%40mg.example.org:pw@smtp.mailgun.org:587/",
        ),
        (
            "mailgun",
            {"username": "postmaster@mg.example.org", "password": "pw", "region": "eu"},
            "smtp://postmaster%40mg.example.org:pw@smtp.eu.mailgun.org:587/",
        ),
        (
            "amazon-ses",
            {"username": SES_USER, "password": SES_SMTP_PASSWORD, "region": "eu-west-1"},
            f"smtp://{SES_USER}:{SES_SMTP_PASSWORD}@email-smtp.eu-west-1.amazonaws.com:587/",
        ),
        (
            "postmark",
            {"password": "00000000-1111-2222-3333-444444444444"},
            "smtp://00000000-1111-2222-3333-444444444444:00000000-1111-2222-3333-444444444444"
            "@smtp.postmarkapp.com:587/",
        ),
        (
            "microsoft365",
            {"username": "app@contoso.com", "password": "pw"},
            "smtp://app%40contoso.com:pw@smtp.office365.com:587/",
        ),
        (
            "microsoft365-relay",
            {"domain": "contoso.co.uk"},
            "smtp://contoso-co-uk.mail.protection.outlook.com:25/",
        ),
        (
            "microsoft365-direct-send",
            {"domain": "Contoso.com."},
            "smtp://contoso-com.mail.protection.outlook.com:25/",
        ),
        (
            "azure-communication-services",
            {"username": ACS_USER, "password": "secret~value"},
            f"smtp://{ACS_USER}:secret~value@smtp.azurecomm.net:587/",
        ),
        (
            "google-workspace",
            {"username": "a@example.org", "password": "abcdefghijklmnop"},
            "smtp://a%40example.org:abcdefghijklmnop@smtp.gmail.com:587/",
        ),
        (
            "gmail",
            {"username": "a@gmail.com", "password": "abcd efgh ijkl mnop"},
            "smtp://a%40gmail.com:abcd%20efgh%20ijkl%20mnop@smtp.gmail.com:587/",
        ),
        (
            "outlook",
            {"username": "a@outlook.com", "password": "pw"},
            "smtp://a%40outlook.com:pw@smtp-mail.outlook.com:587/",
        ),
    ],
)
def test_uri_has_the_exact_spec_format(name: str, kwargs: dict[str, Any], expected: str) -> None:
    built = uri(name, **kwargs)
    assert built == expected
    # And Postroom itself reads it back to the same credentials.
    parsed = parse_smtp_uri(built)
    if "password" in kwargs:
        assert parsed.password == kwargs["password"]


def test_every_spec_preset_exists_with_its_documented_host() -> None:
    assert set(DOCUMENTED_NAMES) <= set(PRESETS)
    hosts = {name: PRESETS[name].host for name in DOCUMENTED_NAMES}
    assert hosts["sendgrid"] == "smtp.sendgrid.net"
    assert hosts["outlook"] == "smtp-mail.outlook.com"
    assert hosts["microsoft365"] == "smtp.office365.com"
    assert hosts["azure-communication-services"] == "smtp.azurecomm.net"
    for name in DOCUMENTED_NAMES:
        preset = PRESETS[name]
        assert preset.kind == "smtp"
        assert preset.steps, name
        assert preset.notes, name
        assert preset.username_format, name


def test_credentials_are_percent_encoded_per_rfc_3986() -> None:
    assert encode_credential("some-user@mailgun.example.org") == "some-user%40mailgun.example.org"
    # Unreserved characters stay; everything else is encoded.
    assert encode_credential("Az09-._~") == "Az09-._~"
    assert encode_credential("p@ss:w/rd%?#[] +") == "p%40ss%3Aw%2Frd%25%3F%23%5B%5D%20%2B"
    built = uri("mailgun", username="some-user@mailgun.example.org", password="p@ss:w/rd%?#")
    assert built == (
        "smtp://some-user%40mailgun.example.org:p%40ss%3Aw%2Frd%25%3F%23@smtp.mailgun.org:587/"
    )
    assert parse_smtp_uri(built).password == "p@ss:w/rd%?#"


# -- validation -------------------------------------------------------------------------------


def test_sendgrid_username_must_be_apikey() -> None:
    with pytest.raises(InputError) as info:
        uri("sendgrid", username="me@example.org", password="SG.key")
    assert info.value.field == "username"
    assert "apikey" in str(info.value)
    assert "SG.key" not in str(info.value)


def test_sendgrid_warns_about_a_password_that_is_not_an_api_key() -> None:
    assert warnings("sendgrid", password="SG.realkey") == ()
    (warning,) = warnings("sendgrid", password="hunter2")
    assert "API key" in warning
    assert "hunter2" not in warning


def test_unknown_ses_region_lists_the_regions() -> None:
    with pytest.raises(InputError) as info:
        uri("amazon-ses", username=SES_USER, password=SES_SMTP_PASSWORD, region="eu-westish-9")
    message = str(info.value)
    assert info.value.field == "region"
    assert "eu-westish-9" in message
    for region in ("us-east-1", "eu-west-1", "ap-southeast-2"):
        assert region in message
    with pytest.raises(InputError) as missing:
        uri("amazon-ses", username=SES_USER, password=SES_SMTP_PASSWORD)
    assert "--region" in str(missing.value)
    assert "us-east-1" in str(missing.value)


def test_unknown_mailgun_region_is_refused() -> None:
    with pytest.raises(InputError) as info:
        uri("mailgun", username="postmaster@mg.example.org", password="pw", region="asia")
    assert "us, eu" in str(info.value)


@pytest.mark.parametrize("name", ["microsoft365-relay", "microsoft365-direct-send"])
def test_relay_and_direct_send_need_a_domain(name: str) -> None:
    with pytest.raises(InputError) as info:
        uri(name)
    assert info.value.field == "domain"
    assert "--domain" in str(info.value)
    with pytest.raises(InputError):
        uri(name, domain="not a domain")
    with pytest.raises(InputError) as login:
        uri(name, domain="contoso.com", username="a@contoso.com", password="pw")
    assert "no username or password" in str(login.value)
    assert "pw" not in str(login.value).split("password")[-1]


@pytest.mark.parametrize(
    ("name", "missing", "kwargs"),
    [
        ("sendgrid", "password", {}),
        ("mailgun", "username", {"password": "pw"}),
        ("mailgun", "password", {"username": "postmaster@mg.example.org"}),
        ("microsoft365", "password", {"username": "a@contoso.com"}),
        ("gmail", "username", {"password": "abcdefghijklmnop"}),
        ("postmark", "password", {}),
        ("azure-communication-services", "password", {"username": ACS_USER}),
    ],
)
def test_missing_credentials_are_named(name: str, missing: str, kwargs: dict[str, Any]) -> None:
    with pytest.raises(InputError) as info:
        uri(name, **kwargs)
    assert info.value.field == missing
    assert f"--{missing}" in str(info.value)


@pytest.mark.parametrize(
    ("username", "warned"),
    [
        (ACS_USER, False),
        ("smtpusername1", False),  # an SMTP Username created on the resource (free form)
        ("newuser1@contoso.com", False),  # SMTP Usernames may also look like an address
        ("my-acs|0f1e2d3c-4b5a-6978-8a9b-0c1d2e3f4a5b|11111111-2222-3333-4444-555555555555", True),
        ("0f1e2d3c-4b5a-6978-8a9b-0c1d2e3f4a5b", True),  # only the application id
        ("my-acs.my-app.my-tenant", True),
    ],
)
def test_acs_username_format_is_warned_about_not_refused(username: str, warned: bool) -> None:
    result = build_uri(
        get_preset("azure-communication-services"), username=username, password="secret"
    )
    assert result.uri.endswith("@smtp.azurecomm.net:587/")
    assert bool(result.warnings) is warned
    if warned:
        assert "<resource name>.<application id>.<tenant id>" in result.warnings[0]


def test_postmark_token_is_both_user_and_password() -> None:
    token = "00000000-1111-2222-3333-444444444444"
    assert uri("postmark", username=token) == uri("postmark", password=token)
    with pytest.raises(InputError):
        uri("postmark", username=token, password="another")


def test_outlook_warns_that_passwords_are_refused() -> None:
    (warning,) = warnings("outlook", username="me@outlook.com", password="pw")
    assert "2024-09-16" in warning
    assert "oauth2" in warning


def test_http_preset_and_options_that_do_not_apply_are_refused() -> None:
    with pytest.raises(InputError):
        uri("sendgrid", password="SG.x", region="eu")
    with pytest.raises(InputError):
        uri("gmail", username="a@gmail.com", password="abcdefghijklmnop", domain="x.org")
    with pytest.raises(InputError):
        uri("gmail", username="a@gmail.com", password="pw", derive_from_secret_key=True)


# -- Amazon SES: secret access key vs SMTP password ----------------------------------------------


def test_a_secret_access_key_given_as_password_is_recognised_and_explained() -> None:
    assert looks_like_aws_secret_key(AWS_SECRET)
    assert not looks_like_aws_secret_key(SES_SMTP_PASSWORD)
    with pytest.raises(InputError) as info:
        uri("amazon-ses", username=SES_USER, password=AWS_SECRET, region="us-east-1")
    message = str(info.value)
    assert "secret access key" in message
    assert "--derive-from-secret-key" in message
    assert AWS_SECRET not in message


# Published vectors: hashicorp/terraform-provider-aws,
# internal/service/iam/access_key_test.go, TestSESSMTPPasswordFromSecretKeySigV4.
@pytest.mark.parametrize(
    ("region", "secret", "expected"),
    [
        ("eu-central-1", "some+secret+key", "BMXhUYlu5Z3gSXVQORxlVa7XPaz91aGWdfHxvkOZdWZ2"),
        ("eu-central-1", "another+secret+key", "BBbphbrQmrKMx42d1N6+C7VINYEBGI5v9VsZeTxwskfh"),
        ("us-west-1", "some+secret+key", "BH+jbMzper5WwlwUar9E1ySBqHa9whi0GPo+sJ0mVYJj"),
        ("us-west-1", "another+secret+key", "BKVmjjMDFk/qqw8EROW99bjCS65PF8WKvK5bSr4Y6EqF"),
    ],
)
def test_ses_smtp_password_matches_published_vectors(
    region: str, secret: str, expected: str
) -> None:
    assert derive_ses_smtp_password(secret, region) == expected


def _independent_ses_password(secret: str, region: str) -> str:
    """AWS's documented steps, written out again without the code under test."""
    key = hmac.new(("AWS4" + secret).encode(), b"11111111", hashlib.sha256).digest()
    key = hmac.new(key, region.encode(), hashlib.sha256).digest()
    key = hmac.new(key, b"ses", hashlib.sha256).digest()
    key = hmac.new(key, b"aws4_request", hashlib.sha256).digest()
    key = hmac.new(key, b"SendRawEmail", hashlib.sha256).digest()
    return base64.b64encode(b"\x04" + key).decode()


def test_derive_from_secret_key_builds_the_uri_with_the_smtp_password() -> None:
    result = build_uri(
        get_preset("amazon-ses"),
        username=SES_USER,
        password=AWS_SECRET,
        region="EU-WEST-1",
        derive_from_secret_key=True,
    )
    expected = _independent_ses_password(AWS_SECRET, "eu-west-1")
    assert len(expected) == 44
    assert parse_smtp_uri(result.uri).password == expected
    assert "email-smtp.eu-west-1.amazonaws.com:587/" in result.uri
    assert AWS_SECRET not in result.uri
    assert any("derived" in w for w in result.warnings)
    with pytest.raises(InputError) as info:
        build_uri(
            get_preset("amazon-ses"),
            username=SES_USER,
            password="short",
            region="eu-west-1",
            derive_from_secret_key=True,
        )
    assert "40-character" in str(info.value)


def test_ses_regions_include_the_common_ones() -> None:
    for region in ("us-east-1", "us-east-2", "us-west-2", "eu-west-1", "eu-central-1"):
        assert region in SES_REGIONS
    assert len(set(SES_REGIONS)) == len(SES_REGIONS)


# -- notes and limits -----------------------------------------------------------------------------


def _words(name: str) -> str:
    preset = PRESETS[name]
    return " ".join((*preset.notes, *preset.steps)).lower()


def test_microsoft365_relay_notes_explain_5_7_57_and_the_connector() -> None:
    text = _words("microsoft365-relay")
    assert "5.7.57" in text
    assert "smtp.office365.com:587" in text
    assert "connector" in text
    assert "static public ip" in text
    assert "spf" in text


def test_direct_send_notes_say_it_reaches_only_own_mailboxes() -> None:
    text = _words("microsoft365-direct-send")
    assert "only reaches mailboxes in your own organisation" in text


def test_microsoft365_notes_cover_smtp_auth_mfa_and_oauth() -> None:
    text = _words("microsoft365")
    assert "smtp auth" in text
    assert "app password" in text
    assert "oauth2" in text


def test_outlook_notes_point_to_oauth2() -> None:
    text = _words("outlook")
    assert "2024-09-16" in text
    assert "oauth2" in text


@pytest.mark.parametrize(
    ("name", "needles"),
    [
        ("sendgrid", ("apikey", "mail send")),
        ("amazon-ses", ("smtp credentials", "sandbox", "secret access key", "region")),
        ("gmail", ("2-step verification", "app password")),
        ("google-workspace", ("2-step verification", "app password")),
        ("postmark", ("server api token", "both the username and the password")),
        ("mailgun", ("smtp credentials", "--region eu")),
        ("azure-communication-services", ("client secret", "role", "smtp username")),
    ],
)
def test_setup_notes_name_what_the_user_must_do(name: str, needles: tuple[str, ...]) -> None:
    text = _words(name)
    for needle in needles:
        assert needle in text, (name, needle)


@pytest.mark.parametrize(
    ("name", "limits"),
    [
        ("microsoft365", [(30, 60.0, "messages"), (10_000, 86400.0, "recipients")]),
        ("gmail", [(500, 86400.0, "messages")]),
        ("google-workspace", [(2_000, 86400.0, "messages")]),
        ("sendgrid", []),
    ],
)
def test_tenant_preset_supplies_rate_limits_it_did_not_set(
    name: str, limits: list[tuple[int, float, str]]
) -> None:
    courier = CourierSettings.model_validate({"preset": name})
    assert [(r.count, r.per, r.unit) for r in courier.effective_rate_limits] == limits
    assert courier.rate_limits == []  # the input is not rewritten


def test_tenant_rate_limits_win_over_the_preset() -> None:
    own = CourierSettings.model_validate(
        {"preset": "microsoft365", "rate_limits": [{"count": 5, "per": "1s"}]}
    )
    assert [(r.count, r.per, r.unit) for r in own.effective_rate_limits] == [(5, 1.0, "messages")]
    none = CourierSettings.model_validate({"preset": "microsoft365", "rate_limits": []})
    assert none.effective_rate_limits == []
    assert CourierSettings().effective_rate_limits == []


def test_rate_limits_are_validated() -> None:
    with pytest.raises(ValueError, match="greater than 0"):
        CourierSettings.model_validate({"rate_limits": [{"count": 0, "per": "1m"}]})
    with pytest.raises(ValueError, match="duration"):
        CourierSettings.model_validate({"rate_limits": [{"count": 1, "per": "soon"}]})
    with pytest.raises(ValueError):
        CourierSettings.model_validate({"rate_limits": [{"count": 1, "per": "1m", "unit": "x"}]})
    from_env = CourierSettings.model_validate({"rate_limits": "[{count: 30, per: 1m}]"})
    assert [(r.count, r.per) for r in from_env.effective_rate_limits] == [(30, 60.0)]


def test_unknown_preset_in_settings_lists_the_known_ones() -> None:
    with pytest.raises(ValueError) as info:
        CourierSettings.model_validate({"preset": "sendgird"})
    message = str(info.value)
    assert "sendgird" in message
    for name in DOCUMENTED_NAMES:
        assert name in message
    assert CourierSettings.model_validate({"preset": "SendGrid"}).preset == "sendgrid"


def test_get_preset_lists_known_names() -> None:
    with pytest.raises(InputError) as info:
        get_preset("nope")
    assert info.value.field == "preset"
    assert "sendgrid" in str(info.value)


def test_registry_includes_http_presets_when_they_exist() -> None:
    if importlib.util.find_spec("postroom.presets.http") is None:
        assert all(p.kind == "smtp" for p in PRESETS.values())
        return
    from postroom.presets.http import HTTP_PRESETS

    for preset in HTTP_PRESETS:
        assert PRESETS[preset.name] is preset
        with pytest.raises(InputError, match="HTTP API preset"):
            build_uri(preset, password="x")


def test_preset_json_has_what_show_prints() -> None:
    data = PRESETS["microsoft365"].to_json()
    assert data["uri_template"] == "smtp://{username}:{password}@smtp.office365.com:587/"
    assert data["rate_limits"] == [
        {"count": 30, "per": "1m"},
        {"count": 10000, "per": "1d", "unit": "recipients"},
    ]
    assert data["steps"]
    assert data["notes"]
