"""A tenant's intake token from the dashboard (headless Chromium): the tenant form makes one,
shows it once with what to paste into Ory Kratos, and keeps only its hash; the token enqueues
for its tenant at once, and replacing or adding one takes effect on the next request. Refused
input says which field and why, and never shows a typed token back."""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from postroom.config import Settings
from postroom.config.secrets import hash_token

from dashboard_support import Dash
from smtp_servers import Server, smtp_server
from web_support import ADMIN, AUTH, serving

CHROMIUM = "/usr/bin/chromium"
OWN_TOKEN = "acme-kratos-own-token-0123456789"


@dataclass
class Served:
    """The served app, its SQLite file and the SMTP server every tenant delivers to."""

    base: str
    db: Path
    smtp: Server


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    tmp = tmp_path_factory.mktemp("intake-tokens")
    with smtp_server() as smtp:
        settings = Settings.model_validate(
            {
                "dsn": f"sqlite:///{tmp / 'postroom.db'}",
                "secrets": {"default": ["an-intake-token-test-secret-long-enough"]},
                "serve": {"allow_private_targets": True},
                "courier": {
                    "smtp": {
                        "connection_uri": f"smtp://{smtp.host}:{smtp.port}/?disable_starttls=true",
                        "from_address": "no-reply@example.org",
                    },
                    "intake_tokens": ["the-default-tenants-token-0123456789"],
                    "retry": {"initial": "10ms", "max": "50ms"},
                },
            }
        )
        with serving(settings) as base:
            yield Served(base, tmp / "postroom.db", smtp)


@pytest.fixture
def page(served: Served) -> Iterator[Page]:
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: run `make test` (it installs Debian's chromium)")
    with sync_playwright() as playwright:
        browser: Browser = playwright.chromium.launch(
            executable_path=CHROMIUM, args=["--headless", "--no-sandbox", "--disable-gpu"]
        )
        context = browser.new_context(base_url=served.base)
        context.set_default_timeout(10_000)
        tab = context.new_page()
        tab.goto("/sign-in?next=/tenants/new")
        tab.get_by_label("Admin token").fill(ADMIN)
        tab.get_by_role("button", name="Sign in").click()
        expect(tab.get_by_role("button", name="Sign out")).to_be_visible()
        yield tab
        browser.close()


def ory(served: Served, tenant: str, token: str, code: str) -> httpx.Response:
    """What Ory Kratos posts for ``tenant``, with ``token`` as Kratos's api_key auth sends it."""
    return httpx.post(
        f"{served.base}/intake/ory/{tenant}",
        json={
            "recipient": f"user-{code}@example.org",
            "template_type": "login_code_valid",
            "to": f"user-{code}@example.org",
            "login_code": code,
        },
        headers={"Authorization": f"Bearer {token}"},
    )


def stored_row(served: Served, tenant: str) -> str:
    """The tenant's row in the database as it is on disk."""
    with sqlite3.connect(served.db) as conn:
        row = conn.execute("SELECT courier FROM tenants WHERE id = ?", (tenant,)).fetchone()
    assert row is not None
    return str(row[0])


def save_tenant(page: Page, served: Served, name: str) -> str:
    """A new SMTP tenant through the form; the token the page shows once."""
    page.goto("/tenants/new")
    page.get_by_label("Tenant id").fill(name)
    page.get_by_label("Host").fill(served.smtp.host)
    page.get_by_label("Port").fill(str(served.smtp.port))
    page.get_by_label("Security").select_option("cleartext")
    page.get_by_label("From address").fill("no-reply@acme.example")
    expect(page.get_by_label("When saving")).to_have_value("replace")  # a new tenant gets one
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_role("status").first).to_contain_text("settings are saved")
    return page.locator("[data-intake-token]").inner_text().strip()


def test_a_new_tenant_gets_a_token_shown_once_that_sends_its_mail(
    page: Page, served: Served
) -> None:
    token = save_tenant(page, served, "acme")
    assert re.fullmatch(r"[A-Za-z0-9_-]{43}", token)
    kratos = page.locator("[data-kratos-config]")
    expect(kratos).to_contain_text(f"url: {served.base}/intake/ory/acme")
    expect(kratos).to_contain_text(f"value: Bearer {token}, in: header")

    answer = ory(served, "acme", token, "135790")
    assert answer.status_code == 202, answer.text
    with Dash(served.base) as api:
        api.wait_for(answer.json()["id"], "sent")
    assert any(m.rcpt_tos == ["user-135790@example.org"] for m in served.smtp.rec.messages)
    # For its own tenant only.
    assert ory(served, "default", token, "246801").status_code == 403

    page.goto("/tenants/acme")
    expect(page.locator("[data-intake-token]")).to_have_count(0)  # shown once only
    expect(page.locator("[data-intake-tokens]")).to_contain_text("1 stored, as hashes only")
    expect(page.get_by_label("When saving")).to_have_value("keep")
    assert token not in page.content()
    row = stored_row(served, "acme")
    assert hash_token(token) in row and token not in row
    shown = httpx.get(f"{served.base}/admin/tenants/acme", headers=AUTH).json()
    assert shown["courier"]["intake_tokens"] == ["***"]


