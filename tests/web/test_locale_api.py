"""Locales over HTTP: the admin API's enqueue and Ory's intake store the locale the message
was rendered in, and every message answer shows it."""

from __future__ import annotations

from collections.abc import Callable

import httpx

from postroom.config import Settings

from web_support import AUTH, assert_error, serving


def test_enqueue_and_ory_intake_carry_the_locale(settings_with: Callable[..., Settings]) -> None:
    settings = settings_with(courier={"locale": "fr", "expose_message_bodies": True})
    with serving(settings, run_worker=False) as base, httpx.Client(base_url=base) as http:
        body = {
            "recipient": "jane@example.org",
            "template_type": "login_code_valid",
            "template_data": {"login_code": "123456"},
        }
        asked = http.post("/admin/courier/messages", json={**body, "locale": "de-CH"}, headers=AUTH)
        assert asked.status_code == 202
        assert asked.json()["locale"] == "de" and asked.json()["subject"] == "Ihr Anmeldecode"
        tenant_default = http.post("/admin/courier/messages", json=body, headers=AUTH).json()
        assert tenant_default["locale"] == "fr"
        ory = {
            "recipient": "kim@example.org",
            "template_type": "verification_code_valid",
            "template_data": {
                "verification_code": "771204",
                "identity": {"traits": {"locale": "ko", "name": "Kim"}},
            },
        }
        from_kratos = http.post("/intake/ory", json=ory, headers=AUTH)
        assert from_kratos.status_code == 202, from_kratos.text
        message = http.get(
            f"/admin/courier/messages/{from_kratos.json()['id']}", headers=AUTH
        ).json()
        assert message["locale"] == "ko" and message["subject"] == "인증 코드"
        assert message["body"].startswith("Kim님, 안녕하세요.")
        listed = http.get("/admin/courier/messages", headers=AUTH).json()
        assert sorted(m["locale"] for m in listed) == ["de", "fr", "ko"]
        bad = http.post("/admin/courier/messages", json={**body, "locale": "x" * 40}, headers=AUTH)
        assert "locale" in assert_error(bad, 400)["reason"]
