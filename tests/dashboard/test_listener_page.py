"""The SMTP listener in the dashboard (headless Chromium): the tenant page shows what to type
into Keycloak's Email tab, makes a login whose password works at once and is shown once,
deletes it, and the refusal log shows why a client was turned away."""

from __future__ import annotations

import smtplib
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from postroom.config import Settings

from conftest import Pki
from listener_support import client_tls, listening, mail, submit, wait_until
from smtp_servers import smtp_server
from web_support import ADMIN, AUTH

CHROMIUM = "/usr/bin/chromium"


@pytest.fixture
def page() -> Iterator[Page]:
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: run `make test` (it installs Debian's chromium)")
    with sync_playwright() as playwright:
        browser: Browser = playwright.chromium.launch(
            executable_path=CHROMIUM, args=["--headless", "--no-sandbox", "--disable-gpu"]
        )
        tab = browser.new_page()
        yield tab
        browser.close()


def sign_in(page: Page, base: str, target: str) -> None:
    page.goto(f"{base}/sign-in?next={target}")
    page.get_by_label("Admin token").fill(ADMIN)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("button", name="Sign out")).to_be_visible()


def test_tenant_page_makes_shows_once_and_deletes_logins(
    make: Callable[..., Settings], pki: Pki, page: Page
) -> None:
    with smtp_server() as sink:
        settings = make(smtp={"public_host": "mail.example.org"})
        settings = settings.model_copy(
            update={"serve": settings.serve.model_copy(update={"allow_private_targets": True})}
        )
        with listening(settings) as run:
            uri = f"smtp://127.0.0.1:{sink.port}/?disable_starttls=true"
            saved = httpx.put(
                f"{run.url}/admin/tenants/acme",
                headers=AUTH,
                json={"smtp": {"connection_uri": uri, "from_address": "id@acme.example"}},
            )
            assert saved.status_code == 200, saved.text
            sign_in(page, run.url, "/tenants/acme")
            section = page.locator("#smtp-listener")
            settings_list = section.locator("[data-keycloak-settings]")
            expect(settings_list).to_contain_text("mail.example.org")
            expect(settings_list).to_contain_text(str(run.port))
            expect(settings_list).to_contain_text("Enable StartTLS")

            section.get_by_label("Username").fill("kc-acme")
            section.get_by_role("button", name="Make a login").click()
            password = page.locator("[data-password]").inner_text().strip()
            assert len(password) >= 43
            expect(page.locator("[data-yaml]")).to_have_count(0)  # saved, nothing to paste
            submit(
                run.port,
                mail(),
                to=("acme@example.org",),
                login=("kc-acme", password),
                context=client_tls(pki),
            )
            wait_until(lambda: sink.rec.messages, what="delivery with the new login")

            # A reload shows the tenant's page (shown once only); it does not post the form
            # again, which would answer with a refusal or make a second login.
            page.reload()
            expect(page).to_have_url(f"{run.url}/tenants/acme#smtp-listener")
            expect(page.locator("[data-password]")).to_have_count(0)
            expect(page.locator("#smtp-listener").get_by_role("row")).to_have_count(2)
            page.get_by_role("button", name="Delete login kc-acme").click()
            expect(page.locator("#smtp-listener")).to_contain_text("No logins yet.")
            with pytest.raises(smtplib.SMTPAuthenticationError):
                submit(run.port, mail(), login=("kc-acme", password), context=client_tls(pki))

            wait_until(
                lambda: (
                    "535 5.7.8"
                    in httpx.get(f"{run.url}/admin/listener/refusals", headers=AUTH).text
                ),
                what="the refusal",
            )
            page.goto(f"{run.url}/listener")
            row = page.get_by_role("row").filter(has_text="535 5.7.8")
            expect(row.first).to_contain_text("127.0.0.1")
            expect(row.first).to_contain_text("kc-acme")


def test_a_file_tenant_gets_the_lines_to_paste(make: Callable[..., Settings], page: Page) -> None:
    with listening(make()) as run:
        sign_in(page, run.url, "/tenants/default")
        section = page.locator("#smtp-listener")
        expect(section.get_by_role("row").filter(has_text="keycloak")).to_contain_text(
            "configuration file"
        )
        section.get_by_label("Username").fill("authelia")
        section.get_by_role("button", name="Make a login").click()
        pasted = page.locator("[data-yaml]").inner_text()
        assert "username: authelia" in pasted and "password: sha256$" in pasted
        password = page.locator("[data-password]").inner_text().strip()
        assert password not in pasted
