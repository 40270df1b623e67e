"""The worker against real SMTP servers: retry with backoff, give up, TTL, and what the
message record shows afterwards."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from postroom.config import Settings
from postroom.intake import SendRequest, enqueue
from postroom.models import DispatchStatus, Message, Status, WaitingFor, message_json
from postroom.store import Store
from postroom.worker import Worker

from smtp_servers import smtp_server

LOGIN = SendRequest(
    to="you@example.org", template_type="login_code_valid", data={"login_code": "123456"}
)


async def send_one(store: Store, settings: Settings) -> Message:
    [(message, _created)] = await enqueue(store, settings, [LOGIN])
    return message


async def drain(store: Store, settings: Settings, max_wait: float = 5.0) -> None:
    await Worker(store, settings).run(drain=True, max_wait=max_wait)


def cleartext(port: int) -> dict[str, Any]:
    return {"connection_uri": f"smtp://127.0.0.1:{port}/?disable_starttls=true"}


async def test_delivers_the_rendered_message(
    store: Store, make_settings: Callable[..., Settings]
) -> None:
    with smtp_server() as srv:
        settings = make_settings(smtp=cleartext(srv.port))
        message = await send_one(store, settings)
        await drain(store, settings)
    done = await store.get(message.id)
    assert done.status is Status.SENT
    assert done.send_count == 1
    assert [d.status for d in done.dispatches] == [DispatchStatus.SUCCESS]
    [accepted] = srv.rec.messages
    assert accepted.content.replace(b"\r\n", b"\n") == message.mime.replace(b"\r\n", b"\n")
    assert accepted.rcpt_tos == ["you@example.org"]
    assert accepted.mail_from == "no-reply@example.org"


async def test_451_then_success_is_sent_with_two_dispatches(
    store: Store, make_settings: Callable[..., Settings]
) -> None:
    faults = {"DATA": lambda rec, n: "451 4.3.0 Temporary failure, try again" if n == 1 else None}
    with smtp_server(faults=faults) as srv:
        settings = make_settings(smtp=cleartext(srv.port))
        message = await send_one(store, settings)
        await drain(store, settings)
    done = await store.get(message.id)
    assert done.status is Status.SENT
    assert done.send_count == 2
    assert [d.status for d in done.dispatches] == [DispatchStatus.SUCCESS, DispatchStatus.FAILED]
    first_error = done.dispatches[1].error
    assert first_error is not None and first_error.transient is True
    assert first_error.reply == "451 4.3.0 Temporary failure, try again"
    assert len(srv.rec.messages) == 1


async def test_550_is_abandoned_after_one_attempt(
    store: Store, make_settings: Callable[..., Settings]
) -> None:
    faults = {"RCPT": lambda rec, n: "550 5.1.1 <you@example.org>: user unknown"}
    with smtp_server(faults=faults) as srv:
        settings = make_settings(smtp=cleartext(srv.port))
        message = await send_one(store, settings)
        await drain(store, settings)
    done = await store.get(message.id)
    assert done.status is Status.ABANDONED
    assert done.send_count == 1
    assert done.last_error is not None and done.last_error.code == "recipient_rejected"
    data = message_json(done, expose_bodies=False)
    assert data["last_error"]["code"] == "recipient_rejected"
    assert data["dispatches"][0]["error"]["stage"] == "rcpt"
    assert data["next_attempt_at"] is None


async def test_always_421_is_abandoned_after_retries_plus_one(
    store: Store, make_settings: Callable[..., Settings]
) -> None:
    with smtp_server(greeting_reply="421 4.7.0 Try again later, closing connection") as srv:
        settings = make_settings(smtp=cleartext(srv.port), message_retries=2)
        message = await send_one(store, settings)
        await drain(store, settings)
    done = await store.get(message.id)
    assert done.status is Status.ABANDONED
    assert done.send_count == 3
    assert len(done.dispatches) == 3
    assert all(d.error is not None and d.error.transient for d in done.dispatches)


async def test_a_transient_failure_waits_for_backoff(
    store: Store, make_settings: Callable[..., Settings]
) -> None:
    with smtp_server(greeting_reply="421 4.3.2 Service not available") as srv:
        settings = make_settings(smtp=cleartext(srv.port), retry={"initial": "1h", "max": "2h"})
        message = await send_one(store, settings)
        await drain(store, settings, max_wait=0)
    waiting = await store.get(message.id)
    assert waiting.status is Status.QUEUED
    assert waiting.waiting_for is WaitingFor.BACKOFF
    assert waiting.next_attempt_at is not None
    delay = (waiting.next_attempt_at - waiting.updated_at).total_seconds()
    assert 0.8 * 3600 <= delay <= 1.2 * 3600
    data = message_json(waiting, expose_bodies=False)
    assert data["waiting_for"] == "backoff"
    assert data["next_attempt_at"] is not None
    assert data["last_error"]["code"] == "server_unavailable"


async def test_a_message_past_its_ttl_is_abandoned_as_expired(
    store: Store, make_settings: Callable[..., Settings]
) -> None:
    with smtp_server(greeting_reply="421 4.3.2 Service not available") as srv:
        settings = make_settings(
            smtp=cleartext(srv.port),
            message_retries=100,
            retry={"initial": "100ms", "max": "100ms"},
            message_ttl="1s",
        )
        message = await send_one(store, settings)
        await drain(store, settings, max_wait=5)
    done = await store.get(message.id)
    assert done.status is Status.ABANDONED
    assert done.last_error is not None and done.last_error.code == "expired"
    assert "server_unavailable" in done.last_error.cause
    assert 2 <= done.send_count < 20
    assert all(d.error and d.error.code == "server_unavailable" for d in done.dispatches)


async def test_outbox_is_the_default_without_a_provider(
    store: Store, make_settings: Callable[..., Settings], tmp_path: Any
) -> None:
    settings = make_settings()
    assert settings.courier.strategy == "outbox"
    message = await send_one(store, settings)
    await drain(store, settings)
    eml = tmp_path / "outbox" / f"{message.id}.eml"
    assert eml.read_bytes() == message.mime
    assert (await store.get(message.id)).status is Status.SENT


async def test_concurrency_delivers_a_batch_once_each(
    store: Store, make_settings: Callable[..., Settings]
) -> None:
    with smtp_server() as srv:
        settings = make_settings(smtp=cleartext(srv.port), worker={"concurrency": 4})
        requests = [
            SendRequest(
                to=f"user{n}@example.org",
                template_type="login_code_valid",
                data={"login_code": str(n)},
            )
            for n in range(40)
        ]
        await enqueue(store, settings, requests)
        await drain(store, settings)
    recipients = sorted(r for m in srv.rec.messages for r in m.rcpt_tos)
    assert recipients == sorted(f"user{n}@example.org" for n in range(40))
    assert 1 <= srv.rec.connections <= 4


async def test_an_idn_recipient_goes_on_the_envelope_in_ascii(
    store: Store, make_settings: Callable[..., Settings]
) -> None:
    with smtp_server() as srv:
        settings = make_settings(smtp=cleartext(srv.port))
        [(message, _)] = await enqueue(
            store, settings, [SendRequest(to="leser@bücher.example", template_type="test")]
        )
        await drain(store, settings)
    assert (await store.get(message.id)).status is Status.SENT
    assert srv.rec.messages[0].rcpt_tos == ["leser@xn--bcher-kva.example"]


async def test_a_status_is_written_while_other_sends_are_still_in_flight(
    store: Store, make_settings: Callable[..., Settings]
) -> None:
    # One connection; the second message's MAIL FROM never gets an answer, so no new claim
    # happens (the ready messages exceed the connections) and the writer alone must record
    # the first message as sent while the worker is still busy.
    faults = {"MAIL": lambda rec, n: "STALL" if n == 2 else None}
    with smtp_server(faults=faults) as srv:
        settings = make_settings(
            smtp=cleartext(srv.port), worker={"concurrency": 1}, dedupe_window=0
        )
        stored = await enqueue(store, settings, [LOGIN, LOGIN, LOGIN])  # three, not folded
        first = stored[0][0]
        stop = asyncio.Event()
        worker = asyncio.create_task(Worker(store, settings).run(stop, shutdown_deadline=0.2))
        try:
            for _ in range(250):  # 5 s at most
                if (await store.get(first.id)).status is Status.SENT:
                    break
                await asyncio.sleep(0.02)
            assert (await store.get(first.id)).status is Status.SENT
            assert not worker.done()
            assert len(srv.rec.messages) == 1
        finally:
            stop.set()
            await worker
    # The stalled and the unstarted messages were given back, not lost.
    statuses = sorted([(await store.get(m.id)).status.value for m, _ in stored[1:]])
    assert statuses == ["queued", "queued"]
