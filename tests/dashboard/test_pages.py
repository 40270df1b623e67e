"""The dashboard's pages over a real socket: what they show, what they never show (bodies
that are not exposed, credentials), escaping, paging and filters, retry and cancel, the tenant
form, the outbox."""

from __future__ import annotations

import asyncio
import base64
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from postroom.config import Settings
from postroom.config.tenants import TenantRegistry
from postroom.store import open_store

from dashboard_support import Dash, dash_client_fixture  # noqa: F401 (the fixture dash_client)
from smtp_servers import smtp_server
from web_support import AUTH, serving

ROW = re.compile(r'<a href="/messages/([0-9a-f-]{36})">')


def stored_courier(settings: Settings, tenant: str) -> dict[str, Any]:
    """A saved tenant's courier section, decrypted (what the worker will use)."""

    async def read() -> dict[str, Any]:
        store = open_store(settings.dsn)
        try:
            saved = await store.get_tenant(tenant)
            assert saved is not None
            return TenantRegistry(settings, store)._decrypt(saved.courier)
        finally:
            await store.close()

    return asyncio.run(read())


def test_bodies_are_redacted_unless_the_tenant_exposes_them(
    settings_with: Callable[..., Settings], dash_client: Callable[[str], Dash]
) -> None:
    settings = settings_with(tenants={"open": {"courier": {"expose_message_bodies": True}}})
    with serving(settings, run_worker=False) as base:
        dash = dash_client(base)
        dash.sign_in()
        hidden = dash.enqueue(template_data={"login_code": "918273"})
        shown = dash.enqueue(tenant="open", template_data={"login_code": "564738"})
        listing = dash.http.get("/messages").text
        rows = dash.http.get("/messages?fragment=rows").text
        page = dash.http.get(f"/messages/{hidden['id']}").text
        for text in (listing, rows, page):
            assert "918273" not in text
        assert "Redacted." in page and "&lt;redacted&gt;" in page
        assert dash.http.get(f"/messages/{hidden['id']}/html").status_code == 404

        open_page = dash.http.get(f"/messages/{shown['id']}").text
        assert "564738" in open_page and "Redacted." not in open_page
        assert f'src="/messages/{shown["id"]}/html" sandbox=""' in open_page
        body = dash.http.get(f"/messages/{shown['id']}/html")
        assert body.status_code == 200 and "564738" in body.text
        assert body.headers["content-security-policy"].startswith("sandbox;")
        assert "script-src" not in body.headers["content-security-policy"]


def test_user_content_is_escaped_everywhere(
    settings_with: Callable[..., Settings], dash_client: Callable[[str], Dash]
) -> None:
    settings = settings_with(courier={"expose_message_bodies": True})
    with serving(settings, run_worker=False) as base:
        dash = dash_client(base)
        dash.sign_in()
        evil = dash.enqueue(
            subject="<script>alert('subject')</script>",
            body="<img src=x onerror=alert('body')>",
            html_body="<p>hi</p><script>alert('html')</script>",
            recipient="o'brien@example.org",
        )
        for path in ("/messages", "/messages?fragment=rows", f"/messages/{evil['id']}"):
            text = dash.http.get(path).text
            assert "<script>alert" not in text and "<img src=x" not in text, path
            assert "&lt;script&gt;alert(&#39;subject&#39;)&lt;/script&gt;" in text, path
        # The HTML body is the email as sent, shown only inside a sandbox without scripts.
        framed = dash.http.get(f"/messages/{evil['id']}/html")
        assert "sandbox" in framed.headers["content-security-policy"]


