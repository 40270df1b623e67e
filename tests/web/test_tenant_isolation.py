"""One tenant cannot take the service down: its settings are checked once when saved (an
``https://`` body fetched then and kept), a tenant that can no longer be used fails only its
own messages, the worker outlives any failure, and readiness says when it does not."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import threading
import time
from collections.abc import Callable
from typing import Any

import httpx

from postroom.config import Settings
from postroom.config.tenants import TenantRegistry
from postroom.render.jsonnet import load_body
from postroom.store import open_store
from postroom.web.app import create_app

from conftest import Pki
from http_servers import HANG, http_server, reply
from web_support import AUTH, serving, wait_for_status

SECRET_A = "first-secret-0123456789-0123456789"
SECRET_B = "second-secret-0123456789-0123456789"
BODY = "function(ctx) { to: ctx.recipient, code: ctx.template_data.login_code }"


def send(http: httpx.Client, tenant: str, code: str = "123456") -> httpx.Response:
    return http.post(
        "/admin/courier/messages",
        json={
            "recipient": "you@example.org",
            "template_type": "login_code_valid",
            "template_data": {"login_code": code},
            "tenant": tenant,
        },
        headers=AUTH,
    )


def test_an_https_body_is_fetched_when_saved_and_never_again(
    settings_with: Callable[..., Settings], pki: Pki
) -> None:
    settings = settings_with(serve={"allow_private_targets": True})
    with http_server() as provider:
        with (
            http_server([reply(200, BODY)], tls=pki.server_context()) as bodies,
            serving(settings) as base,
            httpx.Client(base_url=base) as http,
        ):
            body_url = bodies.base("/login.jsonnet")
            saved = http.put(
                "/admin/tenants/acme",
                json={"http": {"request_config": {"url": provider.url, "body": body_url}}},
                headers=AUTH,
            )
            assert saved.status_code == 200, saved.text
            assert saved.json()["courier"]["http"]["request_config"]["body"] == body_url
        assert len(bodies.requests) == 1
        # The body's server is gone. A restarted server (a new process: nothing cached) reads
        # the saved tenants again, and another save makes it re-read them once more: before,
        # each re-read fetched the body again, failed, and every call answered 500.
        load_body.cache_clear()
        with serving(settings) as base, httpx.Client(base_url=base) as http:
            other = http.put("/admin/tenants/beta", json={"smtp": {}}, headers=AUTH)
            assert other.status_code == 200, other.text
            assert http.get("/admin/tenants", headers=AUTH).status_code == 200
            assert http.get("/health/ready").status_code == 200
            message = send(http, "acme", "654321")
            assert message.status_code == 202, message.text
            assert (
                wait_for_status(http, message.json()["id"], {"sent", "abandoned"})["status"]
                == "sent"
            )
    assert len(bodies.requests) == 1
    # The body kept from the save built the request.
    assert provider.requests[-1].json() == {"to": "you@example.org", "code": "654321"}


def test_a_tenant_that_cannot_be_used_fails_only_its_own_messages(
    settings_with: Callable[..., Settings],
) -> None:
    with http_server() as provider:
        first = settings_with(
            secrets={"default": [SECRET_A]}, serve={"allow_private_targets": True}
        )
        auth = {"type": "api_key", "config": {"name": "X-Api-Key", "value": "k-0123456789"}}
        config = {"url": provider.url, "auth": auth}
        with serving(first) as base, httpx.Client(base_url=base) as http:
            saved = http.put(
                "/admin/tenants/acme", json={"http": {"request_config": config}}, headers=AUTH
            )
            assert saved.status_code == 200, saved.text
        # Restarted with a secret that cannot decrypt acme's key: acme (only) is broken.
        second = settings_with(
            secrets={"default": [SECRET_B]}, serve={"allow_private_targets": True}
        )
        with serving(second) as base, httpx.Client(base_url=base) as http:
            assert http.get("/health/ready").status_code == 200
            ok = send(http, "default")
            refused = send(http, "acme")
            listed = http.get("/admin/tenants", headers=AUTH)
            shown = http.get("/admin/tenants/acme", headers=AUTH).json()
            assert ok.status_code == 202, ok.text
            assert wait_for_status(http, ok.json()["id"], {"sent"})["status"] == "sent"
    assert refused.status_code == 503
    reason = refused.json()["error"]["reason"]
    assert "acme" in reason and "secrets.default" in reason and "k-0123456789" not in reason
    assert listed.status_code == 200 and [t["id"] for t in listed.json()] == ["default", "acme"]
    assert "secrets.default" in shown["error"]
    assert provider.requests == []


async def test_a_queued_message_of_a_broken_tenant_is_diagnosed(
    settings_with: Callable[..., Settings],
) -> None:
    from postroom.intake import SendRequest, enqueue
    from postroom.worker import Worker

    first = settings_with(secrets={"default": [SECRET_A]}, serve={"allow_private_targets": True})
    store = open_store(first.dsn)
    await store.migrate()
    try:
        registry = TenantRegistry(first, store)
        uri = "smtp://user:pw-0123456789@127.0.0.1:1/?disable_starttls=true"
        await registry.save("acme", {"smtp": {"connection_uri": uri}})
        [(message, _)] = await enqueue(
            store,
            await registry.settings(),
            [SendRequest(to="a@example.org", template_type="test", tenant="acme")],
        )
        broken = TenantRegistry(settings_with(secrets={"default": [SECRET_B]}), store)
        merged = await broken.settings()
        await Worker(store, merged, tenants=broken).run(drain=True)
        done = await store.get(message.id)
    finally:
        await store.close()
    assert done.last_error is not None and done.last_error.code == "settings_invalid"
    assert "secrets.default" in done.last_error.cause and done.send_count == 1


class _FailingReads:
    """A store whose tenant reads fail ``failures`` times with an unexpected error (a bug,
    a driver hiccup), then work: the worker must ride it out."""

    def __init__(self, inner: Any, failures: int) -> None:
        self._inner = inner
        self.failures = failures

    async def tenants_version(self) -> str:
        if self.failures > 0:
            self.failures -= 1
            raise RuntimeError("injected failure reading the tenants")
        version: str = await self._inner.tenants_version()
        return version

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


class _Stop(BaseException):
    """Escapes every handler: stands for whatever could still end the worker's task."""


