"""Priority lanes, per-recipient limits and folded duplicates over the real API: what Kratos
and an operator see (status codes, Retry-After, the error naming the limit, the message JSON),
and one delivery to a real SMTP server however many times Kratos re-posts."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import httpx

from postroom.config import Settings

from smtp_servers import smtp_server
from web_support import AUTH, assert_error, serving


def login(code: str, to: str = "jane@example.org", **extra: Any) -> dict[str, Any]:
    return {
        "recipient": to,
        "template_type": "login_code_valid",
        "template_data": {"login_code": code},
        **extra,
    }


ORY = {
    "recipient": "jane@example.org",
    "template_type": "login_code_valid",
    "to": "jane@example.org",
    "login_code": "864209",
    "subject": None,
    "body": None,
}


def test_priority_defaults_by_type_and_can_be_set(settings_with: Callable[..., Settings]) -> None:
    with serving(settings_with(), run_worker=False) as base, httpx.Client(base_url=base) as http:
        code = http.post("/admin/courier/messages", json=login("1"), headers=AUTH).json()
        assert code["priority"] == "urgent" and code["folded_duplicates"] == 0
        notice = {
            "recipient": "jane@example.org",
            "subject": "Your address changed",
            "body": "It did.",
        }
        assert http.post("/admin/courier/messages", json=notice, headers=AUTH).json()[
            "priority"
        ] == ("normal")
        news = http.post(
            "/admin/courier/messages", json=login("2", priority="bulk"), headers=AUTH
        ).json()
        assert news["priority"] == "bulk"
        ory = http.post("/intake/ory", json={**ORY, "priority": "normal"}, headers=AUTH).json()
        assert ory["priority"] == "normal"
        wrong = http.post("/admin/courier/messages", json=login("3", priority="high"), headers=AUTH)
        reason = assert_error(wrong, 400)["reason"]
        assert "priority" in reason and "urgent, normal or bulk" in reason
        listed = http.get("/admin/courier/messages?priority=bulk", headers=AUTH).json()
        assert [m["id"] for m in listed] == [news["id"]]


def test_the_cooldown_answers_429_with_retry_after_and_names_the_limit(
    settings_with: Callable[..., Settings],
) -> None:
    settings = settings_with(courier={"recipient_limits": {"cooldown": "30s", "per_hour": 10}})
    with serving(settings, run_worker=False) as base, httpx.Client(base_url=base) as http:
        first = http.post("/admin/courier/messages", json=login("111111"), headers=AUTH)
        assert first.status_code == 202
        again = http.post("/admin/courier/messages", json=login("222222"), headers=AUTH)
        error = assert_error(again, 429)
        assert error["limit"] == "cooldown"
        assert "courier.recipient_limits.cooldown" in error["reason"]
        assert 29 <= int(again.headers["Retry-After"]) <= 30
        assert error["retry_after"] == int(again.headers["Retry-After"])
        # Kratos re-posting the delivery that timed out is a duplicate: 202 and the same id,
        # not 429 (duplicates are folded before the limits are looked at).
        repost = http.post("/admin/courier/messages", json=login("111111"), headers=AUTH)
        assert repost.status_code == 202
        assert repost.json()["id"] == first.json()["id"]
        assert repost.json()["folded_duplicates"] == 1
        other = http.post(
            "/admin/courier/messages", json=login("3", to="joe@example.org"), headers=AUTH
        )
        assert other.status_code == 202
        # Nothing was stored for the refused one.
        rows = http.get("/admin/courier/messages?recipient=jane@example.org", headers=AUTH).json()
        assert len(rows) == 1


def test_the_eleventh_code_in_an_hour_is_refused(settings_with: Callable[..., Settings]) -> None:
    settings = settings_with(courier={"recipient_limits": {"per_hour": 10}})
    with serving(settings, run_worker=False) as base, httpx.Client(base_url=base) as http:
        for n in range(10):
            sent = http.post("/admin/courier/messages", json=login(f"{n:06d}"), headers=AUTH)
            assert sent.status_code == 202
        eleventh = http.post("/admin/courier/messages", json=login("999999"), headers=AUTH)
        error = assert_error(eleventh, 429)
        assert error["limit"] == "per_hour"
        assert "courier.recipient_limits.per_hour" in error["reason"]
        assert 3590 <= int(eleventh.headers["Retry-After"]) <= 3600
        # Case does not make another recipient; another address is unaffected.
        upper = http.post(
            "/admin/courier/messages", json=login("1", to="JANE@example.org"), headers=AUTH
        )
        assert_error(upper, 429)
        joe = http.post(
            "/admin/courier/messages", json=login("1", to="joe@example.org"), headers=AUTH
        )
        assert joe.status_code == 202
        # A test message is exempt.
        test = {"recipient": "jane@example.org", "template_type": "test"}
        assert http.post("/admin/courier/messages", json=test, headers=AUTH).status_code == 202


def test_fifty_concurrent_identical_ory_posts_make_one_message_and_one_delivery(
    settings_with: Callable[..., Settings],
) -> None:
    with smtp_server() as srv:
        uri = f"smtp://127.0.0.1:{srv.port}/?disable_starttls=true"
        settings = settings_with(courier={"smtp": {"connection_uri": uri}})
        with serving(settings) as base:

            async def race() -> list[httpx.Response]:
                async with httpx.AsyncClient(base_url=base) as http:
                    return await asyncio.gather(
                        *(http.post("/intake/ory", json=ORY, headers=AUTH) for _ in range(50))
                    )

            responses = asyncio.run(race())
            assert {r.status_code for r in responses} == {202}
            ids = {r.json()["id"] for r in responses}
            assert len(ids) == 1
            with httpx.Client(base_url=base) as http:
                url = f"/admin/courier/messages/{ids.pop()}"
                deadline = time.monotonic() + 15
                while (message := http.get(url, headers=AUTH).json())["status"] != "sent":
                    assert time.monotonic() < deadline, "not delivered"
                    time.sleep(0.05)
                rows = http.get("/admin/courier/messages", headers=AUTH).json()
    assert len(rows) == 1
    assert message["folded_duplicates"] == 49
    assert len(srv.rec.messages) == 1
