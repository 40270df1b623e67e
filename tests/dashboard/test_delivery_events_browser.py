"""The dashboard tells the whole story of a message after the hand-off, in headless Chromium:
the bounce in the list and the message's timeline, the webhook the identity system got, the
overview's counts and bounce reasons, and the suppression list with search and removal."""

from __future__ import annotations

import re
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from postroom.config import Settings

from smtp_servers import smtp_server
from web_support import ADMIN, AUTH, serving

sys.path.insert(0, str(Path(__file__).parent.parent / "events"))
import provider_requests as sign
from http_servers import http_server, reply
from provider_requests import until

CHROMIUM = "/usr/bin/chromium"


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """Debian's Chromium, headless."""
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: run `make test` (it installs Debian's chromium)")
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield chromium
        chromium.close()


def test_a_bounced_message_shows_its_whole_story(browser: Browser, tmp_path: Path) -> None:
    secret, hook_secret, pid = sign.whsec(), sign.whsec(), "4FbounceQ7"
    with (
        smtp_server(data_reply=lambda _a: f"250 2.0.0 Ok: queued as {pid}") as smtp,
        http_server([reply(200, "ok")]) as receiver,
    ):
        settings = Settings.model_validate(
            {
                "dsn": f"sqlite:///{tmp_path / 'p.db'}",
                "courier": {
                    "smtp": {
                        "connection_uri": f"smtp://127.0.0.1:{smtp.port}/?disable_starttls=true",
                        "from_address": "no-reply@example.org",
                    },
                    "provider_events": {"generic": {"secret": secret}},
                    "webhooks": [{"url": receiver.base("/h"), "secret": hook_secret}],
                },
            }
        )
        with serving(settings) as base, httpx.Client(base_url=base) as http:
            created = http.post(
                "/admin/courier/messages",
                json={"recipient": "gone@example.net", "subject": "Hi", "body": "Hello"},
                headers=AUTH,
            ).json()
            url = f"/admin/courier/messages/{created['id']}"
            until(lambda: http.get(url, headers=AUTH).json()["status"] == "sent", "the send")
            event = {
                "event": "bounced",
                "recipient": "gone@example.net",
                "provider_message_id": pid,
                "reply": "550 5.1.1 <gone@example.net>: Recipient address rejected: User unknown",
            }
            body, headers = sign.generic(secret, event)
            assert http.post("/webhooks/generic/default", content=body, headers=headers).is_success
            until(lambda: len(receiver.requests) >= 2, "the sent and bounced webhooks")

            context = browser.new_context(base_url=base, viewport={"width": 1280, "height": 900})
            page: Page = context.new_page()
            page.goto("/messages")
            page.get_by_label("Admin token").fill(ADMIN)
            page.get_by_role("button", name="Sign in").click()
            row = page.locator("tr").filter(has_text="gone@example.net")
            expect(row.locator(".badge-bounced")).to_be_visible()

            row.get_by_role("link", name="gone@example.net").click()
            after = page.locator("section").filter(has_text="After the hand-off")
            expect(after.locator(".badge-bounced")).to_be_visible()
            expect(after).to_contain_text("Recipient address rejected")
            expect(after).to_contain_text("recipient_rejected")
            expect(after).to_contain_text("message.bounced")
            # message.sent and message.bounced, both taken by the identity system.
            expect(after.locator("tbody .badge-delivered")).to_have_count(2)
            expect(after.get_by_text("200 ok").first).to_be_visible()

            page.get_by_role("link", name="Overview").click()
            expect(page.locator('[data-count="bounced"]')).to_have_text("1")
            expect(page.locator(".bounce-reasons")).to_contain_text("recipient_rejected")

            page.get_by_role("link", name="Suppressions").click()
            page.get_by_label("Address contains").fill("example.net")
            page.get_by_role("button", name="Search").click()
            expect(page).to_have_url(re.compile(r"search=example.net"))
            listed = page.locator("tr").filter(has_text="gone@example.net")
            expect(listed).to_contain_text("hard bounce")
            listed.get_by_role("button", name="Remove gone@example.net").click()
            expect(page.get_by_role("status")).to_contain_text("will be mailed again")
            expect(page.locator("tr").filter(has_text="gone@example.net")).to_have_count(0)
            context.close()
            again = http.post(
                "/admin/courier/messages",
                json={"recipient": "gone@example.net", "subject": "Hi", "body": "Hello"},
                headers=AUTH,
            )
            assert again.status_code == 202
