"""The worker logging in with XOAUTH2 against a real token endpoint (HTTPS) and a real SMTP
server that accepts only tokens that endpoint honours: one token for many messages, a token
renewed before it expires, a revoked token replaced once, a wrong secret given up at once,
and no token or secret in anything the worker leaves behind."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import time
from collections.abc import Callable
from typing import Any

import pytest

from postroom.config import Settings
from postroom.intake import SendRequest, enqueue
from postroom.models import DispatchStatus, Message, Status, message_json
from postroom.store import Store
from postroom.worker import Worker

from oauth_server import CLIENT_ID, CLIENT_SECRET, OAuthProvider, oauth_endpoint, xoauth2_server

SENDER = "sender@example.org"


def login_code(n: int = 0) -> SendRequest:
    return SendRequest(
        to=f"you{n}@example.org", template_type="login_code_valid", data={"login_code": "123456"}
    )


def m365(provider: OAuthProvider, port: int, **oauth: Any) -> dict[str, Any]:
    """A Microsoft 365 client-credentials tenant against the local endpoint and server."""
    return {
        "smtp": {
            "connection_uri": f"smtp://sender%40example.org@localhost:{port}/",
            "from_address": SENDER,
            "oauth2": {
                "provider": "microsoft",
                "tenant_id": "contoso",
                "client_id": CLIENT_ID,
                "client_secret": CLIENT_SECRET,
                "token_url": provider.token_url(),
                **oauth,
            },
        }
    }


async def wait_for(store: Store, message_id: str, status: Status, timeout: float = 15) -> Message:
    deadline = time.monotonic() + timeout
    while True:
        message = await store.get(message_id)
        if message.status is status:
            return message
        finished = message.status in (Status.SENT, Status.ABANDONED)
        assert not finished and time.monotonic() < deadline, [d.error for d in message.dispatches]
        await asyncio.sleep(0.05)


async def test_500_messages_need_one_token_request(
    store: Store, make_settings: Callable[..., Settings], pki: Any
) -> None:
    with (
        oauth_endpoint(pki.server_context()) as (provider, _http),
        xoauth2_server(provider, tls=pki.server_context()) as srv,
    ):
        settings = make_settings(**m365(provider, srv.port))
        await enqueue(store, settings, [login_code(n) for n in range(500)])
        stats = await Worker(store, settings, concurrency=8).run(drain=True, max_wait=5)
    assert stats.sent == 500
    assert len(srv.rec.messages) == 500
    assert len(provider.grants("client_credentials")) == 1
    assert provider.grants("client_credentials")[0].form["scope"] == (
        "https://outlook.office365.com/.default"
    )
    logins = srv.handler.xoauth2
    assert logins and all(login.ok and login.user == SENDER for login in logins)
    assert len(logins) == srv.rec.connections <= 8


async def test_an_expiring_token_is_renewed_before_a_login_fails(
    store: Store, make_settings: Callable[..., Settings], pki: Any
) -> None:
    # Tokens live 2 s; the server drops idle sessions after 1 s, so the second message needs a
    # new session and a new login, by which time the first token has expired.
    with (
        oauth_endpoint(pki.server_context(), lifetime=2) as (provider, _http),
        xoauth2_server(provider, tls=pki.server_context(), idle_timeout=1) as srv,
    ):
        settings = make_settings(**m365(provider, srv.port))
        stop = asyncio.Event()
        running = asyncio.create_task(Worker(store, settings, concurrency=1).run(stop))
        try:
            [(first, _)] = await enqueue(store, settings, [login_code(1)])
            await wait_for(store, first.id, Status.SENT)
            await asyncio.sleep(2.3)
            [(second, _)] = await enqueue(store, settings, [login_code(2)])
            done = await wait_for(store, second.id, Status.SENT)
        finally:
            stop.set()
            await running
    assert done.send_count == 1
    assert [d.status for d in done.dispatches] == [DispatchStatus.SUCCESS]
    assert len(provider.grants("client_credentials")) == 2
    assert [login.ok for login in srv.handler.xoauth2] == [True, True]  # never a refused login
    assert len(srv.rec.messages) == 2


async def test_a_revoked_token_is_dropped_and_replaced_once(
    store: Store, make_settings: Callable[..., Settings], pki: Any
) -> None:
    with (
        oauth_endpoint(pki.server_context()) as (provider, _http),
        xoauth2_server(provider, tls=pki.server_context(), idle_timeout=1) as srv,
    ):
        settings = make_settings(**m365(provider, srv.port))
        stop = asyncio.Event()
        running = asyncio.create_task(Worker(store, settings, concurrency=1).run(stop))
        try:
            [(first, _)] = await enqueue(store, settings, [login_code(1)])
            await wait_for(store, first.id, Status.SENT)
            provider.revoke()  # e.g. the app's permission was withdrawn and granted again
            await asyncio.sleep(1.3)  # the server has dropped the idle session
            [(second, _)] = await enqueue(store, settings, [login_code(2)])
            done = await wait_for(store, second.id, Status.SENT)
        finally:
            stop.set()
            await running
    assert done.send_count == 1
    assert [d.status for d in done.dispatches] == [DispatchStatus.SUCCESS]
    assert len(provider.grants("client_credentials")) == 2  # one refresh, no more
    assert [login.ok for login in srv.handler.xoauth2] == [True, False, True]
    assert len(srv.rec.messages) == 2


async def test_a_wrong_client_secret_is_abandoned_after_one_attempt(
    store: Store, make_settings: Callable[..., Settings], pki: Any
) -> None:
    wrong = "Zz9~not-the-secret-0123456789abcdefghij"
    with (
        oauth_endpoint(pki.server_context()) as (provider, _http),
        xoauth2_server(provider, tls=pki.server_context()) as srv,
    ):
        settings = make_settings(**m365(provider, srv.port, client_secret=wrong))
        [(message, _)] = await enqueue(store, settings, [login_code()])
        await Worker(store, settings).run(drain=True, max_wait=5)
    done = await store.get(message.id)
    assert done.status is Status.ABANDONED
    assert done.send_count == 1
    [dispatch] = done.dispatches
    error = dispatch.error
    assert error is not None
    assert error.code == "oauth_token_rejected"
    assert error.transient is False
    assert error.stage == "token"
    assert error.reply is not None and error.reply.startswith("401 invalid_client: AADSTS7000215")
    assert "Trace ID" not in error.reply
    assert "Value" in error.fix and "Certificates & secrets" in error.fix
    assert len(provider.grants("client_credentials")) == 1
    assert srv.handler.xoauth2 == []  # no login was tried without a token
    shown = json.dumps(message_json(done, expose_bodies=True))
    assert wrong not in shown and CLIENT_SECRET not in shown


async def test_no_token_or_secret_in_logs_or_dispatch_records(
    store: Store,
    make_settings: Callable[..., Settings],
    pki: Any,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    with (
        oauth_endpoint(pki.server_context()) as (provider, _http),
        xoauth2_server(provider, tls=pki.server_context()) as srv,
    ):
        provider.refuse_new = True  # every token is refused: a failed login is recorded too
        settings = make_settings(
            **m365(provider, srv.port), message_retries=1, retry={"initial": "10ms"}
        )
        [(failed, _)] = await enqueue(store, settings, [login_code(1)])
        await Worker(store, settings).run(drain=True, max_wait=5)
        provider.refuse_new = False
        provider.revoke()
        [(sent, _)] = await enqueue(store, settings, [login_code(2)])
        await Worker(store, settings).run(drain=True, max_wait=5)
    failed_done, sent_done = await store.get(failed.id), await store.get(sent.id)
    assert failed_done.status is Status.ABANDONED
    assert failed_done.dispatches[0].error is not None
    assert failed_done.dispatches[0].error.code == "oauth_token_rejected"
    assert failed_done.dispatches[0].error.stage == "auth"
    assert sent_done.status is Status.SENT
    tokens = provider.secrets_seen()
    assert len(tokens) == 3  # two refused (the second after dropping the first), one good
    records = json.dumps([message_json(m, expose_bodies=True) for m in (failed_done, sent_done)])
    logs = "\n".join(f"{r.getMessage()} {r.args!r} {r.exc_text or ''}" for r in caplog.records)
    blobs = [
        base64.b64encode(f"user={SENDER}\x01auth=Bearer {t}\x01\x01".encode()).decode()
        for t in tokens
    ]
    for secret in [*tokens, *blobs, CLIENT_SECRET]:
        assert secret not in records
        assert secret not in logs
