"""Template previews: the admin API (token required), and in headless Chromium the built-in
HTML at phone and desktop widths in three locales (no horizontal scrolling, the tenant's https
logo shown), the dashboard's Templates page, and "Send me this" through the SMTP test path.

With ``POSTROOM_DOCS_SCREENSHOTS=docs`` the screenshots of three locales at two widths are
written there for the README.
"""

from __future__ import annotations

import base64
import email
import hashlib
import os
import shutil
import ssl
from collections.abc import Iterator
from dataclasses import dataclass
from email.policy import default
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from playwright.sync_api import Browser, Page, expect, sync_playwright

from postroom.config import Settings
from postroom.models import TemplateType

from conftest import Pki
from http_servers import http_server, reply
from smtp_servers import Server, smtp_server
from web_support import ADMIN, AUTH, assert_error, serving

CHROMIUM = "/usr/bin/chromium"
LOGO = (
    '<svg xmlns="http://www.w3.org/2000/svg" width="120" height="32">'
    '<rect width="120" height="32" rx="6" fill="#0f766e"/>'
    '<text x="14" y="22" font-family="sans-serif" font-size="16" fill="#fff">ACME</text></svg>'
)
PHONE, DESKTOP = 375, 1280


@dataclass
class World:
    base: str
    smtp: Server
    logo_url: str


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory, pki: Pki) -> Iterator[tuple[World, str]]:
    """The app: a default tenant (German by default, branded, SMTP to aiosmtpd) and an outbox
    tenant; the logo on a local https server whose certificate Chromium is told to trust."""
    tmp = tmp_path_factory.mktemp("previews")
    cert = pki.ca.issue_cert("127.0.0.1")
    tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    cert.configure_cert(tls)
    spki = x509.load_pem_x509_certificate(cert.cert_chain_pems[0].bytes()).public_key()
    pin = base64.b64encode(
        hashlib.sha256(spki.public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)).digest()
    ).decode()
    logo_reply = reply(200, LOGO, Content_Type="image/svg+xml", Cache_Control="max-age=60")
    with smtp_server() as smtp, http_server([logo_reply], tls=tls) as logo:
        logo_url = f"https://127.0.0.1:{logo.port}/logo.svg"
        settings = Settings.model_validate(
            {
                "dsn": f"sqlite:///{tmp / 'postroom.db'}",
                "courier": {
                    "locale": "de",
                    "smtp": {
                        "connection_uri": f"smtp://{smtp.host}:{smtp.port}/?disable_starttls=true",
                        "from_address": "no-reply@example.org",
                    },
                    "branding": {
                        "product_name": "Acme Cloud",
                        "logo_url": logo_url,
                        "accent_color": "#0f766e",
                        "footer_text": "Acme Cloud GmbH, the friendly identity provider",
                        "support_email": "help@acme.example",
                        "address": "Hauptstraße 1, 10115 Berlin",
                    },
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
            yield World(base, smtp, logo_url), pin


@pytest.fixture(scope="module")
def browser(world: tuple[World, str]) -> Iterator[Browser]:
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: run `make test` (it installs Debian's chromium)")
    args = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--no-first-run",
        f"--ignore-certificate-errors-spki-list={world[1]}",
    ]
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=args)
        yield chromium
        chromium.close()


def preview_page(browser: Browser, world: World, width: int) -> Page:
    context = browser.new_context(
        viewport={"width": width, "height": 900}, base_url=world.base, extra_http_headers=AUTH
    )
    context.set_default_timeout(10_000)
    return context.new_page()


def shoot(page: Page, tmp_path: Path, name: str) -> None:
    target = tmp_path / name
    page.screenshot(path=str(target), full_page=True)
    wanted = os.environ.get("POSTROOM_DOCS_SCREENSHOTS")
    if wanted:
        Path(wanted).mkdir(parents=True, exist_ok=True)
        shutil.copyfile(target, Path(wanted) / name)


def test_previews_need_the_admin_token(world: tuple[World, str]) -> None:
    base = world[0].base
    url = f"{base}/admin/templates/preview?template_type=login_code_valid"
    assert_error(httpx.get(url), 401)
    assert_error(httpx.get(url, headers={"Authorization": "Bearer wrong-token-wrong-token"}), 401)
    assert httpx.get(url, headers=AUTH).status_code == 200


def test_the_api_previews_every_format_in_the_locale_after_fallback(
    world: tuple[World, str],
) -> None:
    base = world[0].base
    url = f"{base}/admin/templates/preview"
    html = httpx.get(url, params={"template_type": "recovery_valid"}, headers=AUTH)
    assert html.headers["content-language"] == "de"  # the tenant's courier.locale
    assert html.headers["content-type"].startswith("text/html")
    assert "img-src https:" in html.headers["content-security-policy"]
    assert "Zugang zu Ihrem Konto wiederherstellen" in html.text
    text = httpx.get(
        url,
        params={"template_type": "login_code_valid", "locale": "pt-PT", "format": "text"},
        headers=AUTH,
    )
    assert text.headers["content-language"] == "pt"
    assert text.text.startswith("Subject: Acme Cloud: O seu código de início de sessão\n")
    eml = httpx.get(
        url,
        params={"template_type": "verification_valid", "locale": "ar", "format": "eml"},
        headers=AUTH,
    )
    parsed = email.message_from_bytes(eml.content, policy=default)
    assert parsed["Subject"] == "Acme Cloud: تأكيد عنوان بريدك الإلكتروني"
    part = parsed.get_body(("html",))
    assert part is not None and '<html lang="ar" dir="rtl">' in part.get_content()
    for params, named in (
        ({"template_type": "nope"}, "unknown template type 'nope'"),
        ({"template_type": "login_code_valid", "locale": "not a tag"}, "not a language tag"),
        ({"template_type": "login_code_valid", "tenant": "ghost"}, "unknown tenant 'ghost'"),
    ):
        error = assert_error(httpx.get(url, params=params, headers=AUTH), 400)
        assert named in error["reason"]


@pytest.mark.parametrize("locale", ["de", "ar", "ja"])
@pytest.mark.parametrize("width", [PHONE, DESKTOP])
def test_the_html_fits_phones_and_desktops_with_the_logo(
    browser: Browser, world: tuple[World, str], tmp_path: Path, locale: str, width: int
) -> None:
    page = preview_page(browser, world[0], width)
    for kind in (t.value for t in TemplateType if t is not TemplateType.RELAY):
        page.goto(f"/admin/templates/preview?template_type={kind}&locale={locale}")
        overflow = page.evaluate(
            "document.documentElement.scrollWidth - document.documentElement.clientWidth"
        )
        assert overflow <= 0, f"{kind} in {locale} scrolls sideways at {width}px"
    page.goto(f"/admin/templates/preview?template_type=verification_code_valid&locale={locale}")
    logo = page.locator("img.logo")
    expect(logo).to_be_visible()
    assert page.evaluate("document.querySelector('img.logo').naturalWidth") > 0
    direction = page.evaluate("getComputedStyle(document.querySelector('.card')).direction")
    assert direction == ("rtl" if locale == "ar" else "ltr")
    shoot(page, tmp_path, f"email-{locale}-{'phone' if width == PHONE else 'desktop'}.png")
    page.context.close()


def sign_in(page: Page) -> None:
    page.goto("/templates")
    page.get_by_label("Admin token").fill(ADMIN)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name="Templates", exact=True)).to_be_visible()


