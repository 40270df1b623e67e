"""Hostile input against a running server: header injection through every character that
splits a header line, text that is not text (NUL, lone surrogates, NaN), crafted page tokens,
durations that overflow the dates they are added to. Each answers 400 naming the field, never
500, and nothing reaches a mail server."""

from __future__ import annotations

import base64
import email
import json
import time
from collections.abc import Callable
from email import policy
from typing import Any

import httpx
import pytest

from postroom.config import Settings
from postroom.text import HEADER_BREAKS

from smtp_servers import smtp_server
from web_support import AUTH, serving

BREAKS = sorted(HEADER_BREAKS)
BREAK_IDS = [f"U+{ord(c):04X}" for c in BREAKS]
MESSAGES = "/admin/courier/messages"


def refused(response: httpx.Response, *expected: str) -> str:
    """A 400 in the JSON error shape whose reason names every ``expected`` text."""
    assert response.status_code == 400, response.text
    reason = str(response.json()["error"]["reason"])
    for text in expected:
        assert text in reason, reason
    return reason


def raw_json(http: httpx.Client, method: str, path: str, text: str) -> httpx.Response:
    """Send ``text`` as the JSON body exactly as written (escapes such as \\ud800 or NaN that
    a JSON encoder would never write)."""
    headers = {**AUTH, "Content-Type": "application/json"}
    return http.request(method, path, content=text.encode(), headers=headers)


@pytest.mark.parametrize("char", BREAKS, ids=BREAK_IDS)
def test_no_character_that_splits_a_header_gets_a_bcc_onto_the_wire(
    settings_with: Callable[..., Settings], char: str
) -> None:
    injected = f"Hello{char}Bcc: thief@evil.test"
    with smtp_server() as srv:
        settings = settings_with(
            courier={
                "smtp": {
                    "connection_uri": f"smtp://127.0.0.1:{srv.port}/?disable_starttls=true",
                    "from_address": "no-reply@example.org",
                }
            }
        )
        with serving(settings) as base, httpx.Client(base_url=base, headers=AUTH) as http:
            stub = {"recipient": "jane@example.org", "subject": "s", "body": "b"}
            refused(http.post(MESSAGES, json={**stub, "subject": injected}), "subject")
            refused(
                http.post(MESSAGES, json={**stub, "recipient": f"jane@example.org{char}"}), "to:"
            )
            # Through a template: the product name is part of the subject.
            login = {
                "recipient": "jane@example.org",
                "template_type": "login_code_valid",
                "template_data": {"login_code": "123456", "product_name": injected},
            }
            # A NUL is refused in the data; the template collapses the other breaks into
            # spaces, so that message may be accepted: the wire below shows what it became.
            templated = http.post(MESSAGES, json=login)
            assert templated.status_code == (400 if char == "\x00" else 202), templated.text
            # Saved settings: refused at save, so no enqueue of the tenant can fail later.
            for section, key in (
                ({"from_name": injected}, "smtp.from_name"),
                ({"reply_to": f"help@example.org{char}"}, "smtp.reply_to"),
                ({"headers": {"X-Campaign": injected}}, "smtp.headers"),
                ({"local_name": f"mail.example.org{char}"}, "smtp.local_name"),
            ):
                refused(http.put("/admin/tenants/acme", json={"smtp": section}), key)
            http_section = {
                "request_config": {
                    "url": "https://api.example.org/send",
                    "headers": {"X-Tag": injected},
                }
            }
            refused(http.put("/admin/tenants/acme", json={"http": http_section}), "X-Tag")
            http_section["request_config"] = {
                "url": "https://api.example.org/send",
                "auth": {"type": "api_key", "config": {"name": "X-Key", "value": injected}},
            }
            refused(http.put("/admin/tenants/acme", json={"http": http_section}), "auth")
            assert http.get("/admin/tenants/acme").status_code == 404
            sent = http.post(MESSAGES, json={**stub, "subject": "Hello Bcc: nobody"})
            assert sent.status_code == 202, sent.text
            expected = len(http.get(MESSAGES).json())
            assert expected == (1 if char == "\x00" else 2)
            deadline = time.monotonic() + 15
            while len(srv.rec.messages) < expected:
                assert time.monotonic() < deadline, http.get(MESSAGES).json()
                time.sleep(0.02)
    for accepted in srv.rec.messages:
        assert accepted.rcpt_tos == ["jane@example.org"]
        parsed = email.message_from_bytes(accepted.content, policy=policy.default)
        assert parsed["Bcc"] is None and "Hello" in parsed["Subject"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ('{"recipient": "jane@example.org", "subject": "Hi \\ud800", "body": "b"}', "subject"),
        ('{"recipient": "jane@example.org", "subject": "Hi", "body": "b \\udfff"}', "text"),
        ('{"recipient": "jane\\ud800@example.org", "subject": "Hi", "body": "b"}', "to"),
        (
            '{"recipient": "jane@example.org", "template_type": "login_code_valid",'
            ' "template_data": {"login_code": "1", "name": ["ok", "\\udc80"]}}',
            "data.name.1",
        ),
        (
            '{"recipient": "jane@example.org", "template_type": "login_code_valid",'
            ' "template_data": {"login_code": "1", "\\ud800": "key"}}',
            "data.",
        ),
        ('{"recipient": "jane@example.org", "subject": "Hi\\u0000", "body": "b"}', "subject"),
        ('{"recipient": "jane@example.org", "subject": "Hi", "body": "b\\u0000"}', "text"),
    ],
)
def test_text_that_is_not_text_is_a_400_naming_the_field(
    settings_with: Callable[..., Settings], body: str, field: str
) -> None:
    with serving(settings_with(), run_worker=False) as base, httpx.Client(base_url=base) as http:
        refused(raw_json(http, "POST", MESSAGES, body), field)
        assert http.get(MESSAGES, headers=AUTH).json() == []


