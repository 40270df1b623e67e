"""Ory Kratos exactly as it sends: every body Kratos can post to ``/intake/ory`` is accepted and
its code or link reaches a real SMTP server and a real HTTP receiver; the tenant's
``courier.ory.render`` decides whose text is sent; every ``request_config.auth`` form carries
the intake token, and a token's stored hash never does."""

from __future__ import annotations

import asyncio
import base64
import email
import email.policy
import hashlib
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import httpx
import pytest

from postroom.config import Settings

from http_servers import HttpServer, http_server
from kratos_bodies import (
    CODES,
    CUSTOM_BODIES,
    KRATOS_DEFAULT_BODY,
    KRATOS_DEFAULT_BODY_CAPITALISED,
    MESSAGES,
    NINE,
    ORY_DOCS_BODY,
    evaluate,
    kratos_ctx,
)
from smtp_servers import Server, smtp_server
from web_support import AUTH, assert_error, serving

TOKEN = "kratos-courier-intake-token-0123456789"
HOOK_TOKEN = "hooks-tenant-intake-token-0123456789"


def plain_text(content: bytes) -> str:
    """The plain-text part of a message as a mail reader shows it (transfer encoding undone)."""
    message = email.message_from_bytes(content, policy=email.policy.default)
    part = message.get_body(("plain",))  # type: ignore[attr-defined]
    assert part is not None
    return str(part.get_content())


def wait_sent(http: httpx.Client, ids: list[str]) -> None:
    deadline = time.monotonic() + 20
    for message_id in ids:
        while True:
            status = http.get(f"/admin/courier/messages/{message_id}", headers=AUTH).json()
            if status["status"] == "sent":
                break
            assert status["status"] in {"queued", "processing"}, status
            assert time.monotonic() < deadline, f"{message_id} not delivered"
            time.sleep(0.05)


@contextmanager
def kratos_courier(
    settings_with: Callable[..., Settings],
) -> Iterator[tuple[httpx.Client, Server, HttpServer]]:
    """Postroom with the default tenant on a real SMTP server, tenant ``hooks`` on a real HTTP
    receiver, and tenants ``strict`` (render: postroom) and ``verbatim`` (render: kratos)."""
    with smtp_server() as smtp, http_server() as receiver:
        uri = f"smtp://127.0.0.1:{smtp.port}/?disable_starttls=true"
        smtp_courier = {"smtp": {"connection_uri": uri, "from_address": "id@example.org"}}
        settings = settings_with(
            courier={**smtp_courier, "intake_tokens": [TOKEN], "expose_message_bodies": True},
            tenants={
                "hooks": {
                    "courier": {
                        "delivery_strategy": "http",
                        "http": {"request_config": {"url": receiver.url}},
                        "intake_tokens": [HOOK_TOKEN],
                        "ory": {"token_in": [{"header": "X-Courier-Auth"}, {"cookie": "kc"}]},
                    }
                },
                "strict": {"courier": {**smtp_courier, "ory": {"render": "postroom"}}},
                "verbatim": {
                    "courier": {
                        **smtp_courier,
                        "ory": {"render": "kratos"},
                        "expose_message_bodies": True,
                    }
                },
            },
        )
        with serving(settings) as base, httpx.Client(base_url=base) as http:
            yield http, smtp, receiver


BODIES = {
    "kratos-default": (KRATOS_DEFAULT_BODY, False),
    "kratos-default-capitalised": (KRATOS_DEFAULT_BODY_CAPITALISED, True),
    "ory-docs": (ORY_DOCS_BODY, False),
    **{f"custom-{name}": (body, False) for name, body in CUSTOM_BODIES.items()},
}


def test_the_kratos_default_body_has_nine_keys_and_no_login_code() -> None:
    for body, capitalised in BODIES.values():
        if body.startswith("base64://"):
            sent = evaluate(
                body, kratos_ctx("login_code_valid", "a@example.org", capitalised=capitalised)
            )
            assert set(sent) == NINE
            assert sent["subject"] == MESSAGES["login_code_valid"]["subject"]
            assert "login_code" not in sent and CODES["login_code_valid"] in sent["body"]


@pytest.mark.parametrize("name", list(BODIES))
def test_every_body_kratos_can_send_delivers_its_code_by_smtp_and_http(
    settings_with: Callable[..., Settings], name: str
) -> None:
    body, capitalised = BODIES[name]
    with kratos_courier(settings_with) as (http, smtp, receiver):
        ids = []
        for kind in MESSAGES:
            for tenant, token in (("", TOKEN), ("/hooks", HOOK_TOKEN)):
                recipient = f"{kind}.{tenant.strip('/') or 'smtp'}@example.org"
                payload = evaluate(body, kratos_ctx(kind, recipient, capitalised=capitalised))
                answer = http.post(
                    f"/intake/ory{tenant}",
                    json=payload,
                    headers={"Authorization": f"Bearer {token}"},
                )
                assert answer.status_code == 202, (kind, answer.text)
                ids.append(answer.json()["id"])
        wait_sent(http, ids)
        mails = {m.rcpt_tos[0]: plain_text(m.content) for m in smtp.rec.messages}
        posted = {r.json()["recipient"]: r.json() for r in receiver.requests}
    for kind, code in CODES.items():
        text = mails[f"{kind}.smtp@example.org"]
        assert code in text, (kind, text)
        hook = posted[f"{kind}.hooks@example.org"]
        assert code in hook["body"], (kind, hook)  # the rendered email, in Kratos's key
        assert hook["template_type"] in {kind, "stub"} and hook["subject"]
    link = MESSAGES["verification_code_valid"]["data"]["verification_url"]
    assert link in mails["verification_code_valid.smtp@example.org"]