def test_adding_and_replacing_tokens_with_clear_refusals(page: Page, served: Served) -> None:
    first = save_tenant(page, served, "rotated")

    # A token of one's own that cannot work is refused, naming the field, not shown back.
    page.get_by_label("When saving").select_option("add")
    page.get_by_label("Your own token").fill("too-short")
    page.get_by_role("button", name="Save").click()
    alert = page.get_by_role("alert")
    expect(alert).to_contain_text("intake_token: is 9 characters long")
    expect(alert).to_contain_text("16 or more")
    expect(page.get_by_label("When saving")).to_have_value("add")
    expect(page.get_by_label("Your own token")).to_have_value("")
    page.get_by_label("Your own token").fill("has spaces in the middle of it")
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_role("alert")).to_contain_text("no spaces")
    assert "has spaces in the middle" not in page.content()
    page.get_by_label("When saving").select_option("keep")
    page.get_by_label("Your own token").fill(OWN_TOKEN)
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_role("alert")).to_contain_text("choose to replace them or to add it")
    assert OWN_TOKEN not in page.content()

    # Added beside the first: both work, and the typed one is not shown back.
    page.get_by_label("When saving").select_option("add")
    page.get_by_label("Your own token").fill(OWN_TOKEN)
    page.get_by_role("button", name="Save").click()
    notice = page.locator("[data-new-intake-token]")
    expect(notice).to_contain_text("The token you typed is saved")
    expect(notice).to_contain_text("keep working beside it")
    expect(page.locator("[data-kratos-config]")).to_contain_text("Bearer <the token you typed>")
    assert OWN_TOKEN not in page.content()
    assert ory(served, "rotated", first, "100001").status_code == 202
    assert ory(served, "rotated", OWN_TOKEN, "100002").status_code == 202
    expect(page.locator("[data-intake-tokens]")).to_contain_text("2 stored")

    # Replaced by a made one: only that one works from the next request on.
    page.get_by_label("When saving").select_option("replace")
    page.get_by_role("button", name="Save").click()
    expect(page.locator("[data-new-intake-token]")).to_contain_text("no longer work")
    newest = page.locator("[data-intake-token]").inner_text().strip()
    assert ory(served, "rotated", newest, "100003").status_code == 202
    for retired in (first, OWN_TOKEN):
        assert ory(served, "rotated", retired, "100004").status_code == 401
    row = stored_row(served, "rotated")
    assert hash_token(newest) in row and hash_token(first) not in row


def test_reloading_the_page_that_shows_a_new_token_does_not_replace_it(
    page: Page, served: Served
) -> None:
    save_tenant(page, served, "reloaded")
    page.get_by_label("When saving").select_option("replace")
    page.get_by_role("button", name="Save").click()
    expect(page.locator("[data-new-intake-token]")).to_contain_text("no longer work")
    copied = page.locator("[data-intake-token]").inner_text().strip()

    # A reload (or a browser restoring the tab) shows the tenant's page; it does not post
    # the form again, which would make a third token and retire the one just copied.
    page.reload()
    expect(page).to_have_url(f"{served.base}/tenants/reloaded")
    expect(page.get_by_role("heading", name="Tenant reloaded")).to_be_visible()
    expect(page.locator("[data-intake-token]")).to_have_count(0)
    expect(page.locator("[data-intake-tokens]")).to_contain_text("1 stored")
    assert ory(served, "reloaded", copied, "100006").status_code == 202


def test_the_form_needs_its_csrf_token(served: Served) -> None:
    with Dash(served.base) as dash:
        dash.sign_in()
        csrf = dash.csrf("/tenants/new")
        made = dash.http.post(
            "/tenants/new",
            data={
                "csrf": csrf,
                "id": "forged",
                "strategy": "smtp",
                "host": served.smtp.host,
                "port": str(served.smtp.port),
                "security": "cleartext",
                "intake_action": "replace",
            },
        )
        assert made.status_code == 200, made.text
        token = re.search(r"data-intake-token>([^<]+)<", made.text)
        assert token is not None
        forged = dash.http.post(
            "/tenants/forged", data={"strategy": "smtp", "intake_action": "replace"}
        )
        assert forged.status_code == 403
        assert "Form expired" in forged.text
        # Nothing changed: the token made before still works.
        assert ory(served, "forged", token.group(1), "100005").status_code == 202


def test_a_file_tenant_says_where_its_tokens_come_from(page: Page) -> None:
    page.goto("/tenants/default")
    note = page.locator("[data-intake-tokens]")
    expect(note).to_contain_text("courier.intake_tokens")
    expect(note).to_contain_text("COURIER_INTAKE_TOKENS")
    expect(note).to_contain_text("1 configured")
    expect(page.locator("[name=intake_action]")).to_have_count(0)
