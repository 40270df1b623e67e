"""OAuth2 through the admin API: a tenant saved with a client secret shows it masked, its
test-smtp walks the ``token`` step, and its messages go out with XOAUTH2; no token or secret
in any answer."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import httpx

from postroom.config import Settings

from oauth_server import CLIENT_ID, CLIENT_SECRET, oauth_endpoint, xoauth2_server
from web_support import AUTH, serving


def test_an_oauth2_tenant_through_the_api(settings_with: Callable[..., Settings], pki: Any) -> None:
    with (
        oauth_endpoint(pki.server_context()) as (provider, _http),
        xoauth2_server(provider, tls=pki.server_context()) as srv,
    ):
        settings = settings_with(serve={"allow_private_targets": True})
        tenant = {
            "smtp": {
                "connection_uri": f"smtp://sender%40example.org@localhost:{srv.port}/",
                "from_address": "sender@example.org",
                "oauth2": {
                    "provider": "microsoft",
                    "tenant_id": "contoso",
                    "client_id": CLIENT_ID,
                    "client_secret": CLIENT_SECRET,
                    "token_url": provider.token_url(),
                },
            }
        }
        answers: list[str] = []
        with serving(settings) as base, httpx.Client(base_url=base, timeout=30) as http:
            put = http.put("/admin/tenants/acme", json=tenant, headers=AUTH)
            assert put.status_code == 200, put.text
            shown = http.get("/admin/tenants/acme", headers=AUTH)
            assert shown.json()["courier"]["smtp"]["oauth2"]["client_secret"] == "***"
            test = http.post("/admin/tenants/acme/test-smtp", json={}, headers=AUTH)
            report = test.json()
            assert report["ok"] is True, report
            stages = [s["stage"] for s in report["steps"]]
            assert stages.index("token") == stages.index("auth") - 1
            sent = http.post(
                "/admin/courier/messages",
                json={
                    "recipient": "you@example.org",
                    "template_type": "login_code_valid",
                    "template_data": {"login_code": "123456"},
                    "tenant": "acme",
                },
                headers=AUTH,
            )
            assert sent.status_code == 202, sent.text
            deadline = time.monotonic() + 15
            while True:
                message = http.get(f"/admin/courier/messages/{sent.json()['id']}", headers=AUTH)
                if message.json()["status"] == "sent":
                    break
                assert time.monotonic() < deadline, message.text
                time.sleep(0.1)
            listed = http.get("/admin/tenants", headers=AUTH)
            answers = [put.text, shown.text, test.text, message.text, listed.text]
    assert len(srv.rec.messages) == 2  # the test email and the message
    assert all(login.ok for login in srv.handler.xoauth2)
    for secret in [*provider.secrets_seen(), CLIENT_SECRET]:
        for answer in answers:
            assert secret not in answer