def test_no_credential_reaches_a_page_and_the_form_keeps_stored_ones(
    settings_with: Callable[..., Settings], dash_client: Callable[[str], Dash]
) -> None:
    file_password = "file-Pa55word-0001"
    settings = settings_with(
        courier={
            "smtp": {"connection_uri": f"smtp://mailer:{file_password}@smtp.example.org:587/"}
        },
        serve={"allow_private_targets": True},
    )
    secrets = {
        file_password,
        "api-Pa55word-0002",
        "sk-live-0003",
        "hdr-secret-0004",
        "intake-token-0005-long-enough",
    }
    with serving(settings, run_worker=False) as base:
        dash = dash_client(base)
        dash.sign_in()
        put = dash.http.put(
            "/admin/tenants/acme",
            headers=AUTH,
            json={
                "preset": "sendgrid",
                "smtp": {
                    "connection_uri": "smtp://apikey:api-Pa55word-0002@smtp.sendgrid.net:587/",
                    "from_address": "no-reply@acme.example",
                },
                "http": {
                    "request_config": {
                        "url": "https://api.example.org/send",
                        "headers": {"X-Api-Key": "hdr-secret-0004"},
                        "auth": {
                            "type": "api_key",
                            "config": {"name": "Authorization", "value": "Bearer sk-live-0003"},
                        },
                    }
                },
                "intake_tokens": ["intake-token-0005-long-enough"],
            },
        )
        assert put.status_code == 200, put.text

        def every_page() -> str:
            pages = ["/", "/messages", "/tenants", "/tenants/default", "/tenants/acme", "/outbox"]
            return "\n".join(dash.http.get(p).text for p in pages)

        text = every_page()
        for secret in secrets:
            assert secret not in text
        assert "stored; leave empty to keep it" in text

        # Saving the form untouched (empty password fields, masked header) keeps every secret.
        form = {
            "strategy": "smtp",
            "preset": "sendgrid",
            "host": "smtp.sendgrid.net",
            "port": "587",
            "security": "starttls",
            "username": "apikey",
            "password": "",
            "from_address": "no-reply@acme.example",
            "http_url": "https://api.example.org/send",
            "http_method": "POST",
            "http_headers": "X-Api-Key: ***",
            "http_auth": "api_key",
            "http_key_name": "Authorization",
            "http_key_in": "header",
            "http_key_value": "",
        }
        saved = dash.submit("/tenants/acme", "/tenants/acme", form)
        assert saved.status_code == 303, saved.text
        courier = stored_courier(settings, "acme")
        assert courier["smtp"]["connection_uri"] == (
            "smtp://apikey:api-Pa55word-0002@smtp.sendgrid.net:587/"
        )
        config = courier["http"]["request_config"]
        assert config["auth"]["config"]["value"] == "Bearer sk-live-0003"
        assert config["headers"] == {"X-Api-Key": "hdr-secret-0004"}
        assert len(courier["intake_tokens"]) == 1
        for secret in secrets:
            assert secret not in every_page()

        # A new password replaces the stored one; a refused save never echoes it.
        changed = dash.submit("/tenants/acme", "/tenants/acme", {**form, "password": "n3w/p@ss"})
        assert changed.status_code == 303
        uri = stored_courier(settings, "acme")["smtp"]["connection_uri"]
        assert uri == "smtp://apikey:n3w%2Fp%40ss@smtp.sendgrid.net:587/"
        refused = dash.submit(
            "/tenants/acme",
            "/tenants/acme",
            {**form, "password": "typed-Secret-0006", "from_address": "not an address"},
        )
        assert refused.status_code == 400 and "from_address" in refused.text
        assert "typed-Secret-0006" not in refused.text

        # A file tenant is read-only here.
        page = dash.http.get("/tenants/default").text
        assert "declared in the configuration file" in page and "<fieldset disabled>" in page
        blocked = dash.submit("/tenants/default", "/tenants/default", form)
        assert blocked.status_code == 400 and "configuration file" in blocked.text


