"""The HTTP API presets: each request config, once filled in, loads and makes the request its
provider documents (checked against a real local server standing in for the provider)."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import pytest
import yaml

from postroom.config import load_settings
from postroom.config.http import HttpSettings
from postroom.errors import ConfigError
from postroom.presets import PRESETS, get_preset
from postroom.presets.http import HTTP_PRESETS, fill_request_config
from postroom.transports.base import Envelope
from postroom.transports.http import HttpTransport

from http_servers import Captured, http_server, reply

VALUES = {
    "api_key": "key-123",
    "server_token": "pm-token",
    "domain": "mg.example.org",
    "from_address": "no-reply@example.org",
}


def login_envelope(html: str | None = "<p>Your code is <b>123456</b></p>") -> Envelope:
    return Envelope(
        message_id="m-1",
        sender="no-reply@example.org",
        recipients=("you@example.org",),
        data=b"",
        recipient="you@example.org",
        subject="Your login code",
        text="Your code is 123456",
        html=html,
        template_type="login_code_valid",
        template_data={"login_code": "123456", "to": "you@example.org"},
    )


async def send_through(name: str, envelope: Envelope, answer: Any = None) -> Captured:
    config = fill_request_config(get_preset(name), VALUES)
    with http_server([answer or reply(200, {})]) as srv:
        path = config["url"].split("/", 3)[3]
        config["url"] = srv.base(f"/{path}")
        transport = HttpTransport(HttpSettings.model_validate({"request_config": config}))
        try:
            await transport.send(envelope)
        finally:
            await transport.close()
    [request] = srv.requests
    return request


def test_the_three_http_presets_are_in_the_registry() -> None:
    names = [p.name for p in HTTP_PRESETS]
    assert names == ["sendgrid-http", "mailgun-http", "postmark-http"]
    for name in names:
        preset = PRESETS[name]
        assert preset.kind == "http"
        assert preset.request_config is not None
        assert preset.to_json()["request_config"]["url"].startswith("https://")


@pytest.mark.parametrize("name", ["sendgrid-http", "mailgun-http", "postmark-http"])
def test_a_filled_preset_loads(name: str) -> None:
    settings = HttpSettings.model_validate(
        {"request_config": fill_request_config(get_preset(name), VALUES)}
    )
    assert settings.request_config.url is not None
    assert "{" not in settings.request_config.url


@pytest.mark.parametrize(
    ("name", "placeholder"),
    [
        ("sendgrid-http", "{api_key}"),
        ("mailgun-http", "{domain}"),
        ("postmark-http", "{server_token}"),
    ],
)
def test_an_unfilled_preset_is_refused_with_the_placeholder(
    name: str, placeholder: str, tmp_path: Path
) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(config_file(tmp_path, get_preset(name).request_config), environ={})
    assert placeholder in str(caught.value)


def test_a_placeholder_left_in_the_body_is_refused_when_the_settings_load(tmp_path: Path) -> None:
    # Every other placeholder filled: the body's own {from_address} is named.
    config = fill_request_config(get_preset("sendgrid-http"), VALUES)
    config["body"] = get_preset("sendgrid-http").request_config["body"]
    with pytest.raises(ConfigError) as caught:
        load_settings(config_file(tmp_path, config), environ={})
    assert "{from_address}" in str(caught.value)
    assert "courier.http.request_config.body" in str(caught.value)


def config_file(tmp_path: Path, request_config: Any) -> Path:
    path = tmp_path / "postroom.yaml"
    courier = {"delivery_strategy": "http", "http": {"request_config": request_config}}
    path.write_text(yaml.safe_dump({"courier": courier}), encoding="utf-8")
    return path


async def test_sendgrid_http_posts_v3_mail_send_with_a_bearer_key() -> None:
    request = await send_through("sendgrid-http", login_envelope(), reply(202))
    assert request.path == "/v3/mail/send"
    assert request.header("authorization") == "Bearer key-123"
    assert request.header("content-type") == "application/json"
    assert request.json() == {
        "personalizations": [{"to": [{"email": "you@example.org"}]}],
        "from": {"email": "no-reply@example.org"},
        "subject": "Your login code",
        "content": [
            {"type": "text/plain", "value": "Your code is 123456"},
            {"type": "text/html", "value": "<p>Your code is <b>123456</b></p>"},
        ],
    }


async def test_sendgrid_http_without_html_sends_only_plain_text() -> None:
    request = await send_through("sendgrid-http", login_envelope(html=None), reply(202))
    assert request.json()["content"] == [{"type": "text/plain", "value": "Your code is 123456"}]


async def test_mailgun_http_posts_a_form_with_basic_auth() -> None:
    answer = reply(200, {"id": "<1@mg.example.org>", "message": "Queued. Thank you."})
    request = await send_through("mailgun-http", login_envelope(html=None), answer)
    assert request.path == "/v3/mg.example.org/messages"
    assert request.header("authorization") == "Basic " + base64.b64encode(b"api:key-123").decode()
    assert request.header("content-type") == "application/x-www-form-urlencoded"
    assert request.form() == {
        "from": ["no-reply@example.org"],
        "to": ["you@example.org"],
        "subject": ["Your login code"],
        "text": ["Your code is 123456"],
    }


def test_mailgun_http_eu_region_uses_the_eu_host() -> None:
    config = fill_request_config(get_preset("mailgun-http"), VALUES, region="eu")
    assert config["url"] == "https://api.eu.mailgun.net/v3/mg.example.org/messages"
    with pytest.raises(Exception, match="unknown region"):
        fill_request_config(get_preset("mailgun-http"), VALUES, region="ap")


async def test_postmark_http_posts_email_with_the_server_token() -> None:
    request = await send_through("postmark-http", login_envelope(), reply(200, {"MessageID": "x"}))
    assert request.path == "/email"
    assert request.header("x-postmark-server-token") == "pm-token"
    assert request.header("accept") == "application/json"
    assert request.json() == {
        "From": "no-reply@example.org",
        "To": "you@example.org",
        "Subject": "Your login code",
        "TextBody": "Your code is 123456",
        "HtmlBody": "<p>Your code is <b>123456</b></p>",
        "MessageStream": "outbound",
    }
