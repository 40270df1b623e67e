"""``courier.http`` in the configuration: what loads, where a body comes from, and the clear
error (naming the key) for each kind of bad input."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from postroom.config import load_settings
from postroom.config.http import HttpSettings
from postroom.errors import ConfigError, HttpDeliveryError
from postroom.render.jsonnet import DEFAULT_BODY, load_body
from postroom.transports.base import Envelope
from postroom.transports.http import HttpTransport

from conftest import Pki
from http_servers import http_server, reply

KEY = "courier.http.request_config"


def write(tmp_path: Path, request_config: dict[str, Any], **http: Any) -> Path:
    path = tmp_path / "postroom.yaml"
    courier = {"delivery_strategy": "http", "http": {"request_config": request_config, **http}}
    path.write_text(yaml.safe_dump({"courier": courier}), encoding="utf-8")
    return path


def config_error(tmp_path: Path, request_config: dict[str, Any]) -> str:
    with pytest.raises(ConfigError) as info:
        load_settings(write(tmp_path, request_config), environ={})
    return str(info.value)


def envelope(**fields: Any) -> Envelope:
    base: dict[str, Any] = {
        "message_id": "m-1",
        "sender": "no-reply@example.org",
        "recipients": ("you@example.org",),
        "data": b"",
        "recipient": "you@example.org",
        "subject": "Your login code",
        "text": "Your code is 123456",
        "template_type": "login_code_valid",
        "template_data": {"login_code": "123456", "to": "you@example.org"},
    }
    return Envelope(**(base | fields))


async def send_with(request_config: dict[str, Any]) -> Any:
    settings = HttpSettings.model_validate({"request_config": request_config})
    transport = HttpTransport(settings)
    try:
        await transport.send(envelope())
    finally:
        await transport.close()


def test_a_full_request_config_loads(tmp_path: Path) -> None:
    loaded = load_settings(
        write(
            tmp_path,
            {
                "url": "https://api.sendgrid.com/v3/mail/send",
                "method": "post",
                "headers": {"Content-Type": "application/json"},
                "auth": {
                    "type": "api_key",
                    "config": {"name": "Authorization", "value": "Bearer SG.x"},
                },
                "body": "function(ctx) { to: ctx.recipient }",
            },
            timeout="5s",
        ),
        environ={},
    )
    courier = loaded.settings.courier
    assert courier.strategy == "http"
    config = courier.http.request_config
    assert config.method == "POST"
    assert config.auth is not None and config.auth.location == "header"
    assert courier.http.timeout == 5.0
    assert "SG.x" not in repr(courier)


def test_a_url_alone_selects_http_delivery(tmp_path: Path) -> None:
    path = tmp_path / "postroom.yaml"
    path.write_text(
        "courier:\n  http:\n    request_config:\n      url: https://api.example.org/send\n"
    )
    assert load_settings(path, environ={}).settings.courier.strategy == "http"


def test_the_url_can_come_from_the_environment(tmp_path: Path) -> None:
    path = tmp_path / "postroom.yaml"
    path.write_text("courier:\n  delivery_strategy: http\n")
    env = {"COURIER_HTTP_REQUEST_CONFIG_URL": "https://api.example.org/send"}
    settings = load_settings(path, environ=env).settings
    assert settings.courier.http.request_config.url == "https://api.example.org/send"


def test_http_without_a_url_names_the_key(tmp_path: Path) -> None:
    path = tmp_path / "postroom.yaml"
    path.write_text("courier:\n  delivery_strategy: http\n")
    with pytest.raises(ConfigError) as info:
        load_settings(path, environ={})
    assert "http.request_config.url is not set" in str(info.value)


@pytest.mark.parametrize(
    ("url", "words"),
    [
        ("https://", "has no host"),
        ("https://api.example.org:99999/send", "not a valid URL"),
        ("https://api example.org/send", "whitespace"),
        ("ftp://files.example.org/mail", "the scheme 'ftp'"),
        ("smtp://mail.example.org:587/", "the scheme 'smtp'"),
        ("api.example.org/send", "no scheme"),
        ("https://user:secret@api.example.org/send", "put credentials under"),
        ("https://api.mailgun.net/v3/{domain}/messages", "placeholder {domain}"),
    ],
)
def test_a_bad_url_is_a_config_error_naming_the_key(tmp_path: Path, url: str, words: str) -> None:
    message = config_error(tmp_path, {"url": url})
    assert f"{KEY}.url:" in message
    assert words in message
    assert "secret" not in message


def test_an_unknown_auth_type_names_the_key(tmp_path: Path) -> None:
    message = config_error(
        tmp_path,
        {"url": "https://api.example.org/send", "auth": {"type": "bearer", "config": {}}},
    )
    assert f"{KEY}.auth.type:" in message
    assert "unknown auth type 'bearer'" in message
    assert "api_key" in message and "basic_auth" in message


@pytest.mark.parametrize(
    ("auth", "words"),
    [
        ({"type": "api_key", "config": {"name": "Authorization"}}, "config.value is missing"),
        ({"type": "basic_auth", "config": {"user": "api"}}, "config.password is missing"),
        ({"type": "api_key", "config": {"name": "X", "value": "v", "in": "query"}}, "'header' or"),
        ({"type": "basic_auth", "config": {"user": "u", "password": "p", "name": "n"}}, "name"),
        ({"type": "api_key", "config": {"name": "A", "value": "Bearer {api_key}"}}, "{api_key}"),
    ],
)
def test_an_incomplete_auth_block_names_the_key(
    tmp_path: Path, auth: dict[str, Any], words: str
) -> None:
    message = config_error(tmp_path, {"url": "https://api.example.org/send", "auth": auth})
    assert f"{KEY}.auth" in message
    assert words in message


def test_a_jsonnet_syntax_error_gives_the_line(tmp_path: Path) -> None:
    body = "function(ctx) {\n  to: ctx.recipient,\n  subject: ,\n}\n"
    message = config_error(tmp_path, {"url": "https://api.example.org/send", "body": body})
    assert f"{KEY}.body:" in message
    assert "Jsonnet syntax error at line 3, column 12" in message


def test_a_syntax_error_in_a_file_body_gives_the_line(tmp_path: Path) -> None:
    (tmp_path / "mail.jsonnet").write_text("function(ctx)\n{\n  a: [1, 2 3],\n}\n")
    message = config_error(
        tmp_path,
        {"url": "https://api.example.org/send", "body": f"file://{tmp_path / 'mail.jsonnet'}"},
    )
    assert f"{KEY}.body:" in message
    assert "line 3" in message


def test_a_body_must_be_a_function_of_ctx(tmp_path: Path) -> None:
    message = config_error(tmp_path, {"url": "https://api.example.org/send", "body": "{a: 1}"})
    assert f"{KEY}.body:" in message
    assert "function of one argument, ctx" in message
    message = config_error(
        tmp_path, {"url": "https://api.example.org/send", "body": "function(ctx, other) {}"}
    )
    assert "a function of 2 arguments" in message


def test_a_form_body_must_be_flat(tmp_path: Path) -> None:
    message = config_error(
        tmp_path,
        {
            "url": "https://api.example.org/send",
            "headers": {"Content-Type": "application/x-www-form-urlencoded"},
            "body": "function(ctx) { to: ctx.recipient, personalizations: [{to: ctx.recipient}] }",
        },
    )
    assert f"{KEY}.body:" in message
    assert "flat object" in message and "'personalizations'" in message


def test_the_default_body_is_flat_enough_for_a_form(tmp_path: Path) -> None:
    # Strings and nulls only (a null leaves the field out), so a form may use it.
    load_settings(
        write(
            tmp_path,
            {
                "url": "https://api.example.org/send",
                "headers": {"Content-Type": "application/x-www-form-urlencoded"},
            },
        ),
        environ={},
    )


@pytest.mark.parametrize(
    ("headers", "words"),
    [
        ({"Content-Type": "text/xml"}, "is not supported"),
        ({"Bad Header": "x"}, "not a valid header name"),
        ({"Content-Length": "10"}, "set by Postroom"),
    ],
)
def test_bad_headers_name_the_key(tmp_path: Path, headers: dict[str, str], words: str) -> None:
    message = config_error(tmp_path, {"url": "https://api.example.org/send", "headers": headers})
    assert f"{KEY}.headers:" in message and words in message


def test_an_unknown_method_names_the_key(tmp_path: Path) -> None:
    message = config_error(tmp_path, {"url": "https://api.example.org/send", "method": "GET"})
    assert f"{KEY}.method:" in message and "POST" in message


def test_an_unknown_key_is_refused(tmp_path: Path) -> None:
    message = config_error(tmp_path, {"url": "https://api.example.org/send", "bodyy": "x"})
    assert f"{KEY}.bodyy: unknown key" in message


def test_an_unreadable_body_file_names_the_key(tmp_path: Path) -> None:
    message = config_error(
        tmp_path, {"url": "https://api.example.org/send", "body": f"file://{tmp_path}/nope"}
    )
    assert f"{KEY}.body:" in message and "cannot read" in message


def test_an_http_body_url_is_refused(tmp_path: Path) -> None:
    message = config_error(
        tmp_path, {"url": "https://api.example.org/send", "body": "http://example.org/b.jsonnet"}
    )
    assert f"{KEY}.body:" in message and "https://" in message


# -- body sources, at send time -------------------------------------------------------------


async def test_inline_file_and_base64_bodies_are_sent(tmp_path: Path) -> None:
    source = "function(ctx) { to: ctx.recipient, code: ctx.template_data.login_code }"
    (tmp_path / "mail.jsonnet").write_text(source)
    encoded = base64.b64encode(source.encode()).decode()
    with http_server() as srv:
        for body in (source, f"file://{tmp_path / 'mail.jsonnet'}", f"base64://{encoded}"):
            await send_with({"url": srv.url, "body": body})
    assert [r.json() for r in srv.requests] == [{"to": "you@example.org", "code": "123456"}] * 3


async def test_a_file_body_imports_from_its_own_directory_only(tmp_path: Path) -> None:
    templates = tmp_path / "templates"
    (templates / "lib").mkdir(parents=True)
    (templates / "lib" / "common.libsonnet").write_text('{ from: "no-reply@example.org" }')
    (tmp_path / "secret.txt").write_text("top secret")
    (templates / "ok.jsonnet").write_text(
        'local common = import "lib/common.libsonnet";\n'
        "function(ctx) common + { to: ctx.recipient }\n"
    )
    (templates / "escape.jsonnet").write_text('function(ctx) { leak: importstr "../secret.txt" }\n')
    with http_server() as srv:
        await send_with({"url": srv.url, "body": f"file://{templates / 'ok.jsonnet'}"})
        with pytest.raises(HttpDeliveryError) as caught:
            await send_with({"url": srv.url, "body": f"file://{templates / 'escape.jsonnet'}"})
    assert [r.json() for r in srv.requests] == [
        {"from": "no-reply@example.org", "to": "you@example.org"}
    ]
    assert caught.value.hint == "template_error"
    assert "outside the body's directory" in str(caught.value)
    assert "top secret" not in str(caught.value)


async def test_an_inline_body_may_not_import(tmp_path: Path) -> None:
    (tmp_path / "x.txt").write_text("x")
    with http_server() as srv, pytest.raises(HttpDeliveryError) as caught:
        await send_with({"url": srv.url, "body": f'function(ctx) importstr "{tmp_path}/x.txt"'})
    assert srv.requests == []
    assert "imports are allowed only in a file:// body" in str(caught.value)


async def test_an_https_body_is_fetched_once_and_cached(pki: Pki) -> None:
    body = b'function(ctx) { to: ctx.recipient, via: "https" }'
    tls = pki.server_context("localhost", "127.0.0.1")
    with http_server([reply(200, body)], tls=tls) as bodies, http_server() as api:
        source = bodies.base("/mail.jsonnet?token=abc")
        for _ in range(3):
            HttpSettings.model_validate({"request_config": {"url": api.url, "body": source}})
        await send_with({"url": api.url, "body": source})
        await send_with({"url": api.url, "body": source})
    assert len(bodies.requests) == 1
    assert bodies.requests[0].path == "/mail.jsonnet?token=abc"
    assert [r.json() for r in api.requests] == [{"to": "you@example.org", "via": "https"}] * 2


def test_an_https_body_is_size_limited(pki: Pki) -> None:
    huge = b"function(ctx) " + json.dumps("x" * 300_000).encode()
    tls = pki.server_context("localhost", "127.0.0.1")
    with http_server([reply(200, huge)], tls=tls) as bodies, pytest.raises(ConfigError) as info:
        load_body(bodies.base("/huge.jsonnet"))
    assert "larger than 256 KiB" in str(info.value)


def test_an_https_body_on_a_private_address_can_be_refused(pki: Pki) -> None:
    tls = pki.server_context("localhost", "127.0.0.1")
    with http_server([reply(200, b"function(ctx) {}")], tls=tls) as bodies:
        with pytest.raises(ConfigError) as info:
            load_body(bodies.base("/private.jsonnet"), allow_private_targets=False)
        assert bodies.requests == []
    assert "loopback" in str(info.value)


def test_a_body_fetched_from_a_failing_server_names_the_status(pki: Pki) -> None:
    tls = pki.server_context("localhost", "127.0.0.1")
    with (
        http_server([reply(404, "not here")], tls=tls) as bodies,
        pytest.raises(ConfigError) as info,
    ):
        load_body(bodies.base("/missing.jsonnet?key=s3cret"))
    assert "404" in str(info.value)
    assert "s3cret" not in str(info.value)


def test_no_body_means_ory_default_payload() -> None:
    assert load_body(None).source == DEFAULT_BODY
