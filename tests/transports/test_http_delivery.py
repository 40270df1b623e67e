"""HTTP delivery end to end: enqueue, run the worker, and look at what a real local HTTP server
received and at what the message record says afterwards."""

from __future__ import annotations

import base64
import re
import time
from collections.abc import Callable
from typing import Any

import pytest

from postroom.config import Settings
from postroom.errors import HttpDeliveryError
from postroom.intake import SendRequest, enqueue
from postroom.models import DispatchStatus, Message, Status, TemplateType, WaitingFor
from postroom.store import Store
from postroom.transports import Envelope, HttpTransport, make_transport
from postroom.worker import Worker

from http_servers import DROP, HANG, http_server, reply
from kratos_bodies import ELEVEN

LOGIN = SendRequest(
    to="you@example.org", template_type="login_code_valid", data={"login_code": "123456"}
)
DATA_KEYS = sorted(ELEVEN - {"recipient", "template_type"})

SENDGRID_STYLE = """
function(ctx) {
  personalizations: [{ to: [{ email: ctx.recipient }] }],
  from: { email: "no-reply@example.org", name: "Example" },
  subject: ctx.subject,
  content: [{ type: "text/plain", value: ctx.body }]
    + (if ctx.html_body != null then [{ type: "text/html", value: ctx.html_body }] else []),
  categories: [ctx.template_type, ctx.message_type],
}
"""


def http(url: str, timeout: str = "3s", **request_config: Any) -> dict[str, Any]:
    return {
        "delivery_strategy": "http",
        "http": {"request_config": {"url": url, **request_config}, "timeout": timeout},
    }


async def send(store: Store, settings: Settings, *requests: SendRequest) -> list[Message]:
    return [m for m, _created in await enqueue(store, settings, list(requests or [LOGIN]))]


async def drain(store: Store, settings: Settings, max_wait: float = 5.0) -> None:
    await Worker(store, settings).run(drain=True, max_wait=max_wait)


def _data_for(template_type: TemplateType) -> dict[str, Any]:
    return {
        TemplateType.RECOVERY_INVALID: {},
        TemplateType.RECOVERY_VALID: {"recovery_url": "https://id.example.org/r?token=t1"},
        TemplateType.RECOVERY_CODE_INVALID: {},
        TemplateType.RECOVERY_CODE_VALID: {"recovery_code": "246810"},
        TemplateType.VERIFICATION_INVALID: {},
        TemplateType.VERIFICATION_VALID: {"verification_url": "https://id.example.org/v?t=2"},
        TemplateType.VERIFICATION_CODE_INVALID: {},
        TemplateType.VERIFICATION_CODE_VALID: {
            "verification_code": "135791",
            "verification_url": "https://id.example.org/v?code=135791",
        },
        TemplateType.LOGIN_CODE_VALID: {"login_code": "123456"},
        TemplateType.REGISTRATION_CODE_VALID: {"registration_code": "975310"},
        TemplateType.VERIFIABLE_ADDRESS_CHANGED: {},
        TemplateType.AUTHENTICATOR_KEY_ADDED: {},
    }[template_type]


IDENTITY_TYPES = [
    t for t in TemplateType if t not in {TemplateType.STUB, TemplateType.TEST, TemplateType.RELAY}
]


async def test_default_body_has_exactly_the_eleven_keys_for_every_identity_template(
    store: Store, make_settings: Callable[..., Settings]
) -> None:
    with http_server() as srv:
        settings = make_settings(**http(srv.url))
        requests = [
            SendRequest(to=f"{t.value}@example.org", template_type=t.value, data=_data_for(t))
            for t in IDENTITY_TYPES
        ]
        messages = await send(store, settings, *requests)
        await drain(store, settings)
    assert len(srv.requests) == len(IDENTITY_TYPES)
    bodies = {r.json()["template_type"]: r.json() for r in srv.requests}
    for t in IDENTITY_TYPES:
        body = bodies[t.value]
        assert set(body) == ELEVEN, t
        data = _data_for(t)
        recipient = f"{t.value}@example.org"
        expected = {key: data.get(key) for key in DATA_KEYS}
        expected |= {"to": recipient, "recipient": recipient, "template_type": t.value}
        # subject and body: the rendered email, what a receiver written for Kratos reads.
        sent = next(m for m in messages if m.recipient == recipient)
        expected |= {"subject": sent.subject, "body": sent.body}
        assert body == expected, t
    login = bodies["login_code_valid"]
    assert login["login_code"] == "123456"
    assert "123456" in login["body"] and login["subject"]
    assert all(r.header("content-type") == "application/json" for r in srv.requests)
    for message in messages:
        assert (await store.get(message.id)).status is Status.SENT


