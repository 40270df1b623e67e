"""``courier.smtp.oauth2``: what each provider needs, errors that name the key (and never the
secret), environment variables, and credentials encrypted and masked for API tenants."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from postroom.config import Settings, load_settings
from postroom.config.oauth2 import OAuth2Settings
from postroom.config.tenants import TenantRegistry
from postroom.errors import ConfigError, InputError
from postroom.store import Store

SECRET = "Xq8~the-client-secret-value-0123456789"
URI = "smtp://sender%40example.org@smtp.office365.com:587/"
MICROSOFT = {
    "provider": "microsoft",
    "tenant_id": "contoso.onmicrosoft.com",
    "client_id": "0b5c5d4e-0000-4000-8000-00000000c1d0",
    "client_secret": SECRET,
}


def db_bytes(tmp_path: Path) -> bytes:
    return b"".join(p.read_bytes() for p in tmp_path.glob("postroom.db*"))


def load(tmp_path: Path, smtp: dict[str, Any], env: dict[str, str] | None = None) -> Settings:
    path = tmp_path / "postroom.yaml"
    path.write_text(yaml.safe_dump({"courier": {"smtp": smtp}}))
    return load_settings(path, environ=env or {}).settings


def refused(tmp_path: Path, smtp: dict[str, Any]) -> str:
    with pytest.raises(ConfigError) as caught:
        load(tmp_path, smtp)
    text = str(caught.value)
    assert SECRET not in text
    return text


def test_microsoft_client_credentials_defaults(tmp_path: Path) -> None:
    oauth = load(tmp_path, {"connection_uri": URI, "oauth2": MICROSOFT}).courier.smtp.oauth2
    assert oauth.effective_flow == "client_credentials"
    assert oauth.token_endpoint() == (
        "https://login.microsoftonline.com/contoso.onmicrosoft.com/oauth2/v2.0/token"
    )
    assert oauth.effective_scope() == "https://outlook.office365.com/.default"
    assert SECRET not in repr(oauth)


def test_national_clouds_override_the_token_url_and_device_codes_sit_next_to_it() -> None:
    url = "https://login.microsoftonline.us/contoso/oauth2/v2.0/token"
    oauth = OAuth2Settings.model_validate({**MICROSOFT, "token_url": url})
    assert oauth.token_endpoint() == url
    device = OAuth2Settings(provider="microsoft", flow="device_code", client_id="app")
    assert device.token_endpoint() == ("https://login.microsoftonline.com/common/oauth2/v2.0/token")
    assert device.device_code_endpoint() == (
        "https://login.microsoftonline.com/common/oauth2/v2.0/devicecode"
    )
    assert device.effective_scope() == "https://outlook.office.com/SMTP.Send offline_access"


@pytest.mark.parametrize(
    ("oauth", "expected"),
    [
        ({"client_id": "x"}, "client_id is set but provider is not"),
        (
            {k: v for k, v in MICROSOFT.items() if k != "client_secret"},
            "client_secret is required for provider microsoft with flow client_credentials",
        ),
        (
            {k: v for k, v in MICROSOFT.items() if k != "tenant_id"},
            "tenant_id is required",
        ),
        ({**MICROSOFT, "service_account_file": "/k.json"}, "service_account_file does not apply"),
        ({"provider": "google"}, "exactly one of service_account_file"),
        (
            {"provider": "generic", "client_id": "a", "client_secret": SECRET, "scope": "s"},
            "token_url is required for provider generic",
        ),
        ({**MICROSOFT, "token_url": "http://login.example.org/token"}, "must use https"),
        ({**MICROSOFT, "tenant_id": "contoso/../x"}, "oauth2.tenant_id: is not an Entra tenant"),
        ({"provider": "google", "flow": "device_code"}, "flow device_code is Microsoft's"),
        ({"provider": "google", "service_account_json": "{nope"}, "service_account_json: is not"),
        (
            {"provider": "google", "service_account_json": json.dumps({"client_email": "a"})},
            "service_account_json: has no private_key",
        ),
        ({**MICROSOFT, "unknown": 1}, "oauth2.unknown: unknown key; allowed here: provider"),
    ],
)
def test_errors_name_the_key(tmp_path: Path, oauth: dict[str, Any], expected: str) -> None:
    assert expected in refused(tmp_path, {"connection_uri": URI, "oauth2": oauth})


def test_the_uri_names_the_mailbox_and_has_no_password(tmp_path: Path) -> None:
    with_password = "smtp://sender%40example.org:pw@smtp.office365.com:587/"
    text = refused(tmp_path, {"connection_uri": with_password, "oauth2": MICROSOFT})
    assert "remove the password" in text
    text = refused(
        tmp_path, {"connection_uri": "smtp://smtp.office365.com:587/", "oauth2": MICROSOFT}
    )
    assert "logs in as the connection_uri's user" in text


def test_loopback_token_urls_may_be_plain_http() -> None:
    oauth = OAuth2Settings.model_validate({**MICROSOFT, "token_url": "http://127.0.0.1:8080/t"})
    assert oauth.token_endpoint() == "http://127.0.0.1:8080/t"


def test_environment_variables_set_each_key(tmp_path: Path) -> None:
    env = {
        "COURIER_SMTP_OAUTH2_PROVIDER": "microsoft",
        "COURIER_SMTP_OAUTH2_TENANT_ID": "contoso",
        "COURIER_SMTP_OAUTH2_CLIENT_ID": "app",
        "COURIER_SMTP_OAUTH2_CLIENT_SECRET": SECRET,
    }
    settings = load(tmp_path, {"connection_uri": URI}, env)
    assert settings.courier.smtp.oauth2.client_secret == SECRET
    assert settings.courier.smtp.xoauth2_user() == "sender@example.org"


def test_an_unreadable_key_file_names_the_key(tmp_path: Path) -> None:
    oauth = OAuth2Settings(provider="google", service_account_file=str(tmp_path / "missing.json"))
    expected = re.escape("courier.smtp.oauth2.service_account_file: cannot read")
    with pytest.raises(ConfigError, match=expected):
        oauth.service_account()


async def test_api_tenants_store_oauth2_secrets_encrypted_and_show_them_masked(
    store: Store, settings_with: Callable[..., Settings], tmp_path: Path
) -> None:
    registry = TenantRegistry(settings_with(), store)
    key = json.dumps(
        {
            "type": "service_account",
            "client_email": "svc@p.iam.gserviceaccount.com",
            "private_key": "-----BEGIN PRIVATE KEY-----\nMIIB\n-----END PRIVATE KEY-----\n",
            "token_uri": "https://oauth2.googleapis.com/token",
        }
    )
    shown = await registry.save("acme", {"smtp": {"connection_uri": URI, "oauth2": MICROSOFT}})
    assert shown["courier"]["smtp"]["oauth2"]["client_secret"] == "***"
    await registry.save(
        "globex",
        {
            "smtp": {
                "connection_uri": "smtp://a%40globex.example@smtp.gmail.com:587/",
                "oauth2": {"provider": "google", "service_account_json": key},
            }
        },
    )
    db = db_bytes(tmp_path)
    assert SECRET.encode() not in db and b"BEGIN PRIVATE KEY" not in db
    described = await registry.describe("globex")
    assert described["courier"]["smtp"]["oauth2"]["service_account_json"] == "***"
    # Sending the masked form back keeps the stored secret.
    back = (await registry.describe("acme"))["courier"]
    back["smtp"]["from_name"] = "Acme"
    await registry.save("acme", back)
    merged = await registry.settings()
    assert merged.tenant("acme").smtp.oauth2.client_secret == SECRET
    with pytest.raises(InputError, match="service_account_file"):
        await registry.save(
            "initech",
            {
                "smtp": {
                    "connection_uri": URI,
                    "oauth2": {"provider": "google", "service_account_file": "/etc/key.json"},
                }
            },
        )
