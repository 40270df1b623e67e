"""The tenant's deliverability page in headless Chromium, against ``postroom serve`` whose
``dns.nameservers`` is an authoritative DNS server on loopback: each check with its status,
code and the record to publish, and the tenant's DKIM keys with their own record."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

from playwright.sync_api import expect, sync_playwright

from postroom.config import Settings
from postroom.deliverability.service import generate
from postroom.store import open_store

from dashboard_support import Dash
from dns_server import serving_zone
from smtp_servers import smtp_server
from web_support import serving

CHROMIUM = "/usr/bin/chromium"
ZONE = """
example.org. 300 IN TXT "v=spf1 include:_spf.google.com ~all"
_spf.google.com. 300 IN TXT "v=spf1 ip4:172.217.0.0/19 ~all"
_dmarc.example.org. 300 IN TXT "v=DMARC1; p=none"
"""


def make_key(settings: Settings) -> str:
    async def make() -> str:
        store = open_store(settings.dsn)
        try:
            await store.migrate()
            _, record = await generate(store, settings, "default", "postroom1", "ed25519-sha256")
            return record
        finally:
            await store.close()

    return asyncio.run(make())


def test_the_page_shows_each_check_and_the_record_to_publish(
    settings_with: Callable[..., Settings], tmp_path: Path
) -> None:
    with serving_zone(ZONE) as (nameserver, dns):
        settings = settings_with(
            dns={"nameservers": [nameserver]},
            courier={
                "smtp": {
                    "connection_uri": "smtp://apikey:SG.secret@smtp.sendgrid.net:587/",
                    "from_address": "no-reply@example.org",
                },
                "dkim": {"domain": "example.org"},
            },
        )
        record = make_key(settings)
        with serving(settings, run_worker=False) as base:
            with Dash(base) as dash:
                dash.sign_in()
                jar = dash.http.cookies.jar
                cookies = [{"name": c.name, "value": c.value or "", "url": base} for c in jar]
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(
                    executable_path=CHROMIUM, args=["--headless", "--no-sandbox"]
                )
                context = browser.new_context()
                context.add_cookies(cookies)  # type: ignore[arg-type]
                page = context.new_page()
                page.goto(f"{base}/tenants/default")
                page.get_by_role("link", name="Deliverability (SPF, DKIM, DMARC)").click()
                expect(
                    page.get_by_role("heading", name="Deliverability of example.org")
                ).to_be_visible()
                spf = page.locator('tr[data-code="spf_provider_missing"]')
                expect(spf).to_contain_text("fail")
                expect(spf).to_contain_text(
                    'TXT example.org "v=spf1 include:_spf.google.com include:sendgrid.net ~all"'
                )
                expect(page.locator('tr[data-code="dmarc_policy_none"]')).to_contain_text("warn")
                expect(page.locator('tr[data-code="mx_missing"]')).to_be_visible()
                expect(page.locator("[data-keys]")).to_contain_text("inactive")
                expect(page.locator("[data-keys]")).to_contain_text(record.split(" IN TXT ")[0])
                page.screenshot(path=str(tmp_path / "deliverability.png"), full_page=True)
                html = page.content()
                browser.close()
    assert "SG.secret" not in html
    assert ("example.org", "TXT") in dns.asked  # the page asked the configured resolver


def test_the_test_email_ends_with_the_domain_verdict(
    settings_with: Callable[..., Settings],
) -> None:
    with serving_zone(ZONE) as (nameserver, _), smtp_server() as srv:
        uri = f"smtp://127.0.0.1:{srv.port}/?disable_starttls=true"
        settings = settings_with(
            dns={"nameservers": [nameserver]},
            courier={"smtp": {"connection_uri": uri, "from_address": "no-reply@example.org"}},
        )
        with serving(settings, run_worker=False) as base, Dash(base) as dash:
            dash.sign_in()
            page = dash.submit("/tenants/default", "/tenants/default/test", {"to": "a@b.org"})
    assert page.status_code == 200
    assert len(srv.rec.messages) == 1  # the test email went out
    assert 'data-deliverability="fail"' in page.text
    assert "deliverability of example.org: failed: dkim_missing" in page.text
    assert 'href="/tenants/default/deliverability?domain=example.org"' in page.text