async def test_default_body_of_a_ready_message_carries_its_subject_and_body(
    store: Store, make_settings: Callable[..., Settings]
) -> None:
    with http_server() as srv:
        settings = make_settings(**http(srv.url))
        await send(store, settings, SendRequest(to="a@example.org", subject="Hi", text="Hello"))
        await drain(store, settings)
    [request] = srv.requests
    assert request.json() == {key: None for key in ELEVEN} | {
        "recipient": "a@example.org",
        "to": "a@example.org",
        "template_type": "stub",
        "subject": "Hi",
        "body": "Hello",
    }


async def test_a_sendgrid_style_body_with_an_api_key_header(
    store: Store, make_settings: Callable[..., Settings]
) -> None:
    with http_server([reply(202, X_Message_Id="sg-1")]) as srv:
        settings = make_settings(
            **http(
                srv.url,
                body=SENDGRID_STYLE,
                headers={"Content-Type": "application/json", "X-Team": "identity"},
                auth={
                    "type": "api_key",
                    "config": {
                        "name": "Authorization",
                        "value": "Bearer SG.secret",
                        "in": "header",
                    },
                },
            )
        )
        [message] = await send(store, settings)
        await drain(store, settings)
    [request] = srv.requests
    assert request.method == "POST"
    assert request.path == "/v3/mail/send"
    assert request.header("authorization") == "Bearer SG.secret"
    assert request.header("x-team") == "identity"
    body = request.json()
    assert body["personalizations"] == [{"to": [{"email": "you@example.org"}]}]
    assert body["from"] == {"email": "no-reply@example.org", "name": "Example"}
    assert body["subject"] == message.subject
    assert [part["type"] for part in body["content"]] == ["text/plain", "text/html"]
    assert "123456" in body["content"][0]["value"]
    assert body["content"][1]["value"] == message.html_body
    assert body["categories"] == ["login_code_valid", "email"]
    assert (await store.get(message.id)).status is Status.SENT


async def test_an_api_key_in_a_cookie(store: Store, make_settings: Callable[..., Settings]) -> None:
    with http_server() as srv:
        auth = {"type": "api_key", "config": {"name": "session", "value": "k3y", "in": "cookie"}}
        settings = make_settings(**http(srv.url, auth=auth))
        await send(store, settings)
        await drain(store, settings)
    [request] = srv.requests
    assert request.header("cookie") == "session=k3y"
    assert request.header("authorization") is None


async def test_basic_auth_and_a_form_encoded_body(
    store: Store, make_settings: Callable[..., Settings]
) -> None:
    body = """function(ctx) {
      from: "Example <no-reply@example.org>",
      to: ctx.recipient,
      subject: ctx.subject,
      text: ctx.body,
      html: null,
      "o:tag": ctx.template_type,
      "v:attempt": 1,
      "o:testmode": true,
    }"""
    with http_server(
        [reply(200, {"id": "<20240101.1@mg.example.org>", "message": "Queued"})]
    ) as srv:
        settings = make_settings(
            **http(
                srv.url,
                body=body,
                headers={"Content-Type": "application/x-www-form-urlencoded"},
                auth={"type": "basic_auth", "config": {"user": "api", "password": "key-p@ss:1"}},
            )
        )
        [message] = await send(store, settings)
        await drain(store, settings)
    [request] = srv.requests
    expected_auth = "Basic " + base64.b64encode(b"api:key-p@ss:1").decode()
    assert request.header("authorization") == expected_auth
    assert request.header("content-type") == "application/x-www-form-urlencoded"
    assert request.form() == {
        "from": ["Example <no-reply@example.org>"],
        "to": ["you@example.org"],
        "subject": [message.subject],
        "text": [message.body],
        "o:tag": ["login_code_valid"],
        "v:attempt": ["1"],
        "o:testmode": ["true"],
    }


async def test_503_then_202_is_sent_after_two_dispatches(
    store: Store, make_settings: Callable[..., Settings]
) -> None:
    with http_server([reply(503, "upstream busy"), reply(202)]) as srv:
        settings = make_settings(**http(srv.url))
        [message] = await send(store, settings)
        await drain(store, settings)
    done = await store.get(message.id)
    assert done.status is Status.SENT
    assert done.send_count == 2
    assert [d.status for d in done.dispatches] == [DispatchStatus.SUCCESS, DispatchStatus.FAILED]
    error = done.dispatches[1].error
    assert error is not None
    assert (error.code, error.transient, error.stage) == ("http_error", True, "request")
    assert error.reply == "503 upstream busy"
    assert len(srv.requests) == 2