def test_the_templates_page_and_send_me_this(
    browser: Browser, world: tuple[World, str], tmp_path: Path
) -> None:
    w = world[0]
    context = browser.new_context(viewport={"width": 1280, "height": 900}, base_url=w.base)
    context.set_default_timeout(10_000)
    page = context.new_page()
    sign_in(page)
    page.get_by_label("Locale", exact=True).select_option("fr")
    page.get_by_role("button", name="Show").click()
    sections = page.locator("section.preview")
    expect(sections).to_have_count(len(TemplateType) - 1)  # all but relay (no template)
    login = page.locator("section#login_code_valid")
    expect(login.locator(".pill")).to_have_text("fr")
    expect(login.locator("pre.plaintext")).to_contain_text("Saisissez ce code pour vous connecter")
    login.scroll_into_view_if_needed()
    frame = login.frame_locator("iframe")
    expect(frame.locator("h1")).to_have_text("Votre code de connexion")
    page.screenshot(path=str(tmp_path / "templates-page.png"))

    before = len(w.smtp.rec.messages)
    login.get_by_label("Send me this").fill("me@example.org")
    login.get_by_role("button", name="Send", exact=True).click()
    expect(page.get_by_role("status")).to_contain_text("to me@example.org")
    assert len(w.smtp.rec.messages) == before + 1
    sent = email.message_from_bytes(w.smtp.rec.messages[-1].content, policy=default)
    assert sent["To"] == "me@example.org"
    assert sent["Subject"] == "Acme Cloud\u00a0: Votre code de connexion"  # French spacing

    page.goto("/templates?tenant=catcher&locale=ko&template_type=registration_code_valid")
    section = page.locator("section#registration_code_valid")
    section.get_by_label("Send me this").fill("dev@example.org")
    section.get_by_role("button", name="Send", exact=True).click()
    expect(page.get_by_text("Locale")).to_be_visible()  # the message page of the enqueued one
    expect(page.locator("dd code", has_text="ko")).to_be_visible()
    context.close()
