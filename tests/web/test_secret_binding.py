"""Credentials are write-only and bound to where they were saved for: ``***`` keeps a stored
one only while its target (SMTP server, HTTP origin, OAuth2 token endpoint) stays the same,
and credential-looking headers and URL query keys are encrypted and masked like passwords."""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from postroom.config import Settings
from postroom.config.secrets import keep_masked, mask_secrets
from postroom.errors import InputError

from http_servers import http_server
from smtp_servers import smtp_server
from web_support import AUTH, serving

PASSWORD = "pw-0123456789-secret"
API_KEY = "key-0123456789-secret"
QUERY_KEY = "q-0123456789-secret"
TOKEN = "tok-0123456789-secret"


def stored_tenants(tmp_path: Path) -> str:
    """The tenants table as stored (the messages hold the headers, which go in every mail)."""
    with sqlite3.connect(tmp_path / "postroom.db") as db:
        return json.dumps(db.execute("SELECT * FROM tenants").fetchall())


def put(http: httpx.Client, courier: dict[str, Any]) -> httpx.Response:
    return http.put("/admin/tenants/acme", json=courier, headers=AUTH)


def test_a_kept_smtp_password_never_follows_a_new_host(
    settings_with: Callable[..., Settings],
) -> None:
    settings = settings_with(serve={"allow_private_targets": True})
    with (
        smtp_server(users={"alice": PASSWORD}) as real,
        smtp_server(users=None) as attacker,
        serving(settings) as base,
        httpx.Client(base_url=base) as http,
    ):
        uri = f"smtp://alice:{PASSWORD}@127.0.0.1:{real.port}/?disable_starttls=true"
        assert put(http, {"smtp": {"connection_uri": uri}}).status_code == 200
        moved = f"smtp://alice:***@127.0.0.1:{attacker.port}/?disable_starttls=true"
        refused = put(http, {"smtp": {"connection_uri": moved}})
        # The same server, the password kept: still accepted.
        same = f"smtp://alice:***@127.0.0.1:{real.port}/?disable_starttls=true"
        kept = put(http, {"smtp": {"connection_uri": same, "from_name": "Acme"}})
        # A new host with the password typed again is fine too.
        again = f"smtp://alice:{PASSWORD}@127.0.0.1:{attacker.port}/?disable_starttls=true"
        retyped = put(http, {"smtp": {"connection_uri": again}})
    assert refused.status_code == 400
    reason = refused.json()["error"]["reason"]
    assert reason.startswith("smtp.connection_uri:") and "give it again" in reason
    assert kept.status_code == 200 and retyped.status_code == 200
    assert attacker.rec.logins == [] and attacker.rec.connections == 0


def test_credential_headers_and_query_keys_are_secrets(
    settings_with: Callable[..., Settings], tmp_path: Path
) -> None:
    settings = settings_with(serve={"allow_private_targets": True})
    with (
        http_server() as provider,
        http_server() as elsewhere,
        serving(settings) as base,
        httpx.Client(base_url=base) as http,
    ):
        courier = {
            "http": {
                "request_config": {
                    "url": f"{provider.url}?region=eu&key={QUERY_KEY}",
                    "headers": {"X-Api-Key": API_KEY, "X-Campaign": "login"},
                }
            },
            "smtp": {"headers": {"X-Auth-Token": TOKEN}},
        }
        assert put(http, courier).status_code == 200
        shown = http.get("/admin/tenants/acme", headers=AUTH).json()["courier"]
        listing = http.get("/admin/tenants", headers=AUTH).text
        # Echo what GET showed: every masked value is kept.
        assert put(http, shown).status_code == 200
        sent = http.post(
            "/admin/courier/messages",
            json={"recipient": "a@example.org", "template_type": "test", "tenant": "acme"},
            headers=AUTH,
        ).json()
        deadline = time.monotonic() + 10
        while not provider.requests:
            assert time.monotonic() < deadline, sent
            time.sleep(0.02)
        # Re-pointing the URL while keeping the masked key is refused, naming the field.
        moved = {
            "http": {
                "request_config": {
                    "url": f"{elsewhere.url}?region=eu&key=***",
                    "headers": {"X-Api-Key": API_KEY},
                }
            }
        }
        refused = put(http, moved)
        moved_header = {
            "http": {"request_config": {"url": elsewhere.url, "headers": {"X-Api-Key": "***"}}}
        }
        refused_header = put(http, moved_header)
    request_config = shown["http"]["request_config"]
    assert request_config["url"] == f"{provider.url}?region=eu&key=***"
    assert request_config["headers"] == {"X-Api-Key": "***", "X-Campaign": "login"}
    assert shown["smtp"]["headers"] == {"X-Auth-Token": "***"}
    for secret in (API_KEY, QUERY_KEY, TOKEN):
        assert secret not in listing
        assert secret not in stored_tenants(tmp_path)
    request = provider.requests[0]
    assert request.header("X-Api-Key") == API_KEY and f"key={QUERY_KEY}" in request.path
    assert refused.status_code == 400 and "query key 'key'" in refused.json()["error"]["reason"]
    assert refused_header.status_code == 400
    assert "http.request_config.headers.X-Api-Key" in refused_header.json()["error"]["reason"]
    assert elsewhere.requests == []