def test_new_tenant_and_test_email_transcript(
    settings_with: Callable[..., Settings], dash_client: Callable[[str], Dash]
) -> None:
    settings = settings_with(serve={"allow_private_targets": True})
    with (
        smtp_server(users={"mailer": "right-password"}) as server,
        serving(settings, run_worker=False) as base,
    ):
        dash = dash_client(base)
        dash.sign_in()
        form = {
            "id": "relay",
            "strategy": "smtp",
            "host": server.host,
            "port": str(server.port),
            "security": "cleartext",
            "username": "mailer",
            "password": "wrong-password",
            "from_address": "no-reply@relay.example",
        }
        created = dash.submit("/tenants/new", "/tenants/new", form)
        assert created.status_code == 303 and created.headers["location"].startswith(
            "/tenants/relay"
        )
        again = dash.submit("/tenants/new", "/tenants/new", form)
        assert again.status_code == 400 and "exists already" in again.text

        failed = dash.submit("/tenants/relay", "/tenants/relay/test", {"to": "me@example.org"})
        assert failed.status_code == 200
        assert "Failed at <strong>auth</strong>" in failed.text
        assert re.search(
            r'class="step step-failed">.*?<span class="step-stage">auth', failed.text, re.S
        )
        assert "auth_failed" in failed.text and "wrong-password" not in failed.text

        fixed = dash.submit(
            "/tenants/relay", "/tenants/relay", {**form, "password": "right-password"}
        )
        assert fixed.status_code == 303
        passed = dash.submit("/tenants/relay", "/tenants/relay/test", {"to": "me@example.org"})
        assert "✓ Passed" in passed.text and "step-failed" not in passed.text
        assert server.rec.messages[-1].rcpt_tos == ["me@example.org"]
        assert "right-password" not in passed.text


def test_the_test_email_keeps_the_private_target_rule_like_the_api(
    settings_with: Callable[..., Settings], dash_client: Callable[[str], Dash]
) -> None:
    # Saved while the operator allowed private targets; tested after they no longer are.
    with smtp_server() as server:
        with serving(settings_with(serve={"allow_private_targets": True})) as base:
            saved = httpx.put(
                f"{base}/admin/tenants/lab",
                json={
                    "smtp": {
                        "connection_uri": f"smtp://127.0.0.1:{server.port}/?disable_starttls=true",
                        "from_address": "no-reply@lab.example",
                    }
                },
                headers=AUTH,
            )
            assert saved.status_code == 200, saved.text
        with serving(settings_with(), run_worker=False) as base:
            dash = dash_client(base)
            dash.sign_in()
            page = dash.submit("/tenants/lab", "/tenants/lab/test", {"to": "me@example.org"})
            api = httpx.post(
                f"{base}/admin/tenants/lab/test-smtp", json={"to": "me@example.org"}, headers=AUTH
            ).json()
    assert "step-failed" in page.text and "✓ Passed" not in page.text
    assert api["ok"] is False and api["failed_stage"] == "connect"
    assert server.rec.messages == []


def test_message_list_pages_filters_and_fragments(
    settings_with: Callable[..., Settings], dash_client: Callable[[str], Dash]
) -> None:
    settings = settings_with(tenants={"acme": {"courier": {}}})
    with serving(settings, run_worker=False) as base:
        dash = dash_client(base)
        dash.sign_in()
        ids = [dash.enqueue(recipient=f"user{n}@example.org")["id"] for n in range(55)]
        acme = dash.enqueue(tenant="acme", recipient="someone@acme.example")["id"]
        first = dash.http.get("/messages")
        first_ids = ROW.findall(first.text)
        assert first_ids == [acme, *reversed(ids)][:50]
        older = re.search(r'href="([^"]+)" rel="next"', first.text)
        assert older
        second = dash.http.get(older.group(1).replace("&amp;", "&"))
        assert ROW.findall(second.text) == list(reversed(ids))[49:]
        assert 'rel="next"' not in second.text and "data-refresh=" not in second.text

        assert ROW.findall(dash.http.get("/messages?tenant=acme").text) == [acme]
        assert ROW.findall(dash.http.get("/messages?recipient=user7@example.org").text) == [ids[7]]
        assert ROW.findall(dash.http.get("/messages?status=abandoned").text) == []
        only_rows = dash.http.get("/messages?tenant=acme&fragment=rows").text
        assert "<html" not in only_rows and ROW.findall(only_rows) == [acme]
        assert dash.http.get("/messages?status=bogus").status_code == 400
        assert dash.http.get("/messages?page=garbage!").status_code == 400
        missing = dash.http.get("/messages/no-such-id")
        assert missing.status_code == 404 and "<h1>Not found</h1>" in missing.text
        assert dash.http.get("/tenants/nobody").status_code == 404


