"""The admin API and intake over a real socket: auth, paging, filters, idempotency, retry and
cancel, limits, the error shape, metrics, and Ory's payload delivered end to end."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from postroom.config import Settings

from smtp_servers import smtp_server
from web_support import AUTH, assert_error, serving, wait_for_status

UNKNOWN_ID = "0190d5c1-1f2a-7b3c-8d4e-5f6a7b8c9d0e"  # well formed, never given out

LOGIN = {
    "recipient": "jane@example.org",
    "template_type": "login_code_valid",
    "template_data": {"login_code": "246810"},
}


def test_admin_routes_need_the_admin_token(settings_with: Callable[..., Settings]) -> None:
    with serving(settings_with(), run_worker=False) as base, httpx.Client(base_url=base) as http:
        assert_error(http.get("/admin/courier/messages"), 401)
        bad = http.get("/admin/courier/messages", headers={"Authorization": "Bearer nope"})
        assert_error(bad, 401)
        assert http.get("/admin/courier/messages", headers=AUTH).status_code == 200
        assert http.get("/health/alive").status_code == 200
        assert_error(http.get("/no/such/route", headers=AUTH), 404)
        assert_error(http.delete("/admin/courier/messages", headers=AUTH), 405)


def test_dev_mode_needs_no_token_and_shows_bodies(settings_with: Callable[..., Settings]) -> None:
    with serving(settings_with(), run_worker=False, dev=True) as base:
        created = httpx.post(f"{base}/admin/courier/messages", json=LOGIN)
        assert created.status_code == 202
        assert created.json()["subject"] != "<redacted>"


def test_enqueue_and_read_back_redacted(settings_with: Callable[..., Settings]) -> None:
    with serving(settings_with(), run_worker=False) as base, httpx.Client(base_url=base) as http:
        created = http.post("/admin/courier/messages", json=LOGIN, headers=AUTH)
        assert created.status_code == 202
        message = created.json()
        assert message["status"] == "queued" and message["recipient"] == "jane@example.org"
        assert message["subject"] == "<redacted>" and message["body"] == "<redacted>"
        got = http.get(f"/admin/courier/messages/{message['id']}", headers=AUTH).json()
        assert got["id"] == message["id"] and got["dispatches"] == []
        stub = http.post(
            "/admin/courier/messages",
            json={
                "recipient": "a@example.org",
                "subject": "Hi",
                "body": "Text",
                "html_body": "<p>",
            },
            headers=AUTH,
        )
        assert stub.status_code == 202 and stub.json()["template_type"] == "stub"
        assert_error(http.get("/admin/courier/messages/nope", headers=AUTH), 400)
        assert_error(http.get(f"/admin/courier/messages/{UNKNOWN_ID}", headers=AUTH), 404)
        reason = assert_error(
            http.post("/admin/courier/messages", json={"recipient": "x"}, headers=AUTH), 400
        )["reason"]
        assert "template_type" in reason or "subject" in reason
        crlf = {"recipient": "a@example.org", "subject": "Hi\r\nBcc: b@example.org", "body": "x"}
        assert (
            "subject"
            in assert_error(http.post("/admin/courier/messages", json=crlf, headers=AUTH), 400)[
                "reason"
            ]
        )


def test_pages_cover_every_message_once(settings_with: Callable[..., Settings]) -> None:
    with serving(settings_with(), run_worker=False) as base, httpx.Client(base_url=base) as http:
        ids = []
        for n in range(23):
            body = {**LOGIN, "recipient": f"user{n}@example.org"}
            ids.append(http.post("/admin/courier/messages", json=body, headers=AUTH).json()["id"])
        seen: list[str] = []
        url: str | None = "/admin/courier/messages?page_size=5"
        pages = 0
        while url:
            response = http.get(url, headers=AUTH)
            assert response.status_code == 200
            seen += [m["id"] for m in response.json()]
            pages += 1
            url = response.links.get("next", {}).get("url")
        assert pages == 5
        assert seen == list(reversed(ids))
        assert_error(http.get("/admin/courier/messages?page_token=garbage!", headers=AUTH), 400)


def test_filters(settings_with: Callable[..., Settings]) -> None:
    settings = settings_with(tenants={"acme": {"courier": {}}})
    with serving(settings, run_worker=False) as base, httpx.Client(base_url=base) as http:
        http.post("/admin/courier/messages", json=LOGIN, headers=AUTH)
        http.post("/admin/courier/messages", json={**LOGIN, "tenant": "acme"}, headers=AUTH)
        other = {"recipient": "bob@example.org", "template_type": "test"}
        bob = http.post("/admin/courier/messages", json=other, headers=AUTH).json()
        http.post(f"/admin/courier/messages/{bob['id']}/cancel", headers=AUTH)

        def ids(query: str) -> list[str]:
            rows = http.get(f"/admin/courier/messages?{query}", headers=AUTH).json()
            return sorted(f"{m['tenant']}/{m['recipient']}/{m['status']}" for m in rows)

        assert ids("tenant=acme") == ["acme/jane@example.org/queued"]
        assert ids("recipient=bob@example.org") == ["default/bob@example.org/abandoned"]
        assert ids("status=abandoned") == ["default/bob@example.org/abandoned"]
        assert len(ids("status=queued")) == 2
        assert ids("template_type=test") == ["default/bob@example.org/abandoned"]
        assert_error(http.get("/admin/courier/messages?status=lost", headers=AUTH), 400)


def test_idempotency_under_concurrent_identical_requests(
    settings_with: Callable[..., Settings],
) -> None:
    with serving(settings_with(), run_worker=False) as base:

        async def race() -> list[httpx.Response]:
            headers = {**AUTH, "Idempotency-Key": "signup-42"}
            async with httpx.AsyncClient(base_url=base) as http:
                return await asyncio.gather(
                    *(
                        http.post("/admin/courier/messages", json=LOGIN, headers=headers)
                        for _ in range(20)
                    )
                )

        responses = asyncio.run(race())
        assert {r.status_code for r in responses} == {202}
        assert len({r.json()["id"] for r in responses}) == 1
        rows = httpx.get(
            f"{base}/admin/courier/messages?recipient=jane@example.org", headers=AUTH
        ).json()
        assert len(rows) == 1
        changed = {**LOGIN, "template_data": {"login_code": "999999"}}
        conflict = httpx.post(
            f"{base}/admin/courier/messages",
            json=changed,
            headers={**AUTH, "Idempotency-Key": "signup-42"},
        )
        assert "idempotency_key" in assert_error(conflict, 409)["reason"]


def test_intake_tokens_are_good_for_their_tenant_only(
    settings_with: Callable[..., Settings],
) -> None:
    token = "acme-intake-token-0123456789"
    settings = settings_with(tenants={"acme": {"courier": {"intake_tokens": [token]}}})
    bearer = {"Authorization": f"Bearer {token}"}
    with serving(settings, run_worker=False) as base, httpx.Client(base_url=base) as http:
        ok = http.post("/admin/courier/messages", json={**LOGIN, "tenant": "acme"}, headers=bearer)
        assert ok.status_code == 202 and ok.json()["tenant"] == "acme"
        assert_error(http.post("/admin/courier/messages", json=LOGIN, headers=bearer), 403)
        ory = {"recipient": "a@example.org", "template_type": "login_code_valid", "login_code": "1"}
        assert http.post("/intake/ory/acme", json=ory, headers=bearer).status_code == 202
        assert_error(http.post("/intake/ory", json=ory, headers=bearer), 403)
        assert_error(http.get("/admin/courier/messages", headers=bearer), 401)
        assert_error(http.get("/admin/tenants", headers=bearer), 401)
        listed = http.get("/admin/tenants/acme", headers=AUTH).json()
        assert listed["courier"]["intake_tokens"] == ["***"]
        assert token not in http.get("/admin/tenants", headers=AUTH).text


def test_retry_and_cancel(settings_with: Callable[..., Settings]) -> None:
    settings = settings_with(courier={"message_ttl": "1h", "message_retries": 2})
    with serving(settings, run_worker=False) as base, httpx.Client(base_url=base) as http:
        message = http.post("/admin/courier/messages", json=LOGIN, headers=AUTH).json()
        url = f"/admin/courier/messages/{message['id']}"
        assert "abandoned" in assert_error(http.post(f"{url}/retry", headers=AUTH), 409)["reason"]
        cancelled = http.post(f"{url}/cancel", headers=AUTH)
        assert cancelled.status_code == 200
        assert cancelled.json()["status"] == "abandoned"
        assert cancelled.json()["last_error"]["code"] == "cancelled"
        assert "queued" in assert_error(http.post(f"{url}/cancel", headers=AUTH), 409)["reason"]
        retried = http.post(f"{url}/retry", headers=AUTH).json()
        assert retried["status"] == "queued" and retried["next_attempt_at"] is not None
        assert_error(http.post(f"/admin/courier/messages/{UNKNOWN_ID}/retry", headers=AUTH), 404)
        assert_error(http.post("/admin/courier/messages/nope/retry", headers=AUTH), 400)


def test_bodies_over_one_mib_are_refused(settings_with: Callable[..., Settings]) -> None:
    with serving(settings_with(), run_worker=False) as base:
        big = {"recipient": "a@example.org", "subject": "s", "body": "x" * (1024 * 1024 + 10)}
        assert_error(httpx.post(f"{base}/admin/courier/messages", json=big, headers=AUTH), 413)

        def chunks() -> Any:
            yield b'{"recipient": "a@example.org", "subject": "s", "body": "'
            for _ in range(20):
                yield b"y" * 65536
            yield b'"}'

        streamed = httpx.post(
            f"{base}/admin/courier/messages",
            content=chunks(),
            headers={**AUTH, "Content-Type": "application/json"},
        )
        assert_error(streamed, 413)


# -- Ory end to end, and metrics ------------------------------------------------------------

# The payload Ory's documented default Jsonnet template produces for a login code.
ORY_LOGIN_CODE = {
    "recipient": "jane@example.org",
    "template_type": "login_code_valid",
    "to": "jane@example.org",
    "recovery_code": None,
    "recovery_url": None,
    "verification_url": None,
    "verification_code": None,
    "login_code": "864209",
    "registration_code": None,
    "subject": None,
    "body": None,
}


def test_ory_payload_is_delivered_end_to_end(settings_with: Callable[..., Settings]) -> None:
    with smtp_server() as srv:
        uri = f"smtp://127.0.0.1:{srv.port}/?disable_starttls=true"
        settings = settings_with(courier={"smtp": {"connection_uri": uri}})
        with serving(settings) as base, httpx.Client(base_url=base) as http:
            accepted = http.post("/intake/ory", json=ORY_LOGIN_CODE, headers=AUTH)
            assert accepted.status_code == 202
            [handoff] = wait_for_status(http, accepted.json()["id"], {"sent"})["dispatches"]
            queue_id = srv.rec.messages[0].queue_id
            assert {k: handoff[k] for k in ("transport", "host", "reply")} == {
                "transport": "smtp",
                "host": f"127.0.0.1:{srv.port}",
                "reply": f"250 2.0.0 Ok: queued as {queue_id}",
            }
            assert handoff["provider_message_id"] == queue_id
            found = http.get(
                "/admin/courier/messages", params={"provider_message_id": queue_id}, headers=AUTH
            )
            assert [m["id"] for m in found.json()] == [accepted.json()["id"]]
            assert "provider_message_id=" in found.headers["Link"]
            stub = {
                **ORY_LOGIN_CODE,
                "template_type": "some_new_type",
                "subject": "Custom",
                "body": "Your code: 55",
            }
            second = http.post("/intake/ory", json=stub, headers=AUTH)
            assert second.status_code == 202
            no_body = {**ORY_LOGIN_CODE, "template_type": "some_new_type"}
            assert (
                "subject"
                in assert_error(http.post("/intake/ory", json=no_body, headers=AUTH), 400)["reason"]
            )
            # Sent as the store has it (the metrics read the store), not only arrived.
            wait_for_status(http, second.json()["id"], {"sent"})
            metrics = http.get("/metrics").text
    assert b"864209" in srv.rec.messages[0].content
    assert b"Your code: 55" in srv.rec.messages[1].content
    assert 'postroom_messages_enqueued_total{tenant="default"} 2.0' in metrics
    assert 'result="sent"' in metrics and 'code="ok"' in metrics
    assert 'postroom_queue_messages{status="sent"} 2.0' in metrics
    assert 'postroom_enqueue_to_handoff_seconds_count{tenant="default"} 2.0' in metrics


def test_worker_metrics_port(tmp_path: Path) -> None:
    import subprocess

    from procs import POSTROOM, clean_env
    from smtp_servers import free_port

    port = free_port()
    with open(tmp_path / "worker.log", "wb") as log:
        proc = subprocess.Popen(
            [*POSTROOM, "worker", "--metrics-port", str(port)],
            cwd=tmp_path,
            env=clean_env(),
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=1).text
                if 'postroom_queue_messages{status="queued"}' in text:  # the first count is in
                    break
            except httpx.TransportError:
                pass
            assert proc.poll() is None, (tmp_path / "worker.log").read_text()
            assert time.monotonic() < deadline, "no metrics"
            time.sleep(0.1)
    finally:
        proc.terminate()
        proc.wait(timeout=20)
    # The worker's own endpoint reports its queue: an empty database, so zero queued.
    assert 'postroom_queue_messages{status="queued"} 0.0' in text


@pytest.mark.parametrize("path", ["/admin/tenants", "/admin/courier/messages"])
def test_errors_are_json_never_html(settings_with: Callable[..., Settings], path: str) -> None:
    with serving(settings_with(), run_worker=False) as base:
        response = httpx.post(f"{base}{path}/x/y/z", content=b"{not json", headers=AUTH)
        assert response.status_code in {404, 405}
        assert response.json()["error"]["code"] == response.status_code