def test_an_oauth2_secret_is_bound_to_its_token_endpoint() -> None:
    stored = {
        "smtp": {
            "oauth2": {
                "provider": "generic",
                "token_url": "https://login.example.org/token",
                "client_id": "app",
                "client_secret": "s3cret",
            }
        }
    }
    same = keep_masked(mask_secrets(stored), stored)
    assert same["smtp"]["oauth2"]["client_secret"] == "s3cret"
    moved = mask_secrets(stored)
    moved["smtp"]["oauth2"]["token_url"] = "https://evil.example.net/token"
    with pytest.raises(InputError) as info:
        keep_masked(moved, stored)
    assert info.value.field == "smtp.oauth2.client_secret"


def test_a_mask_with_nothing_stored_names_the_field() -> None:
    with pytest.raises(InputError) as info:
        keep_masked({"http": {"request_config": {"headers": {"Authorization": "***"}}}}, {})
    assert info.value.field == "http.request_config.headers.Authorization"


def test_a_kept_smtp_password_never_follows_a_weaker_connection(
    settings_with: Callable[..., Settings],
) -> None:
    # Same host and port, but certificate checks switched off or another certificate name
    # accepted: a man in the middle could then read the kept password, so it must be retyped.
    settings = settings_with(serve={"allow_private_targets": True})
    with (
        smtp_server(users={"alice": PASSWORD}) as real,
        serving(settings) as base,
        httpx.Client(base_url=base) as http,
    ):
        uri = f"smtp://alice:{PASSWORD}@127.0.0.1:{real.port}/"
        assert put(http, {"smtp": {"connection_uri": uri}}).status_code == 200
        answers = {
            change: put(
                http,
                {"smtp": {"connection_uri": f"smtp://alice:***@127.0.0.1:{real.port}/?{change}"}},
            )
            for change in (
                "skip_ssl_verify=true",
                "disable_starttls=true",
                "server_name=attacker.example.net",
            )
        }
        other_user = put(
            http, {"smtp": {"connection_uri": f"smtp://mallory:***@127.0.0.1:{real.port}/"}}
        )
        unchanged = put(
            http, {"smtp": {"connection_uri": f"SMTP://alice:***@127.0.0.1:{real.port}"}}
        )
    for change, answer in answers.items():
        assert answer.status_code == 400, change
        assert "smtp.connection_uri" in answer.json()["error"]["reason"]
    assert other_user.status_code == 400
    assert unchanged.status_code == 200, unchanged.text


OAUTH_STORED = {
    "smtp": {
        "connection_uri": "smtp://app@smtp.office365.com:587/",
        "oauth2": {
            "provider": "generic",
            "token_url": "https://login.example.org/token?code=fn-0123456789-secret",
            "client_id": "app",
            "client_secret": "s3cret",
            "scope": "https://outlook.office365.com/.default",
        },
    }
}


@pytest.mark.parametrize(
    ("path", "value"),
    [
        # The tokens a kept secret mints go to the SMTP server: a new one must not get them.
        (("connection_uri",), "smtp://app@attacker.example.net:587/"),
        (("oauth2", "scope"), "https://graph.microsoft.com/.default"),
        (("oauth2", "flow"), "device_code"),
        (("oauth2", "subject"), "ceo@example.org"),
    ],
)
def test_an_oauth2_secret_is_bound_to_the_grant_and_the_smtp_server(
    path: tuple[str, ...], value: str
) -> None:
    moved = mask_secrets(OAUTH_STORED)
    node = moved["smtp"]
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    with pytest.raises(InputError) as info:
        keep_masked(moved, OAUTH_STORED)
    assert info.value.field.startswith("smtp.oauth2.")


def test_query_secrets_of_token_and_body_urls_are_masked_and_bound() -> None:
    stored = {
        **OAUTH_STORED,
        "http": {"request_config": {"body": "https://bodies.example.org/b.jsonnet?sig=b-secret"}},
    }
    shown = mask_secrets(stored)
    assert shown["smtp"]["oauth2"]["token_url"] == "https://login.example.org/token?code=***"
    assert shown["http"]["request_config"]["body"].endswith("?sig=***")
    kept = keep_masked(shown, stored)
    assert kept["http"]["request_config"]["body"].endswith("?sig=b-secret")
    assert kept["smtp"]["oauth2"]["token_url"].endswith("?code=fn-0123456789-secret")
    shown["http"]["request_config"]["body"] = "https://evil.example.net/b.jsonnet?sig=***"
    with pytest.raises(InputError) as info:
        keep_masked(shown, stored)
    assert info.value.field == "http.request_config.body (query key 'sig')"


@pytest.mark.parametrize(
    "courier",
    [
        {
            "smtp": {
                "oauth2": {
                    "provider": "generic",
                    "client_id": "a",
                    "client_secret": "s",
                    "token_url": "https://user:pw-0123@login.example.org/token",
                }
            }
        },
        {
            "http": {
                "request_config": {
                    "url": "https://x.example.org/send",
                    "body": "https://user:pw-0123@bodies.example.org/b.jsonnet",
                }
            }
        },
    ],
)
def test_userinfo_in_token_and_body_urls_is_refused(
    courier: dict[str, Any], settings_with: Callable[..., Settings]
) -> None:
    with serving(settings_with()) as base, httpx.Client(base_url=base) as http:
        answer = put(http, courier)
    assert answer.status_code == 400
    assert "user or password" in answer.text and "pw-0123" not in answer.text