def test_crafted_page_tokens_and_a_nul_filter_are_400_not_500(
    pg_dsn: str, settings_with: Callable[..., Settings], dash_client: Callable[[str], Dash]
) -> None:
    def token(text: str) -> str:
        return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")

    crafted = [
        token("2024-01-01T00:00:00|00000000-0000-0000-0000-000000000000"),  # naive
        token("0001-01-01T00:00:00+14:00|x"),  # before year 1 in UTC
        token("9999-12-31T23:59:59-14:00|x"),  # after year 9999 in UTC
        token("2024-01-01T00:00:00+00:00|\x00"),
    ]
    with serving(settings_with(dsn=pg_dsn), run_worker=False) as base:
        dash = dash_client(base)
        dash.sign_in()
        dash.enqueue()
        for page_token in crafted:
            page = dash.http.get("/messages", params={"page": page_token})
            assert page.status_code == 400, page.text
            assert "start again from the newest" in page.text
        assert dash.http.get("/messages", params={"recipient": "\x00"}).status_code == 400
        assert len(ROW.findall(dash.http.get("/messages").text)) == 1


def test_retry_confirms_past_the_ttl_and_cancel_abandons(
    settings_with: Callable[..., Settings], dash_client: Callable[[str], Dash]
) -> None:
    settings = settings_with(tenants={"quick": {"courier": {"message_ttl": "1s"}}})
    with serving(settings, run_worker=False) as base:
        dash = dash_client(base)
        dash.sign_in()
        young, old = dash.enqueue(), dash.enqueue(tenant="quick")
        for message in (young, old):
            path = f"/messages/{message['id']}"
            assert "Cancel</button>" in dash.http.get(path).text
            # Cancel asks first; nothing changes until it is confirmed.
            asked = dash.submit(path, f"{path}/cancel")
            assert asked.status_code == 200 and "Cancel this message?" in asked.text
            assert dash.message(message["id"])["status"] == "queued"
            confirmed = dash.submit(path, f"{path}/cancel", {"confirm": "yes"})
            assert confirmed.headers["location"].endswith("cancelled")
            page = dash.http.get(f"{path}?notice=cancelled").text
            assert "The message was cancelled." in page and "Retry now</button>" in page
            assert '<code class="code">cancelled</code>' in page
        time.sleep(1.2)
        old_path = f"/messages/{old['id']}"
        confirm = dash.submit(old_path, f"{old_path}/retry")
        assert confirm.status_code == 200 and "Retry anyway" in confirm.text
        assert dash.message(old["id"])["status"] == "abandoned"
        done = dash.submit(old_path, f"{old_path}/retry", {"confirm": "yes"})
        assert done.status_code == 303 and dash.message(old["id"])["status"] == "queued"

        young_path = f"/messages/{young['id']}"
        assert dash.submit(young_path, f"{young_path}/retry").status_code == 303
        assert dash.message(young["id"])["status"] == "queued"
        twice = dash.submit(young_path, f"{young_path}/retry")
        assert twice.status_code == 409 and "only abandoned messages" in twice.text


def test_overview_counts_and_failure_reasons(
    settings_with: Callable[..., Settings], dash_client: Callable[[str], Dash]
) -> None:
    settings = settings_with(tenants={"acme": {"courier": {}}})
    with serving(settings) as base:
        dash = dash_client(base)
        dash.sign_in()
        sent = dash.enqueue()
        dash.wait_for(sent["id"], "sent")
        page = dash.http.get("/").text
        assert 'href="/messages?tenant=acme"' in page
        assert "No failures in the last 24 hours." in page
    with serving(settings, run_worker=False) as base:
        dash = dash_client(base)
        dash.sign_in()
        queued = dash.enqueue(tenant="acme")
        dash.http.post(f"/admin/courier/messages/{queued['id']}/cancel", headers=AUTH)
        page = dash.http.get("/").text
        assert '<code class="code">cancelled</code>' in page and "1 abandoned" in page
        assert re.search(r"Sent, last hour</h2>\s*<p class=\"stat-value\">1<", page)
        assert 'class="bar bar-sent"' in page and 'class="bar bar-abandoned"' in page