async def test_429_with_retry_after_waits_at_least_that_long(
    store: Store, make_settings: Callable[..., Settings]
) -> None:
    # The backoff (10-50 ms in these settings) is far shorter than what the server asks for.
    with http_server([reply(429, "slow down", Retry_After="2"), reply(202)]) as srv:
        settings = make_settings(**http(srv.url))
        [message] = await send(store, settings)
        await drain(store, settings, max_wait=10)
    assert len(srv.requests) == 2
    waited = srv.requests[1].at - srv.answered_at[0]
    assert waited >= 1.95
    done = await store.get(message.id)
    assert done.status is Status.SENT
    first = done.dispatches[1].error
    assert first is not None and first.code == "http_error" and first.transient
    assert first.reply == "429 slow down"


async def test_429_retry_after_shows_as_the_next_attempt_time(
    store: Store, make_settings: Callable[..., Settings]
) -> None:
    with http_server([reply(429, Retry_After="120")]) as srv:
        settings = make_settings(**http(srv.url))
        [message] = await send(store, settings)
        await drain(store, settings, max_wait=0)
    waiting = await store.get(message.id)
    assert waiting.status is Status.QUEUED
    assert waiting.waiting_for is WaitingFor.BACKOFF
    assert waiting.next_attempt_at is not None
    delay = (waiting.next_attempt_at - waiting.updated_at).total_seconds()
    assert 119 <= delay <= 121
    assert len(srv.requests) == 1


async def test_400_is_abandoned_after_one_attempt_with_the_response_excerpt(
    store: Store, make_settings: Callable[..., Settings]
) -> None:
    answer = {"errors": [{"message": "The from email does not contain a valid address."}]}
    padding = {"detail": "x" * 5000}
    with http_server([reply(400, answer | padding)]) as srv:
        settings = make_settings(**http(srv.url))
        [message] = await send(store, settings)
        await drain(store, settings)
    done = await store.get(message.id)
    assert done.status is Status.ABANDONED
    assert done.send_count == 1
    assert len(srv.requests) == 1
    error = done.last_error
    assert error is not None
    assert (error.code, error.transient, error.stage) == ("http_error", False, "request")
    assert error.reply is not None
    assert error.reply.startswith("400 {")
    assert "does not contain a valid address" in error.reply
    assert len(error.reply) <= len("400 ") + 1024
    assert "request body" in error.cause


async def test_a_server_that_hangs_times_out_and_is_retried(
    store: Store, make_settings: Callable[..., Settings]
) -> None:
    with http_server([HANG]) as srv:
        settings = make_settings(
            **http(srv.url, timeout="300ms"), retry={"initial": "1h", "max": "2h"}
        )
        [message] = await send(store, settings)
        started = time.monotonic()
        await drain(store, settings, max_wait=0)
        elapsed = time.monotonic() - started
    assert elapsed < 5
    waiting = await store.get(message.id)
    assert waiting.status is Status.QUEUED
    error = waiting.last_error
    assert error is not None
    assert (error.code, error.transient, error.stage) == ("connection_timeout", True, "request")
    assert "courier.http.timeout" in error.cause


async def test_a_dropped_connection_is_retried(
    store: Store, make_settings: Callable[..., Settings]
) -> None:
    with http_server([DROP, reply(202)]) as srv:
        settings = make_settings(**http(srv.url))
        [message] = await send(store, settings)
        await drain(store, settings)
    done = await store.get(message.id)
    assert done.status is Status.SENT and done.send_count == 2
    error = done.dispatches[1].error
    assert error is not None
    assert (error.code, error.transient, error.stage) == ("server_unavailable", True, "request")


async def test_retry_after_never_outlives_the_ttl(
    store: Store, make_settings: Callable[..., Settings]
) -> None:
    with http_server([reply(503, Retry_After="3600"), reply(202)]) as srv:
        settings = make_settings(**http(srv.url), message_ttl="1s")
        [message] = await send(store, settings)
        await drain(store, settings, max_wait=5)
    assert len(srv.requests) == 1
    done = await store.get(message.id)
    assert done.status is Status.ABANDONED
    assert done.last_error is not None and done.last_error.code == "expired"
    assert "http_error" in done.last_error.cause


async def test_a_redirect_is_not_followed(
    store: Store, make_settings: Callable[..., Settings]
) -> None:
    with http_server([reply(301, Location="http://169.254.169.254/latest/meta-data/")]) as srv:
        settings = make_settings(**http(srv.url))
        [message] = await send(store, settings)
        await drain(store, settings)
    assert len(srv.requests) == 1
    done = await store.get(message.id)
    assert done.status is Status.ABANDONED
    error = done.last_error
    assert error is not None and error.code == "http_error" and not error.transient
    assert error.reply is not None and "169.254.169.254" in error.reply
    assert "redirect" in error.cause


async def test_connection_refused_is_transient(
    store: Store, make_settings: Callable[..., Settings]
) -> None:
    with http_server() as srv:
        url = srv.url
    settings = make_settings(**http(url), retry={"initial": "1h", "max": "2h"})
    [message] = await send(store, settings)
    await drain(store, settings, max_wait=0)
    error = (await store.get(message.id)).last_error
    assert error is not None
    assert (error.code, error.transient, error.stage) == ("connection_refused", True, "connect")


