"""The dashboard in headless Chromium (Debian's ``chromium``, driven by Playwright), against
``postroom serve`` on a real socket whose worker delivers to real aiosmtpd servers.

One server for the module: a sent message, one to be abandoned (the SMTP server refuses its
recipient), one with a ``<script>`` subject, and an outbox tenant. Every page is saved as a
screenshot under the test's temporary directory; with ``POSTROOM_DOCS_SCREENSHOTS=docs`` the
overview and a message detail are also written there for the README.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, ConsoleMessage, Page, expect, sync_playwright

from postroom.config import Settings

from conftest import Pki
from dashboard_support import Dash
from smtp_servers import Server, smtp_server
from web_support import ADMIN, serving

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
REJECTION = "550 5.1.1 <bounce@example.org>: Recipient address rejected: User unknown"
SCRIPT_SUBJECT = "<script>window.__pwned = 1; alert('pwned')</script> Your code"


@dataclass
class World:
    """The served dashboard and what it holds."""

    base: str
    smtp: Server
    reject: dict[str, bool]
    sent_id: str
    abandoned_id: str
    script_id: str
    captured_id: str


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """Debian's Chromium, headless (Playwright cannot download browsers here)."""
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: run `make test` (it installs Debian's chromium)")
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory, pki: Pki) -> Iterator[World]:
    """The app with a worker, an SMTP server that can refuse recipients, and seeded messages."""
    tmp = tmp_path_factory.mktemp("dashboard")
    reject = {"on": False}
    faults = {"RCPT": lambda _rec, _n: REJECTION if reject["on"] else None}
    with smtp_server(faults=faults) as smtp:
        settings = Settings.model_validate(
            {
                "dsn": f"sqlite:///{tmp / 'postroom.db'}",
                "secrets": {"default": ["a-browser-test-secret-that-is-long-enough"]},
                "serve": {"allow_private_targets": True},
                "courier": {
                    "smtp": {
                        "connection_uri": f"smtp://{smtp.host}:{smtp.port}/?disable_starttls=true",
                        "from_address": "no-reply@example.org",
                    },
                    "expose_message_bodies": True,
                    "retry": {"initial": "10ms", "max": "50ms"},
                },
                "tenants": {
                    "catcher": {
                        "courier": {
                            "delivery_strategy": "outbox",
                            "outbox_path": str(tmp / "outbox"),
                            "expose_message_bodies": True,
                        }
                    }
                },
            }
        )
        with serving(settings) as base:
            api = Dash(base)
            sent = api.enqueue(recipient="jane@example.org", template_data={"login_code": "246810"})
            script = api.enqueue(
                recipient="mallory@example.org",
                subject=SCRIPT_SUBJECT,
                body="Plain text with <b>tags</b>",
                html_body="<p>Hello</p><script>parent.__pwned = 1</script>",
            )
            captured = api.enqueue(
                tenant="catcher",
                template_type="verification_code_valid",
                template_data={"verification_code": "975310"},
                recipient="dev@example.org",
            )
            for message in (sent, script, captured):
                api.wait_for(message["id"], "sent")
            reject["on"] = True
            bounce = api.enqueue(recipient="bounce@example.org")
            api.wait_for(bounce["id"], "abandoned")
            api.close()
            yield World(base, smtp, reject, sent["id"], bounce["id"], script["id"], captured["id"])


@pytest.fixture
def console_errors() -> list[str]:
    """Script errors and console errors of the test's pages; a test takes out those it
    expects, and anything left fails the test."""
    return []


@pytest.fixture
def page(browser: Browser, world: World, console_errors: list[str]) -> Iterator[Page]:
    """A fresh browser context (no cookies) at 1280 px."""
    context = browser.new_context(viewport={"width": 1280, "height": 900}, base_url=world.base)
    context.set_default_timeout(10_000)
    tab = context.new_page()
    dialogs: list[str] = []
    tab.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    tab.on("pageerror", lambda error: console_errors.append(str(error)))

    def console(message: ConsoleMessage) -> None:
        # A refused sign-in answers 401 on purpose; anything else logged as an error is a bug.
        if message.type == "error" and "status of 401" not in message.text:
            console_errors.append(message.text)

    tab.on("console", console)
    yield tab
    context.close()
    assert dialogs == [], "no page may open a dialog (a script ran)"
    assert console_errors == [], "no script error, no CSP violation, no failed resource"