class _DyingClaims(_FailingReads):
    async def claim(self, **kwargs: Any) -> Any:
        raise _Stop()


def test_the_worker_survives_failures_and_readiness_tells_when_it_stopped(
    settings_with: Callable[..., Settings],
) -> None:
    settings = settings_with()
    token = "t" * 40
    headers = {"Authorization": f"Bearer {token}"}

    async def scenario() -> None:
        inner = open_store(settings.dsn)
        await inner.migrate()
        store = _FailingReads(inner, failures=2)
        app = create_app(settings, store=store, admin_token=token)
        transport = httpx.ASGITransport(app=app)
        async with (
            app.router.lifespan_context(app),
            httpx.AsyncClient(transport=transport, base_url="http://t") as http,
        ):
            deadline = time.monotonic() + 15
            while store.failures:  # the worker's own reads meet the failures
                assert time.monotonic() < deadline
                await asyncio.sleep(0.05)
            posted = await http.post(
                "/admin/courier/messages",
                json={"recipient": "a@example.org", "template_type": "test"},
                headers=headers,
            )
            assert posted.status_code == 202, posted.text
            while (await inner.get(posted.json()["id"])).status.value != "sent":
                assert time.monotonic() < deadline, "the worker stopped after the failures"
                await asyncio.sleep(0.05)
            assert (await http.get("/health/ready")).status_code == 200
        await inner.close()

        inner = open_store(settings.dsn)
        app = create_app(settings, store=_DyingClaims(inner, failures=0), admin_token=token)
        transport = httpx.ASGITransport(app=app)
        context = app.router.lifespan_context(app)
        await context.__aenter__()
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
            task = app.state.worker_task
            await asyncio.wait([task])
            ready = await http.get("/health/ready")
        with contextlib.suppress(_Stop):
            await context.__aexit__(None, None, None)
        await inner.close()
        assert ready.status_code == 503 and "worker" in ready.json()["reason"]

    asyncio.run(scenario())


def test_saving_a_tenant_does_not_block_the_server(
    settings_with: Callable[..., Settings], pki: Pki
) -> None:
    settings = settings_with(serve={"allow_private_targets": True})
    answer: dict[str, httpx.Response] = {}
    with serving(settings) as base, httpx.Client(base_url=base, timeout=60) as http:
        with http_server([HANG], tls=pki.server_context()) as bodies:
            config = {"url": bodies.url, "body": bodies.base("/b.jsonnet")}

            def save() -> None:
                answer["put"] = http.put(
                    "/admin/tenants/slow", json={"http": {"request_config": config}}, headers=AUTH
                )

            saver = threading.Thread(target=save)
            saver.start()
            deadline = time.monotonic() + 10
            while not bodies.requests:  # the save now waits for the body's server
                assert time.monotonic() < deadline
                time.sleep(0.01)
            alive = httpx.get(f"{base}/health/alive", timeout=2)
            assert alive.status_code == 200
        saver.join(60)  # the hanging server let go when it stopped
    assert answer["put"].status_code == 400
    assert "http.request_config.body" in answer["put"].json()["error"]["reason"]


def test_a_stored_row_that_is_not_a_mapping_is_reported_not_a_500(
    settings_with: Callable[..., Settings], tmp_path: Any
) -> None:
    # A row damaged outside Postroom (a hand edit, a bad restore): listed with why, never 500.
    settings = settings_with(serve={"allow_private_targets": True})
    with serving(settings) as base, httpx.Client(base_url=base, headers=AUTH) as http:
        saved = http.put("/admin/tenants/acme", json={"smtp": {"from_address": "a@example.org"}})
        assert saved.status_code == 200, saved.text
    with sqlite3.connect(tmp_path / "postroom.db") as db:
        db.execute(
            "UPDATE tenants SET courier = '[1, 2]', updated_at = updated_at WHERE id = 'acme'"
        )
    with serving(settings) as base, httpx.Client(base_url=base, headers=AUTH) as http:
        listed = http.get("/admin/tenants")
        shown = http.get("/admin/tenants/acme")
        ok = send(http, "default")
    assert listed.status_code == 200 and [t["id"] for t in listed.json()] == ["default", "acme"]
    assert shown.status_code == 200 and "not a mapping" in shown.json()["error"]
    assert ok.status_code == 202