@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity"])
def test_nan_and_infinity_in_template_data_are_refused_at_every_intake(
    settings_with: Callable[..., Settings], constant: str
) -> None:
    with serving(settings_with(), run_worker=False) as base, httpx.Client(base_url=base) as http:
        api = (
            '{"recipient": "jane@example.org", "template_type": "login_code_valid",'
            f' "template_data": {{"login_code": "1", "score": {constant}}}}}'
        )
        refused(raw_json(http, "POST", MESSAGES, api), "data.score", constant)
        ory = (
            '{"recipient": "jane@example.org", "template_type": "login_code_valid",'
            f' "login_code": "1", "nested": {{"score": [1, {constant}]}}}}'
        )
        refused(raw_json(http, "POST", "/intake/ory", ory), "data.nested.score.1")
        assert http.get(MESSAGES, headers=AUTH).json() == []


def test_deeply_nested_template_data_is_refused(settings_with: Callable[..., Settings]) -> None:
    deep: Any = "leaf"
    for _ in range(200):
        deep = [deep]
    body = {
        "recipient": "jane@example.org",
        "template_type": "login_code_valid",
        "template_data": {"login_code": "1", "deep": deep},
    }
    with serving(settings_with(), run_worker=False) as base, httpx.Client(base_url=base) as http:
        refused(raw_json(http, "POST", MESSAGES, json.dumps(body)), "data.deep", "nested")