def test_render_modes_choose_whose_text_is_sent(settings_with: Callable[..., Settings]) -> None:
    login = kratos_ctx("login_code_valid", "jane@example.org")
    nine = evaluate(KRATOS_DEFAULT_BODY, login)
    full = evaluate(CUSTOM_BODIES["nested"], login)  # the code and Kratos's text
    with kratos_courier(settings_with) as (http, smtp, _receiver):
        # auto: Postroom's template when the code is there, Kratos's text when it is not.
        auto_postroom = http.post("/intake/ory", json=full, headers=AUTH).json()
        auto_kratos = http.post("/intake/ory", json=nine, headers=AUTH).json()
        assert auto_postroom["template_type"] == "login_code_valid"
        assert auto_kratos["template_type"] == "stub"
        assert auto_kratos["subject"] == "Login to your account"
        # A subject template's trailing newline: one line, not a refusal.
        folded = http.post(
            "/intake/ory", json={**nine, "subject": "Your login\ncode\n"}, headers=AUTH
        )
        assert folded.status_code == 202 and folded.json()["subject"] == "Your login code"
        # kratos: Kratos's text even when the code is there (customised Kratos templates kept).
        verbatim = http.post("/intake/ory/verbatim", json=full, headers=AUTH).json()
        assert verbatim["template_type"] == "stub"
        assert verbatim["subject"] == "Login to your account"
        # postroom: the template always; a body without the code is refused, naming the fix.
        strict = http.post("/intake/ory/strict", json=full, headers=AUTH).json()
        assert strict["template_type"] == "login_code_valid"
        refused = assert_error(http.post("/intake/ory/strict", json=nine, headers=AUTH), 400)
        assert "login_code" in refused["reason"] and "render" in refused["reason"]
        # Nothing to render with and no text: refused with what to add.
        bare = {**nine, "subject": None, "body": None}
        assert (
            "login_code"
            in assert_error(http.post("/intake/ory", json=bare, headers=AUTH), 400)["reason"]
        )
        sent = [auto_postroom["id"], auto_kratos["id"], verbatim["id"], strict["id"]]
        wait_sent(http, [*sent, folded.json()["id"]])
    texts = [plain_text(m.content) for m in smtp.rec.messages]
    assert all("482913" in text for text in texts) and len(texts) == 5
    assert sum("Login to your account with the following code" in t for t in texts) == 3


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def with_cookies(headers: dict[str, str], cookies: dict[str, str]) -> dict[str, str]:
    """``headers`` plus a Cookie header as Go's ``Request.AddCookie`` writes it."""
    if not cookies:
        return headers
    return {**headers, "Cookie": "; ".join(f"{k}={v}" for k, v in cookies.items())}


# Each form Kratos's request_config.auth produces: (headers, cookies) carrying the token.
def forms(token: str) -> dict[str, tuple[dict[str, str], dict[str, str]]]:
    return {
        "bearer": ({"Authorization": f"Bearer {token}"}, {}),
        "bare authorization": ({"Authorization": token}, {}),
        "basic auth": ({"Authorization": basic("kratos", token)}, {}),
        "x-api-key": ({"X-Api-Key": token}, {}),
        "cookie postroom_token": ({}, {"postroom_token": token}),
    }


def test_every_kratos_auth_form_carries_the_token(settings_with: Callable[..., Settings]) -> None:
    payload = evaluate(ORY_DOCS_BODY, kratos_ctx("login_code_valid", "a@example.org"))
    stored_hash = "sha256:" + hashlib.sha256(TOKEN.encode()).hexdigest()
    with kratos_courier(settings_with) as (http, _smtp, _receiver):

        def post(path: str, headers: dict[str, str], cookies: dict[str, str]) -> int:
            return http.post(path, json=payload, headers=with_cookies(headers, cookies)).status_code

        for name, (headers, cookies) in forms(TOKEN).items():
            assert post("/intake/ory", headers, cookies) == 202, name
            assert post("/intake/ory/hooks", headers, cookies) == 403, name  # not its tenant
        for name, (headers, cookies) in forms(stored_hash).items():
            assert post("/intake/ory", headers, cookies) == 401, f"hash accepted as {name}"
        # The places tenant hooks names in courier.ory.token_in, for hooks only.
        named = {
            "header": ({"X-Courier-Auth": HOOK_TOKEN}, {}),
            "header with Bearer": ({"X-Courier-Auth": f"Bearer {HOOK_TOKEN}"}, {}),
            "cookie": ({}, {"kc": HOOK_TOKEN}),
        }
        for name, (headers, cookies) in named.items():
            assert post("/intake/ory/hooks", headers, cookies) == 202, name
        assert post("/intake/ory/hooks", {"X-Courier-Auth": TOKEN}, {}) == 401  # default's token
        hook_hash = "sha256:" + hashlib.sha256(HOOK_TOKEN.encode()).hexdigest()
        assert post("/intake/ory/hooks", {"X-Courier-Auth": hook_hash}, {}) == 401
        missing = assert_error(http.post("/intake/ory", json=payload), 401)
        assert "X-Api-Key" in missing["reason"] and "postroom_token" in missing["reason"]