def test_outbox_lists_and_renders_captured_email(
    settings_with: Callable[..., Settings], dash_client: Callable[[str], Dash], tmp_path: Path
) -> None:
    settings = settings_with()
    with serving(settings) as base:
        dash = dash_client(base)
        dash.sign_in()
        message = dash.enqueue(template_data={"login_code": "135790"})
        dash.wait_for(message["id"], "sent")
        name = f"{message['id']}.eml"
        listing = dash.http.get("/outbox")
        assert name in listing.text and "135790" not in listing.text
        detail = dash.http.get(f"/outbox/{name}")
        assert detail.status_code == 200 and "Redacted." in detail.text
        assert f'href="/messages/{message["id"]}"' in detail.text
        assert dash.http.get(f"/outbox/{name}/html").status_code == 404
        for bad in ("..%2Fpostroom.db", "x.txt", ".hidden.eml", "nothing.eml"):
            assert dash.http.get(f"/outbox/{bad}").status_code == 404, bad
    with serving(settings, dev=True, run_worker=False) as base:
        dev = httpx.Client(base_url=base)
        detail = dev.get(f"/outbox/{name}")
        assert "135790" in detail.text and 'sandbox=""' in detail.text
        framed = dev.get(f"/outbox/{name}/html")
        assert framed.status_code == 200 and "135790" in framed.text
        assert framed.headers["content-security-policy"].startswith("sandbox;")
        dev.close()


def test_odd_headers_never_break_a_page_and_credential_headers_are_masked(
    settings_with: Callable[..., Settings], dash_client: Callable[[str], Dash]
) -> None:
    # ``Resent-To: a@[`` makes the strict header parser raise; a tenant's credential-named
    # header (it goes to every recipient, so it is masked, not hidden from the mail).
    settings = settings_with(
        courier={"smtp": {"headers": {"Resent-To": "a@[", "X-Auth-Token": "tok-0123456789"}}}
    )
    with serving(settings) as base:
        dash = dash_client(base)
        dash.sign_in()
        message = dash.enqueue(template_data={"login_code": "135790"})
        dash.wait_for(message["id"], "sent")
        pages = {
            path: dash.http.get(path)
            for path in (f"/messages/{message['id']}", f"/outbox/{message['id']}.eml", "/outbox")
        }
    for path, page in pages.items():
        assert page.status_code == 200, path
        assert "tok-0123456789" not in page.text, path
    for path in (f"/messages/{message['id']}", f"/outbox/{message['id']}.eml"):
        assert "a@[" in pages[path].text and "X-Auth-Token" in pages[path].text


def test_messages_filter_by_priority_and_show_folded_duplicates(
    settings_with: Callable[..., Settings], dash_client: Callable[[str], Dash]
) -> None:
    with serving(settings_with(), run_worker=False) as base:
        dash = dash_client(base)
        dash.sign_in()
        code = dash.enqueue()["id"]
        assert dash.enqueue()["id"] == code  # Kratos posting the same code again
        news = dash.enqueue(recipient="reader@example.org", priority="bulk")["id"]
        assert ROW.findall(dash.http.get("/messages?priority=bulk").text) == [news]
        assert ROW.findall(dash.http.get("/messages?priority=urgent").text) == [code]
        listed = dash.http.get("/messages").text
        assert "1 duplicate folded" in listed
        detail = dash.http.get(f"/messages/{code}").text
        assert re.search(r"<dt>Priority</dt><dd>urgent</dd>", detail)
        assert re.search(r"<dt>Folded duplicates</dt><dd>1 ", detail)
        assert dash.http.get("/messages?priority=asap").status_code == 400