@pytest.mark.parametrize(
    ("body", "limit_words"),
    [
        ("function(ctx) local f(n) = f(n + 1) tailstrict; f(0)", "longer than 1s"),
        (
            'function(ctx) local s = std.repeat("0123456789", 100); '
            "[s for i in std.range(1, 1000)]",
            "of output|of memory",
        ),
    ],
    ids=["loops-forever", "a-megabyte"],
)
async def test_a_runaway_body_is_refused_and_the_worker_keeps_going(
    store: Store, make_settings: Callable[..., Settings], body: str, limit_words: str
) -> None:
    guarded = f"""function(ctx)
      if ctx.recipient == "runaway@example.org" then ({body})(ctx)
      else {{ to: ctx.recipient }}"""
    with http_server() as srv:
        settings = make_settings(**http(srv.url, body=guarded))
        runaway, fine = await send(
            store,
            settings,
            SendRequest(
                to="runaway@example.org", template_type="login_code_valid", data={"login_code": "1"}
            ),
            SendRequest(
                to="fine@example.org", template_type="login_code_valid", data={"login_code": "2"}
            ),
        )
        started = time.monotonic()
        worker = Worker(store, settings, concurrency=1)
        await worker.run(drain=True, max_wait=5)
        elapsed = time.monotonic() - started
        [after] = await send(
            store,
            settings,
            SendRequest(
                to="after@example.org", template_type="login_code_valid", data={"login_code": "3"}
            ),
        )
        await drain(store, settings)
    assert elapsed < 10
    stopped = await store.get(runaway.id)
    assert stopped.status is Status.ABANDONED
    assert stopped.send_count == 1
    error = stopped.last_error
    assert error is not None
    assert (error.code, error.transient, error.stage) == ("template_error", False, "render")
    assert re.search(limit_words, error.cause)
    assert (await store.get(fine.id)).status is Status.SENT
    assert (await store.get(after.id)).status is Status.SENT
    assert sorted(r.json()["to"] for r in srv.requests) == ["after@example.org", "fine@example.org"]


async def test_a_jsonnet_error_is_permanent_with_its_message(
    store: Store, make_settings: Callable[..., Settings]
) -> None:
    body = """function(ctx) {
  to: ctx.recipient,
  code: if "login_code" in ctx.template_data then ctx.template_data.login_code
        else error "this body only sends login codes",
}"""
    with http_server() as srv:
        settings = make_settings(**http(srv.url, body=body))
        [message] = await send(
            store, settings, SendRequest(to="a@example.org", subject="s", text="t")
        )
        await drain(store, settings)
    assert srv.requests == []
    done = await store.get(message.id)
    assert done.status is Status.ABANDONED and done.send_count == 1
    error = done.last_error
    assert error is not None and error.code == "template_error" and not error.transient
    assert "this body only sends login codes" in error.cause
    assert "line 4" in error.cause


async def test_a_tenant_without_private_targets_does_not_reach_loopback(
    store: Store, make_settings: Callable[..., Settings]
) -> None:
    from postroom.transports import make_transport

    with http_server() as srv:
        settings = make_settings(**http(srv.url.replace("127.0.0.1", "localhost")))
        [message] = await send(store, settings)
        worker = Worker(
            store,
            settings,
            transport_factory=lambda c, n: make_transport(
                c, pool_size=n, allow_private_targets=False
            ),
        )
        await worker.run(drain=True, max_wait=1)
    assert srv.requests == []
    done = await store.get(message.id)
    assert done.status is Status.ABANDONED and done.send_count == 1
    error = done.last_error
    assert error is not None
    assert (error.code, error.transient) == ("target_forbidden", False)
    assert "loopback" in error.cause and "localhost" in error.cause


async def test_a_default_body_that_cannot_be_form_encoded_is_a_template_error(
    make_settings: Callable[..., Settings],
) -> None:
    # The default payload puts the template data's values in fields; an object has no form
    # encoding, and that is the body's fault (permanent), not a bug to retry.
    settings = make_settings(
        **http(
            "https://mail.example.org/send",
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
    )
    transport = make_transport(settings.courier)
    assert isinstance(transport, HttpTransport)
    envelope = Envelope(
        message_id="m1",
        sender="no-reply@example.org",
        recipients=("you@example.org",),
        data=b"",
        recipient="you@example.org",
        subject="Your code",
        text="123456",
        template_type="recovery_code_valid",
        template_data={"recovery_code": {"x": 1}},
    )
    try:
        with pytest.raises(HttpDeliveryError) as caught:
            await transport.render(envelope)
    finally:
        await transport.close()
    assert caught.value.stage == "render"
    assert caught.value.hint == "template_error"
    assert "default body" in str(caught.value)
