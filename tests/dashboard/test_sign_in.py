"""Signing in to the dashboard over a real socket: the session cookie, CSRF on every form,
sign-out (which ends the session at once, on every server sharing the database, for any copy
of the cookie), failed sign-ins locking the form for that address, and no sign-in with
``--dev``."""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import httpx

from postroom.config import Settings
from postroom.web.dashboard import session as sessions
from postroom.web.throttle import FAILURES

from dashboard_support import Dash, dash_client_fixture  # noqa: F401 (the fixture dash_client)
from web_support import ADMIN, AUTH, assert_error, serving

PAGES = ["/", "/messages", "/tenants", "/tenants/default", "/tenants/new", "/outbox"]


def test_pages_need_a_sign_in_and_the_admin_token_opens_a_session(
    settings_with: Callable[..., Settings], dash_client: Callable[[str], Dash]
) -> None:
    with serving(settings_with(), run_worker=False) as base:
        dash = dash_client(base)
        for page in PAGES:
            answer = dash.http.get(page)
            assert answer.status_code == 303, page
            assert answer.headers["location"].startswith("/sign-in?next=")
        form = dash.http.get("/sign-in")
        assert form.status_code == 200 and 'type="password"' in form.text
        anonymous = dash.http.cookies.get(sessions.COOKIE)
        assert anonymous, "a visitor gets a session for the sign-in form's CSRF token"
        first_visit = httpx.get(f"{base}/sign-in").headers.get("set-cookie", "")
        assert first_visit.startswith(f"{sessions.COOKIE}=") and "HttpOnly" in first_visit

        wrong = dash.sign_in("not-the-token")
        assert wrong.status_code == 401 and "That is not this server" in wrong.text
        assert dash.http.get("/").status_code == 303

        ok = dash.sign_in()
        assert ok.status_code == 303 and ok.headers["location"] == "/"
        cookie = ok.headers["set-cookie"]
        assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/" in cookie
        value = dash.http.cookies[sessions.COOKIE]
        assert value != anonymous
        assert ADMIN not in cookie and ADMIN not in value
        for page in PAGES:
            answer = dash.http.get(page)
            assert answer.status_code == 200, page
            assert ADMIN not in answer.text
            assert answer.headers["x-frame-options"] == "DENY"
            assert "frame-ancestors 'none'" in answer.headers["content-security-policy"]
            assert answer.headers["server-timing"].startswith("app;dur=")

        # The cookie is not a way into the admin API: that still wants the bearer token.
        assert dash.http.get("/admin/courier/messages").status_code == 401

        out = dash.submit("/", "/sign-out")
        assert out.status_code == 303 and out.headers["location"].startswith("/sign-in")
        assert dash.http.get("/").status_code == 303


def test_forms_need_their_csrf_token_and_this_site(
    settings_with: Callable[..., Settings], dash_client: Callable[[str], Dash]
) -> None:
    with serving(settings_with(), run_worker=False) as base:
        dash = dash_client(base)
        dash.sign_in()
        message = dash.enqueue()
        path = f"/messages/{message['id']}"
        csrf = dash.csrf(path)
        refused = dash.http.post(f"{path}/cancel", data={"csrf": "forged"})
        assert refused.status_code == 403 and "Form expired" in refused.text
        foreign = dash.http.post(
            f"{path}/cancel", data={"csrf": csrf}, headers={"Sec-Fetch-Site": "cross-site"}
        )
        assert foreign.status_code == 403
        assert dash.message(message["id"])["status"] == "queued"
        # Another browser's session has another token.
        other = dash_client(base)
        other.sign_in()
        assert other.http.post(f"{path}/cancel", data={"csrf": csrf}).status_code == 403
        # The right token, from this origin, works.
        done = dash.http.post(
            f"{path}/cancel",
            data={"csrf": csrf, "confirm": "yes"},  # the confirmation page's form
            headers={"Sec-Fetch-Site": "same-origin"},
        )
        assert done.status_code == 303
        assert dash.message(message["id"])["status"] == "abandoned"
        # Signing in needs the sign-in form's token too.
        stranger = dash_client(base)
        assert stranger.http.post("/sign-in", data={"token": ADMIN}).status_code == 403


def test_a_forged_or_expired_cookie_is_no_session(
    settings_with: Callable[..., Settings], dash_client: Callable[[str], Dash]
) -> None:
    with serving(settings_with(), run_worker=False) as base:
        dash = dash_client(base)
        dash.sign_in()
        value = dash.http.cookies[sessions.COOKIE]
        payload, _, signature = value.partition(".")
        forged = sessions.Session("someone", True, int(time.time()) + 3600)
        key_guess = b"x" * 32
        for bad in (
            f"{payload}.{signature[:-2]}AA",
            sessions.encode(forged, key_guess),
            "garbage",
        ):
            intruder = dash_client(base)
            intruder.http.cookies.set(sessions.COOKIE, bad)
            assert intruder.http.get("/").status_code == 303
    key = b"k" * 32
    expired = sessions.Session("sid", True, int(time.time()) - 1)
    assert sessions.decode(sessions.encode(expired, key), key) is None
    fresh = sessions.Session("sid", True, int(time.time()) + 60)
    assert sessions.decode(sessions.encode(fresh, key), key) == fresh
    assert sessions.decode(sessions.encode(fresh, key), b"other" * 8) is None
    assert sessions.csrf_token(fresh, key) != sessions.csrf_token(
        sessions.Session("other", True, fresh.expires), key
    )


