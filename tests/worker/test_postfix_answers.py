"""What the worker makes of the answers a real Postfix 3.7 gave Postroom, replayed by an
aiosmtpd server: the refusal after a login that was offered and not used, the deliberately
temporary relay refusal, and a temporary failure that outlasts every attempt (the words must
say that the attempts ran out, on the command line and in the dashboard).

The replies are Postfix's own (smtpd_check.c: the ``reject`` restriction and
``defer_unauth_destination``; smtpd.c: the anvil rate limit).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import httpx

from postroom.config import Settings
from postroom.models import Status
from postroom.store import Store
from worker_support import deliver_one

from procs import clean_env, postroom
from smtp_servers import smtp_server
from web_support import serving

ACCESS_DENIED = "554 5.7.1 <you@example.org>: Recipient address rejected: Access denied"
RELAY_DEFERRED = "454 4.7.1 <you@example.org>: Relay access denied"
TOO_MUCH_MAIL = "450 4.7.1 Error: too much mail from 127.0.0.1"


async def test_a_refusal_after_an_unused_login_offer_is_auth_required(
    store: Store, make_settings: Callable[..., Settings]
) -> None:
    refuse_anonymous = {"RCPT": lambda rec, n: ACCESS_DENIED if not rec.logins else None}
    with smtp_server(users={"app": "pw"}, auth_required=False, faults=refuse_anonymous) as srv:
        base = f"127.0.0.1:{srv.port}/?disable_starttls=true"
        anonymous = make_settings(smtp={"connection_uri": f"smtp://{base}"})
        first = await store.get(await deliver_one(store, anonymous))
        logged_in = make_settings(smtp={"connection_uri": f"smtp://app:pw@{base}"})
        second = await store.get(await deliver_one(store, logged_in))
    assert first.status is Status.ABANDONED
    assert first.last_error is not None
    assert (first.last_error.code, first.last_error.stage) == ("auth_required", "rcpt")
    assert "did not log in" in first.last_error.cause
    assert "user:pass" in first.last_error.fix
    # Logged in, the server takes the message: the refusal was about the missing login.
    assert second.status is Status.SENT
    assert [m.rcpt_tos for m in srv.rec.messages] == [["you@example.org"]]


async def test_postfix_deferring_an_unauthorised_relay_is_retried(
    store: Store, make_settings: Callable[..., Settings]
) -> None:
    first_time_only = {"RCPT": lambda rec, n: RELAY_DEFERRED if n == 1 else None}
    with smtp_server(faults=first_time_only) as srv:
        uri = f"smtp://127.0.0.1:{srv.port}/?disable_starttls=true"
        message = await store.get(
            await deliver_one(store, make_settings(smtp={"connection_uri": uri}))
        )
    assert message.status is Status.SENT
    failed, sent = reversed(message.dispatches)
    assert failed.error is not None
    assert (failed.error.code, failed.error.transient) == ("relay_denied", True)
    assert sent.provider_message_id == srv.rec.messages[0].queue_id


def test_a_temporary_failure_that_outlasts_the_attempts_says_they_ran_out(
    tmp_path: Path, make_settings: Callable[..., Settings]
) -> None:
    always = {"MAIL": lambda rec, n: TOO_MUCH_MAIL}
    with smtp_server(faults=always) as srv:
        env = clean_env(
            DSN=f"sqlite:///{tmp_path / 'postroom.db'}",
            COURIER_SMTP_CONNECTION_URI=f"smtp://127.0.0.1:{srv.port}/?disable_starttls=true",
            COURIER_MESSAGE_RETRIES="1",
            COURIER_RETRY_INITIAL="10ms",
        )
        sent = postroom(tmp_path, "send", "--to", "you@example.org", "--template", "test", env=env)
        assert sent.returncode == 0, sent.stderr
        drained = postroom(tmp_path, "worker", "--drain", "--max-wait", "5s", env=env)
        assert drained.returncode == 0, drained.stderr
    message_id = sent.stdout.strip()
    shown = postroom(tmp_path, "messages", "show", message_id, env=env).stdout
    assert "rate_limited (transient, but the attempts ran out)" in shown
    assert "All 2 attempts failed with this temporary problem" in shown
    assert "courier.rate_limits" in shown
    assert "retries later by itself" not in shown.split("attempt 1")[0]

    settings = make_settings()
    with serving(settings, run_worker=False, dev=True) as base:
        page = httpx.get(f"{base}/messages/{message_id}").text
    why = page.split('id="diag-title"', 1)[1].split("</section>", 1)[0]
    assert "temporary, but the attempts ran out" in why
    assert "temporary: retried" not in why
    assert "All 2 attempts failed" in why
