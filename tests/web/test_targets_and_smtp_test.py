"""The SSRF guard at send time for tenants saved through the API, and the test-smtp route."""

from __future__ import annotations

from collections.abc import Callable

import httpx

from postroom.config import Settings
from postroom.config.tenants import TenantRegistry
from postroom.intake import SendRequest, enqueue
from postroom.models import Status
from postroom.store import open_store
from postroom.worker import Worker

from smtp_servers import smtp_server
from web_support import AUTH, serving


def test_test_smtp_route_walks_the_conversation(settings_with: Callable[..., Settings]) -> None:
    with smtp_server(users=None) as srv:
        uri = f"smtp://127.0.0.1:{srv.port}/?disable_starttls=true"
        settings = settings_with(
            courier={"smtp": {"connection_uri": uri, "from_address": "no-reply@example.org"}}
        )
        with serving(settings, run_worker=False) as base, httpx.Client(base_url=base) as http:
            done = http.post(
                "/admin/tenants/default/test-smtp", json={"to": "you@example.org"}, headers=AUTH
            )
            dry = http.post(
                "/admin/tenants/default/test-smtp", json={"no_send": True}, headers=AUTH
            )
            missing = http.post("/admin/tenants/nope/test-smtp", json={}, headers=AUTH)
    report = done.json()
    assert done.status_code == 200 and report["ok"] is True, report
    stages = [s["stage"] for s in report["steps"]]
    assert stages[:3] == ["render", "dns", "connect"] and "data" in stages
    assert len(srv.rec.messages) == 1  # the dry run sent nothing
    assert dry.json()["ok"] is True and "data" not in [s["stage"] for s in dry.json()["steps"]]
    assert missing.status_code == 404


async def test_api_tenants_cannot_reach_private_addresses_at_send_time(
    settings_with: Callable[..., Settings],
) -> None:
    with smtp_server() as srv:
        uri = f"smtp://127.0.0.1:{srv.port}/?disable_starttls=true"
        permissive = settings_with(serve={"allow_private_targets": True})
        store = open_store(permissive.dsn)
        await store.migrate()
        try:
            await TenantRegistry(permissive, store).save("lab", {"smtp": {"connection_uri": uri}})
            # The operator turns the flag off: what was saved may no longer reach 127.0.0.1.
            strict = settings_with()
            registry = TenantRegistry(strict, store)
            merged = await registry.settings()
            [(message, _)] = await enqueue(
                store, merged, [SendRequest(to="a@example.org", template_type="test", tenant="lab")]
            )
            await Worker(store, merged, tenants=registry).run(drain=True)
            done = await store.get(message.id)
        finally:
            await store.close()
    assert done.status is Status.ABANDONED
    assert done.last_error is not None and done.last_error.code == "target_forbidden"
    assert srv.rec.messages == [] and srv.rec.connections == 0