def test_a_new_admin_token_signs_everyone_out(
    settings_with: Callable[..., Settings], dash_client: Callable[[str], Dash]
) -> None:
    settings = settings_with()
    with serving(settings, run_worker=False) as base:
        dash = dash_client(base)
        dash.sign_in()
        value = dash.http.cookies[sessions.COOKIE]
    with serving(settings, run_worker=False, admin_token="another-admin-token-0123456789") as base:
        again = dash_client(base)
        again.http.cookies.set(sessions.COOKIE, value)
        assert again.http.get("/").status_code == 303


def test_sign_out_ends_the_session_for_a_copy_of_the_cookie_too(
    settings_with: Callable[..., Settings], dash_client: Callable[[str], Dash]
) -> None:
    with serving(settings_with(), run_worker=False) as base:
        dash = dash_client(base)
        dash.sign_in()
        copied = dash.http.cookies[sessions.COOKIE]  # a stolen cookie, or a shared computer
        thief = dash_client(base)
        thief.http.cookies.set(sessions.COOKIE, copied)
        assert thief.http.get("/messages").status_code == 200
        assert dash.submit("/", "/sign-out").status_code == 303
        answer = thief.http.get("/messages")
        assert answer.status_code == 303 and answer.headers["location"].startswith("/sign-in")
        # Signing in again makes a new session; the old cookie stays worthless.
        dash.sign_in()
        assert dash.http.get("/messages").status_code == 200
        assert thief.http.get("/messages").status_code == 303


def test_a_sign_out_on_one_server_ends_the_session_on_every_server(
    settings_with: Callable[..., Settings], dash_client: Callable[[str], Dash], pg_dsn: str
) -> None:
    # Two `serve` processes behind a load balancer, sharing one PostgreSQL database.
    settings = settings_with(dsn=pg_dsn)
    with serving(settings, run_worker=False) as one, serving(settings, run_worker=False) as two:
        dash = dash_client(one)
        dash.sign_in()
        cookie = dash.http.cookies[sessions.COOKIE]
        elsewhere = dash_client(two)
        elsewhere.http.cookies.set(sessions.COOKIE, cookie)
        assert elsewhere.http.get("/").status_code == 200
        assert elsewhere.submit("/", "/sign-out").status_code == 303
        assert dash.http.get("/").status_code == 303  # at once, on the other server


def test_failed_sign_ins_lock_the_form_for_that_address_only(
    settings_with: Callable[..., Settings], dash_client: Callable[[str], Dash]
) -> None:
    with serving(settings_with(), run_worker=False) as base:
        dash = dash_client(base)
        csrf = dash.csrf("/sign-in")

        def sign_in(token: str) -> httpx.Response:
            return dash.http.post("/sign-in", data={"csrf": csrf, "token": token, "next": "/"})

        with ThreadPoolExecutor(FAILURES) as pool:  # each wrong token waits for its answer
            answers = list(pool.map(sign_in, [f"guess-{n}" for n in range(FAILURES)]))
        assert [a.status_code for a in answers] == [401] * FAILURES
        locked = sign_in(ADMIN)
        assert locked.status_code == 429
        assert "Too many failed sign-ins from your address" in locked.text
        assert "minutes" in locked.text and int(locked.headers["retry-after"]) > 0
        assert dash.http.get("/").status_code == 303  # not signed in
        # The same address is locked out of the API too: one count per address.
        assert_error(dash.http.get("/admin/courier/messages", headers=AUTH), 429)
        other = Dash(base, local_address="127.0.0.2")
        try:
            assert other.sign_in().status_code == 303
            assert other.http.get("/").status_code == 200
        finally:
            other.close()


def test_dev_mode_needs_no_sign_in_but_forms_still_carry_csrf(
    settings_with: Callable[..., Settings], dash_client: Callable[[str], Dash]
) -> None:
    with serving(settings_with(), run_worker=False, dev=True, admin_token=None) as base:
        dash = dash_client(base)
        for page in PAGES:
            assert dash.http.get(page).status_code == 200, page
        assert dash.http.get("/sign-in").status_code == 303
        message = dash.enqueue()
        path = f"/messages/{message['id']}"
        assert dash.http.post(f"{path}/cancel", data={"csrf": "nope"}).status_code == 403
        assert dash.submit(path, f"{path}/cancel", {"confirm": "yes"}).status_code == 303
        assert "sign-out" not in dash.http.get("/").text
        assert dash.http.get("/admin/courier/messages", headers=AUTH).status_code == 200