def shoot(page: Page, tmp_path: Path, name: str, *, docs: str | None = None) -> None:
    """Save a full-page screenshot; README copies when asked to."""
    target = tmp_path / f"{name}.png"
    page.wait_for_load_state("load")
    page.evaluate("window.scrollTo(0, 0)")
    page.screenshot(path=str(target), full_page=docs is None)
    wanted = os.environ.get("POSTROOM_DOCS_SCREENSHOTS")
    if docs and wanted:
        Path(wanted).mkdir(parents=True, exist_ok=True)
        shutil.copyfile(target, Path(wanted) / docs)


def sign_in(page: Page, target: str = "/") -> None:
    """Sign in through the form."""
    page.goto(target)
    page.get_by_label("Admin token").fill(ADMIN)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("button", name="Sign out")).to_be_visible()


def assert_accessible_basics(page: Page, *, fresh: bool = True) -> None:
    """Every form control has a label; the skip link is the first stop of the keyboard on a
    freshly loaded page (``fresh``) and leads to the content."""
    unlabeled = page.evaluate(
        """() => [...document.querySelectorAll('input, select, textarea')]
            .filter(el => el.type !== 'hidden' && !el.closest('[hidden]'))
            .filter(el => !(el.labels && el.labels.length) && !el.getAttribute('aria-label'))
            .map(el => el.name)"""
    )
    assert unlabeled == []
    skip = page.locator(".skip-link")
    if fresh:
        page.keyboard.press("Tab")
        expect(skip).to_be_focused()
    else:
        skip.focus()
    expect(skip).to_be_in_viewport()
    skip.press("Enter")
    expect(page.locator("main")).to_be_focused()


def test_sign_in_and_the_overview(page: Page, world: World, tmp_path: Path) -> None:
    page.goto("/messages")
    expect(page).to_have_url(re.compile(r"/sign-in\?next=%2Fmessages$"))
    shoot(page, tmp_path, "sign-in")
    page.get_by_label("Admin token").fill("wrong-token")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert")).to_contain_text("not this server's admin token")
    page.get_by_label("Admin token").fill(ADMIN)
    page.get_by_role("button", name="Sign in").click()
    expect(page).to_have_url(re.compile(r"/messages$"))
    cookies = page.context.cookies()
    assert [c["name"] for c in cookies] == ["postroom_session"]
    assert cookies[0]["httpOnly"] and cookies[0]["sameSite"] == "Strict"
    assert ADMIN not in cookies[0]["value"] and ADMIN not in page.content()

    page.get_by_role("link", name="Overview").click()
    expect(page.get_by_role("heading", name="Overview", exact=True)).to_be_visible()
    failures = page.locator(".failure").filter(has_text="recipient_rejected")
    expect(failures).to_contain_text("1 abandoned")
    expect(failures).to_contain_text("Fix:")
    expect(page.locator(".chart .bar-sent")).to_have_count(1)
    expect(page.locator(".chart .bar-abandoned")).to_have_count(1)
    assert_accessible_basics(page)
    shoot(page, tmp_path, "overview", docs="dashboard-overview.png")

    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_role("status")).to_contain_text("You are signed out.")
    page.goto("/")
    expect(page).to_have_url(re.compile(r"/sign-in"))


def test_messages_filter_and_the_diagnosis(page: Page, world: World, tmp_path: Path) -> None:
    sign_in(page, "/messages")
    rows = page.locator("table.messages tbody tr")
    sent = rows.filter(has_text="jane@example.org")
    expect(sent.locator(".badge")).to_have_text("sent")
    bounced = rows.filter(has_text="bounce@example.org")
    expect(bounced.locator(".badge")).to_have_text("abandoned")
    expect(bounced).to_contain_text("recipient_rejected")
    assert_accessible_basics(page)
    shoot(page, tmp_path, "messages")

    page.get_by_label("Status").select_option("abandoned")
    page.get_by_role("button", name="Filter").click()
    expect(page).to_have_url(re.compile(r"status=abandoned"))
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text("bounce@example.org")
    shoot(page, tmp_path, "messages-abandoned")

    page.get_by_role("link", name="bounce@example.org").click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("bounce@example.org")
    diagnosis = page.locator(".card-alert")
    expect(diagnosis).to_contain_text("recipient_rejected")
    expect(diagnosis).to_contain_text(REJECTION.split(" ", 1)[1])
    expect(diagnosis.locator("dd.fix")).not_to_be_empty()
    expect(page.locator(".timeline .attempt")).to_have_count(1)
    expect(page.get_by_role("button", name="Retry now")).to_be_visible()
    shoot(page, tmp_path, "message-abandoned")

    # On a phone the list reads without sideways scrolling.
    page.set_viewport_size({"width": 390, "height": 844})
    page.goto("/messages")
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    shoot(page, tmp_path, "messages-phone")