def test_wrong_tokens_are_refused_in_every_form(settings_with: Callable[..., Settings]) -> None:
    payload = evaluate(ORY_DOCS_BODY, kratos_ctx("login_code_valid", "a@example.org"))
    with kratos_courier(settings_with) as (http, _smtp, _receiver):
        for _name, (headers, cookies) in forms("wrong-token-0123456789abcdef").items():
            answer = http.post("/intake/ory", json=payload, headers=with_cookies(headers, cookies))
            assert_error(answer, 401)
        broken_basic = {"Authorization": "Basic not-base64!"}
        assert_error(http.post("/intake/ory", json=payload, headers=broken_basic), 401)


def test_the_admin_list_behaves_like_kratos(settings_with: Callable[..., Settings]) -> None:
    with kratos_courier(settings_with) as (http, _smtp, _receiver):
        payload = evaluate(KRATOS_DEFAULT_BODY, kratos_ctx("login_code_valid", "a@example.org"))
        assert http.post("/intake/ory", json=payload, headers=AUTH).status_code == 202
        for asked, used in (("1000", "500"), ("501", "500"), ("0", "250"), ("7", "7")):
            listed = http.get(f"/admin/courier/messages?page_size={asked}", headers=AUTH)
            assert listed.status_code == 200, asked
            assert f"page_size={used}" in listed.links["first"]["url"], asked
            [message] = listed.json()
            assert message["channel"] == "email"
        assert_error(http.get("/admin/courier/messages?page_size=-1", headers=AUTH), 400)
        bad = assert_error(http.get("/admin/courier/messages/not-a-uuid", headers=AUTH), 400)
        assert "id" in bad["reason"]
        assert (
            http.get(f"/admin/courier/messages/{message['id']}", headers=AUTH).json()["channel"]
            == "email"
        )


def test_a_busy_kratos_is_never_locked_out(settings_with: Callable[..., Settings]) -> None:
    """Many concurrent good requests with a tenant's token (Kratos under load) through several
    refreshes of the tenant settings: none is counted as a wrong token, none gets 429."""
    payload = evaluate(ORY_DOCS_BODY, kratos_ctx("login_code_valid", "a@example.org"))
    headers = {"X-Api-Key": TOKEN}

    async def burst(base: str) -> list[int]:
        statuses: list[int] = []
        limits = httpx.Limits(max_connections=24)
        async with httpx.AsyncClient(base_url=base, limits=limits, timeout=30) as client:

            async def one_client() -> None:
                until = time.monotonic() + 2.5  # past two refreshes of the tenant settings
                while time.monotonic() < until:
                    answer = await client.post("/intake/ory", json=payload, headers=headers)
                    statuses.append(answer.status_code)

            await asyncio.gather(*(one_client() for _ in range(24)))
        return statuses

    with kratos_courier(settings_with) as (http, _smtp, _receiver):
        statuses = asyncio.run(burst(str(http.base_url).rstrip("/")))
    assert statuses and set(statuses) == {202}, sorted(set(statuses))


def test_an_api_tenant_sets_its_ory_settings(settings_with: Callable[..., Settings]) -> None:
    token = "api-tenant-kratos-token-0123456789"
    courier = {
        "intake_tokens": [token],
        "expose_message_bodies": True,
        "ory": {"render": "kratos", "token_in": [{"header": "X-Courier-Auth"}]},
    }
    full = evaluate(CUSTOM_BODIES["nested"], kratos_ctx("login_code_valid", "a@example.org"))
    with kratos_courier(settings_with) as (http, _smtp, _receiver):
        saved = http.put("/admin/tenants/api", json=courier, headers=AUTH)
        assert saved.status_code == 200, saved.text
        assert saved.json()["courier"]["ory"] == courier["ory"]
        sent = http.post("/intake/ory/api", json=full, headers={"X-Courier-Auth": token})
        assert sent.status_code == 202, sent.text
        assert sent.json()["subject"] == "Login to your account"  # render: kratos
        bad = {"ory": {"token_in": [{"header": "X-A", "cookie": "b"}]}}
        refused = assert_error(http.put("/admin/tenants/api2", json=bad, headers=AUTH), 400)
        assert "exactly one of header or cookie" in refused["reason"]