def token(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


CRAFTED_TOKENS = [  # the dashboard's tests use them too
    token("2024-01-01T00:00:00|00000000-0000-0000-0000-000000000000"),  # naive
    token("0001-01-01T00:00:00+14:00|x"),  # before year 1 in UTC
    token("9999-12-31T23:59:59-14:00|x"),  # after year 9999 in UTC
    token("99999-01-01T00:00:00+00:00|x"),
    token("2024-01-01T00:00:00+00:00|\x00"),
]


def test_crafted_page_tokens_and_nul_in_urls_are_400(
    pg_dsn: str, settings_with: Callable[..., Settings]
) -> None:
    # PostgreSQL: it refuses a NUL in a query where SQLite finds nothing.
    settings = settings_with(dsn=pg_dsn)
    with (
        serving(settings, run_worker=False) as base,
        httpx.Client(base_url=base, headers=AUTH) as http,
    ):
        stub = {"recipient": "a@example.org", "subject": "s", "body": "b"}
        assert http.post(MESSAGES, json=stub).status_code == 202
        for crafted in CRAFTED_TOKENS:
            refused(http.get(MESSAGES, params={"page_token": crafted}), "page_token")
        for params in ({"recipient": "a\x00"}, {"tenant": "\x00"}, {"template_type": "\x00"}):
            refused(http.get(MESSAGES, params=params), "NUL")
        refused(http.get(f"{MESSAGES}/a%00b"), "NUL")
        refused(http.post(f"{MESSAGES}/a%00b/retry"), "NUL")
        assert len(http.get(MESSAGES).json()) == 1


@pytest.mark.parametrize(
    ("courier", "expected"),
    [
        ({"message_ttl": "3000000d"}, ["message_ttl", "longest allowed is 30d"]),
        ({"retry": {"max": "99999999999d"}}, ["retry.max", "30d"]),
        ({"rate_limits": [{"count": 1, "per": "99999999999d"}]}, ["rate_limits.0.per", "31d"]),
        ({"retention": "99999999999d"}, ["retention", "3650d"]),
        ({"worker": {"lease": "2h"}}, ["worker.lease", "1h"]),
        ({"smtp": {"timeout": "1d"}}, ["smtp.timeout", "10m"]),
        ({"message_ttl": "9" * 400 + "d"}, ["message_ttl", "too long"]),
    ],
)
def test_durations_past_their_bound_are_refused_at_save(
    settings_with: Callable[..., Settings], courier: dict[str, Any], expected: list[str]
) -> None:
    with serving(settings_with(), run_worker=False) as base, httpx.Client(base_url=base) as http:
        refused(http.put("/admin/tenants/acme", json=courier, headers=AUTH), *expected)
        assert http.get("/admin/tenants/acme", headers=AUTH).status_code == 404
        body = {"recipient": "a@example.org", "subject": "s", "body": "b", "tenant": "default"}
        assert http.post(MESSAGES, json=body, headers=AUTH).status_code == 202


def test_a_lone_surrogate_or_nul_in_saved_settings_is_refused(
    pg_dsn: str, settings_with: Callable[..., Settings]
) -> None:
    settings = settings_with(dsn=pg_dsn)
    with serving(settings, run_worker=False) as base, httpx.Client(base_url=base) as http:
        for body, key in (
            ('{"smtp": {"from_name": "\\ud800"}}', "smtp.from_name"),
            ('{"outbox_path": "./var/\\ud800"}', "outbox_path"),
            ('{"smtp": {"oauth2": {"client_id": "a\\u0000b"}}}', "smtp.oauth2.client_id"),
        ):
            refused(raw_json(http, "PUT", "/admin/tenants/acme", body), key)
        assert http.get("/admin/tenants/acme", headers=AUTH).status_code == 404


@pytest.mark.parametrize("store", ["sqlite", "postgresql"])
def test_a_reply_that_is_not_utf8_is_shown_not_a_500(
    settings_with: Callable[..., Settings], store: str, pg_dsn: str
) -> None:
    # A real server answering in Latin-1 ("für" as the single byte 0xFC): aiosmtplib keeps
    # such bytes as lone surrogates, which neither JSON nor PostgreSQL can carry.
    latin1 = b"550 5.7.1 Zugriff verweigert f\xfcr diesen Absender"
    with smtp_server(faults={"DATA": lambda _rec, _n: latin1}) as srv:  # type: ignore[dict-item]
        settings = settings_with(
            **({"dsn": pg_dsn} if store == "postgresql" else {}),
            courier={
                "smtp": {
                    "connection_uri": f"smtp://127.0.0.1:{srv.port}/?disable_starttls=true",
                    "from_address": "no-reply@example.org",
                }
            },
        )
        with serving(settings) as base, httpx.Client(base_url=base, headers=AUTH) as http:
            stub = {"recipient": "jane@example.org", "subject": "s", "body": "b"}
            sent = http.post(MESSAGES, json=stub)
            assert sent.status_code == 202, sent.text
            message_id = sent.json()["id"]
            deadline = time.monotonic() + 15
            while (shown := http.get(f"{MESSAGES}/{message_id}")).json().get("status") != (
                "abandoned"
            ):
                assert shown.status_code == 200, shown.text
                assert time.monotonic() < deadline, shown.text
                time.sleep(0.05)
            listed = http.get(MESSAGES)
    reply = shown.json()["dispatches"][-1]["error"]["reply"]
    assert reply == "550 5.7.1 Zugriff verweigert f\u00fcr diesen Absender"
    assert listed.status_code == 200


def test_a_header_value_longer_than_a_mail_line_is_refused(
    settings_with: Callable[..., Settings],
) -> None:
    with serving(settings_with()) as base, httpx.Client(base_url=base, headers=AUTH) as http:
        longest = http.post(
            MESSAGES, json={"recipient": "j@example.org", "subject": "s" * 998, "body": "b"}
        )
        too_long = http.post(
            MESSAGES, json={"recipient": "j@example.org", "subject": "s" * 999, "body": "b"}
        )
        header = http.put("/admin/tenants/acme", json={"smtp": {"headers": {"X-Tag": "t" * 5000}}})
    assert longest.status_code == 202, longest.text
    assert "at most 998" in refused(too_long, "subject")
    refused(header, "X-Tag", "at most 998")