def test_search_by_the_providers_id_and_the_hand_off_evidence(
    page: Page, world: World, tmp_path: Path
) -> None:
    sent = next(m for m in world.smtp.rec.messages if m.rcpt_tos == ["jane@example.org"])
    sign_in(page, "/messages")
    page.get_by_label("Provider's message id").fill(sent.queue_id)
    page.get_by_role("button", name="Filter").click()
    rows = page.locator("table.messages tbody tr")
    expect(rows).to_have_count(1)
    rows.first.get_by_role("link", name="jane@example.org").click()
    attempt = page.locator(".timeline .attempt").first
    expect(attempt).to_contain_text(f"Handed off over SMTP to 127.0.0.1:{world.smtp.port}")
    expect(attempt).to_contain_text(f"250 2.0.0 Ok: queued as {sent.queue_id}")
    expect(attempt.get_by_role("link", name=sent.queue_id)).to_be_visible()
    shoot(page, tmp_path, "message-handoff")
    page.goto("/messages?provider_id=no-such-id")
    expect(rows).to_have_text(["No messages to show."])


def test_a_script_subject_is_shown_as_text(
    page: Page, world: World, tmp_path: Path, console_errors: list[str]
) -> None:
    sign_in(page, f"/messages/{world.script_id}")
    expect(page.locator(".subject").first).to_have_text(SCRIPT_SUBJECT)
    frame = page.frame_locator("iframe.email-frame")
    expect(frame.locator("p")).to_have_text("Hello")
    assert page.evaluate("window.__pwned") is None
    # The email's own script is blocked by the sandbox, and Chromium says so.
    blocked = [e for e in console_errors if "Blocked script execution" in e and "sandboxed" in e]
    assert blocked, console_errors
    for entry in blocked:
        console_errors.remove(entry)
    page.goto("/messages")
    expect(page.locator(".subject").filter(has_text="<script>")).to_have_count(1)
    assert page.evaluate("window.__pwned") is None
    shoot(page, tmp_path, "message-script")
    page.goto(f"/messages/{world.sent_id}")
    expect(page.locator(".subject").first).to_contain_text("code")
    expect(page.frame_locator("iframe.email-frame").locator("body")).to_contain_text("246810")
    shoot(page, tmp_path, "message-sent")


def test_edit_a_tenant_with_the_preset_picker_and_send_a_test(
    page: Page, world: World, pki: Pki, tmp_path: Path
) -> None:
    with smtp_server(starttls=pki.server_context(), users={"apikey": "SG.right-key"}) as smtp:
        sign_in(page, "/tenants/new")
        page.get_by_label("Tenant id").fill("acme")
        page.get_by_label("Provider preset").select_option("sendgrid")
        expect(page.get_by_label("Host")).to_have_value("smtp.sendgrid.net")
        expect(page.get_by_label("Port")).to_have_value("587")
        expect(page.get_by_label("Username")).to_have_value("apikey")
        expect(page.get_by_label("Security")).to_have_value("starttls")
        notes = page.locator("[data-preset-notes]")
        expect(notes).to_contain_text("Twilio SendGrid")
        expect(notes).to_contain_text("the literal word apikey")
        shoot(page, tmp_path, "tenant-preset")
        # Point it at the local server (a real provider is not reachable from a test).
        page.get_by_label("Host").fill(smtp.host)
        page.get_by_label("Port").fill(str(smtp.port))
        page.get_by_label("Password", exact=True).fill("SG.wrong-key")
        page.get_by_label("From address").fill("no-reply@acme.example")
        page.get_by_role("button", name="Save").click()
        expect(page.get_by_role("status").first).to_contain_text("settings are saved")
        expect(page.get_by_label("Password", exact=True)).to_have_value("")
        assert "SG.wrong-key" not in page.content()

        page.get_by_label("Send to").fill("me@example.org")
        page.get_by_role("button", name="Send test email").click()
        transcript = page.locator(".transcript")
        expect(transcript).to_contain_text("Failed at auth")
        failed = transcript.locator(".step-failed")
        expect(failed).to_have_count(1)
        expect(failed).to_contain_text("auth")
        for stage in ("connect", "starttls", "ehlo"):
            stages = transcript.locator(".step-ok .step-stage").get_by_text(stage, exact=True)
            expect(stages.first).to_be_visible()
        expect(transcript.locator("dd.fix")).not_to_be_empty()
        expect(transcript).to_contain_text("auth_failed")
        shoot(page, tmp_path, "tenant-test-failed")

        page.get_by_label("Password", exact=True).fill("SG.right-key")
        page.get_by_role("button", name="Save").click()
        expect(page.get_by_role("status").first).to_contain_text("settings are saved")
        page.get_by_role("button", name="Send test email").click()
        expect(page.locator(".transcript")).to_contain_text("Passed")
        expect(page.locator(".transcript .step-failed")).to_have_count(0)
        for stage in ("connect", "starttls", "auth", "data"):
            stages = page.locator(".transcript .step-ok .step-stage").get_by_text(stage, exact=True)
            expect(stages.first).to_be_visible()
        assert smtp.rec.logins[-1] == ("PLAIN", "apikey", "SG.right-key")
        assert "SG.right-key" not in page.content()
        expect(page.locator(".transcript")).to_be_focused()
        assert_accessible_basics(page, fresh=False)
        shoot(page, tmp_path, "tenant-test-passed")

        # A reload shows the tenant's page again; it does not send another test email.
        tests_sent = len(smtp.rec.messages)
        page.reload()
        expect(page).to_have_url(re.compile(r"/tenants/acme(#[a-z-]+)?$"))
        expect(page.locator(".transcript")).to_have_count(0)
        assert len(smtp.rec.messages) == tests_sent

    page.get_by_role("navigation", name="Main").get_by_role("link", name="Tenants").click()
    expect(page.locator("tbody tr", has_text="acme")).to_contain_text("sendgrid")
    shoot(page, tmp_path, "tenants")


def test_retry_an_abandoned_message_until_it_is_sent(
    page: Page, world: World, tmp_path: Path
) -> None:
    sign_in(page, f"/messages/{world.abandoned_id}")
    expect(page.locator("h1 .badge")).to_have_text("abandoned")
    world.reject["on"] = False
    page.get_by_role("button", name="Retry now").click()
    expect(page.get_by_role("status").first).to_contain_text("queued again")
    # The page refreshes itself while the message waits; the worker sends it.
    expect(page.locator("h1 .badge")).to_have_text("sent", timeout=20_000)
    expect(page.locator(".timeline .attempt")).to_have_count(2)
    expect(page.locator(".timeline .attempt").first).to_contain_text("Handed off")
    page.goto(f"/messages/{world.abandoned_id}")  # without the one-time notice
    shoot(page, tmp_path, "message-retried", docs="dashboard-message.png")
    assert any(m.rcpt_tos == ["bounce@example.org"] for m in world.smtp.rec.messages)


def test_the_outbox_shows_captured_email(page: Page, world: World, tmp_path: Path) -> None:
    sign_in(page, "/outbox")
    row = page.locator("tbody tr", has_text="dev@example.org")
    expect(row).to_have_count(1)
    row.get_by_role("link").click()
    expect(page.get_by_role("heading", name="Captured email")).to_be_visible()
    expect(page.locator("pre.plaintext")).to_contain_text("975310")
    expect(page.frame_locator("iframe.email-frame").locator("body")).to_contain_text("975310")
    expect(page.get_by_role("link", name="the message in the queue")).to_have_attribute(
        "href", f"/messages/{world.captured_id}"
    )
    shoot(page, tmp_path, "outbox-email")
    response = httpx.get(f"{world.base}/outbox")
    assert response.status_code == 303  # not signed in: no mail for strangers
