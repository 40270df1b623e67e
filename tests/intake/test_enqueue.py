"""Intake: prepare (validate + render) and enqueue into a real SQLite store."""

from __future__ import annotations

import email
from collections.abc import Callable
from datetime import timedelta
from email.policy import default
from pathlib import Path
from typing import Any

import pytest

from postroom.config import Settings
from postroom.errors import DuplicateRequestError, InputError
from postroom.intake import SendRequest, enqueue, prepare
from postroom.intake.validate import MAX_BODY, MAX_SUBJECT
from postroom.models import Status, TemplateType
from postroom.store import MessageFilter, Store

MakeSettings = Callable[..., Settings]


def login(to: str = "jane@example.org", code: str = "123456", **extra: Any) -> SendRequest:
    return SendRequest(to=to, template_type="login_code_valid", data={"login_code": code}, **extra)


async def count(store: Store) -> int:
    return len(await store.list_messages(MessageFilter(limit=1000)))


# -- prepare ---------------------------------------------------------------------------


def test_prepare_renders_the_message_that_will_be_sent(make_settings: MakeSettings) -> None:
    new = prepare(login(), make_settings(smtp={"from_name": "Example"}))
    assert new.template_type is TemplateType.LOGIN_CODE_VALID
    assert new.recipient == "jane@example.org"
    assert "123456" in new.body
    assert new.html_body is not None and "123456" in new.html_body
    parsed = email.message_from_bytes(new.mime, policy=default)
    assert parsed["To"] == "jane@example.org"
    assert parsed["Subject"] == new.subject
    assert parsed["From"].addresses[0].display_name == "Example"
    plain = parsed.get_body(("plain",))
    assert plain is not None and "123456" in plain.get_content()


def test_prepare_puts_the_recipient_into_template_data(make_settings: MakeSettings) -> None:
    new = prepare(login(to="  jane@example.org "), make_settings())
    assert new.template_data["to"] == "jane@example.org"
    assert new.template_data["login_code"] == "123456"


def test_callers_to_in_data_cannot_change_the_recipient(make_settings: MakeSettings) -> None:
    request = SendRequest(
        to="jane@example.org",
        template_type="login_code_valid",
        data={"login_code": "1", "to": "mallory@evil.test"},
    )
    new = prepare(request, make_settings())
    assert new.template_data["to"] == "jane@example.org"
    assert "mallory" not in new.body


def test_stub_takes_subject_text_and_html(make_settings: MakeSettings) -> None:
    new = prepare(
        SendRequest(to="jane@example.org", subject="Hello", text="Body", html="<p>Body</p>"),
        make_settings(),
    )
    assert new.template_type is TemplateType.STUB
    assert new.subject == "Hello"
    assert new.body.strip() == "Body"
    assert new.html_body == "<p>Body</p>"
    assert new.template_data["to"] == "jane@example.org"


@pytest.mark.parametrize(
    "request_",
    [
        SendRequest(to="jane@example.org"),
        SendRequest(to="jane@example.org", subject="Only a subject"),
        SendRequest(to="jane@example.org", text="Only a text"),
        SendRequest(to="jane@example.org", template_type="stub", subject="S"),
    ],
)
def test_stub_needs_subject_and_text(make_settings: MakeSettings, request_: SendRequest) -> None:
    with pytest.raises(InputError) as info:
        prepare(request_, make_settings())
    assert info.value.field == "template"
    assert "subject" in str(info.value) and "text" in str(info.value)


def test_template_and_subject_together_are_refused(make_settings: MakeSettings) -> None:
    with pytest.raises(InputError, match="not both"):
        prepare(login(subject="Mine"), make_settings())


def test_unknown_template_type_lists_the_known_ones(make_settings: MakeSettings) -> None:
    with pytest.raises(InputError) as info:
        prepare(SendRequest(to="jane@example.org", template_type="login_code"), make_settings())
    assert info.value.field == "template"
    assert "login_code_valid" in str(info.value) and "recovery_code_valid" in str(info.value)


@pytest.mark.parametrize(
    ("request_", "field"),
    [
        (login(to="Jane <jane@example.org>"), "to"),
        (login(to="jane@example.org\r\nBcc: x@evil.test"), "to"),
        (SendRequest(to="jane@example.org", subject="Hi\r\nBcc: x@evil.test", text="t"), "subject"),
        (SendRequest(to="jane@example.org", subject="Hi\nthere", text="t"), "subject"),
        (login(idempotency_key="k\r\n1"), "idempotency_key"),
        (login(tenant="acme"), "tenant"),
        (
            SendRequest(to="jane@example.org", template_type="login_code_valid", data=[1]),  # type: ignore[arg-type]
            "data",
        ),
    ],
)
def test_bad_input_names_the_field(
    make_settings: MakeSettings, request_: SendRequest, field: str
) -> None:
    with pytest.raises(InputError) as info:
        prepare(request_, make_settings())
    assert info.value.field == field


def test_oversized_subject_is_refused_with_the_limit(make_settings: MakeSettings) -> None:
    request = SendRequest(to="jane@example.org", subject="s" * (MAX_SUBJECT + 1), text="t")
    with pytest.raises(InputError) as info:
        prepare(request, make_settings())
    assert info.value.field == "subject"
    assert str(MAX_SUBJECT) in str(info.value)


def test_oversized_body_is_refused_with_the_limit(make_settings: MakeSettings) -> None:
    request = SendRequest(to="jane@example.org", subject="s", text="t" * (MAX_BODY + 1))
    with pytest.raises(InputError) as info:
        prepare(request, make_settings())
    assert info.value.field == "text"
    assert str(MAX_BODY) in str(info.value)


def test_oversized_data_is_refused(make_settings: MakeSettings) -> None:
    request = login()
    big = SendRequest(
        to=request.to, template_type=request.template_type, data={"blob": "x" * 70_000}
    )
    with pytest.raises(InputError, match="KiB") as info:
        prepare(big, make_settings())
    assert info.value.field == "data"


def test_a_broken_override_is_refused_at_intake(
    make_settings: MakeSettings, tmp_path: Path
) -> None:
    overrides = tmp_path / "templates"
    (overrides / "login_code_valid").mkdir(parents=True)
    (overrides / "login_code_valid" / "email.subject.j2").write_text("{{ login_code }")
    with pytest.raises(InputError) as info:
        prepare(login(), make_settings(template_override_path=str(overrides)))
    assert info.value.field == "template"
    assert "email.subject.j2" in str(info.value)


def test_override_output_is_what_gets_stored(make_settings: MakeSettings, tmp_path: Path) -> None:
    overrides = tmp_path / "templates"
    (overrides / "login_code_valid").mkdir(parents=True)
    (overrides / "login_code_valid" / "email.subject.j2").write_text("Acme code {{ login_code }}")
    new = prepare(login(), make_settings(template_override_path=str(overrides)))
    assert new.subject == "Acme code 123456"
    assert email.message_from_bytes(new.mime, policy=default)["Subject"] == "Acme code 123456"


def test_configured_headers_and_reply_to_reach_the_mime(make_settings: MakeSettings) -> None:
    settings = make_settings(
        smtp={"reply_to": "support@example.org", "headers": {"X-Campaign": "login"}}
    )
    parsed = email.message_from_bytes(prepare(login(), settings).mime, policy=default)
    assert parsed["Reply-To"] == "support@example.org"
    assert parsed["X-Campaign"] == "login"


def test_from_mapping_refuses_unknown_keys() -> None:
    with pytest.raises(InputError) as info:
        SendRequest.from_mapping({"to": "jane@example.org", "recipient": "x"})
    assert info.value.field == "recipient"
    assert "allowed" in str(info.value)


def test_from_mapping_reads_the_bulk_keys() -> None:
    request = SendRequest.from_mapping(
        {
            "to": "jane@example.org",
            "template": "login_code_valid",
            "data": {"login_code": "1"},
            "tenant": "acme",
            "idempotency_key": "k1",
        }
    )
    assert request.template_type == "login_code_valid"
    assert request.data == {"login_code": "1"}
    assert (request.tenant, request.idempotency_key) == ("acme", "k1")


# -- enqueue ---------------------------------------------------------------------------


async def test_enqueue_stores_a_queued_message(store: Store, make_settings: MakeSettings) -> None:
    settings = make_settings(message_retries=2, message_ttl="10m")
    [(message, created)] = await enqueue(store, settings, [login()])
    assert created
    stored = await store.get(message.id)
    assert stored.status is Status.QUEUED
    assert stored.recipient == "jane@example.org"
    assert stored.max_attempts == 3
    assert stored.expires_at is not None
    assert stored.expires_at - stored.created_at == timedelta(minutes=10)
    plain = email.message_from_bytes(stored.mime, policy=default).get_body(("plain",))
    assert plain is not None and "123456" in plain.get_content()


async def test_same_idempotency_key_returns_the_same_message(
    store: Store, make_settings: MakeSettings
) -> None:
    settings = make_settings()
    [(first, created_first)] = await enqueue(store, settings, [login(idempotency_key="k-1")])
    [(again, created_again)] = await enqueue(store, settings, [login(idempotency_key="k-1")])
    assert created_first and not created_again
    assert again.id == first.id
    assert await count(store) == 1


async def test_same_key_with_a_different_body_is_refused(
    store: Store, make_settings: MakeSettings
) -> None:
    settings = make_settings()
    await enqueue(store, settings, [login(code="111111", idempotency_key="k-1")])
    with pytest.raises(DuplicateRequestError) as info:
        await enqueue(store, settings, [login(code="222222", idempotency_key="k-1")])
    assert info.value.field == "idempotency_key"
    assert await count(store) == 1


async def test_same_key_twice_in_one_batch_stores_one_message(
    store: Store, make_settings: MakeSettings
) -> None:
    results = await enqueue(
        store, make_settings(), [login(idempotency_key="k-2"), login(idempotency_key="k-2")]
    )
    assert results[0][0].id == results[1][0].id
    assert [created for _, created in results] == [True, False]
    assert await count(store) == 1


async def test_same_key_with_different_bodies_in_one_batch_stores_nothing(
    store: Store, make_settings: MakeSettings
) -> None:
    batch = [
        login(to="other@example.org"),
        login(code="1", idempotency_key="k-3"),
        login(code="2", idempotency_key="k-3"),
    ]
    with pytest.raises(DuplicateRequestError):
        await enqueue(store, make_settings(), batch)
    assert await count(store) == 0


async def test_idempotency_keys_are_scoped_to_the_tenant(store: Store, tmp_path: Path) -> None:
    settings = Settings.model_validate(
        {
            "dsn": f"sqlite:///{tmp_path / 'postroom.db'}",
            "courier": {"outbox_path": str(tmp_path / "outbox")},
            "tenants": {"acme": {"courier": {"outbox_path": str(tmp_path / "acme")}}},
        }
    )
    results = await enqueue(
        store,
        settings,
        [login(idempotency_key="same"), login(idempotency_key="same", tenant="acme")],
    )
    assert results[0][0].id != results[1][0].id
    assert {m.tenant for m, _ in results} == {"default", "acme"}
    assert await count(store) == 2


async def test_one_invalid_request_stores_nothing(
    store: Store, make_settings: MakeSettings
) -> None:
    with pytest.raises(InputError):
        await enqueue(store, make_settings(), [login(), login(to="not-an-address")])
    assert await count(store) == 0


async def test_without_a_key_and_without_folding_every_request_is_a_new_message(
    store: Store, make_settings: MakeSettings
) -> None:
    results = await enqueue(store, make_settings(dedupe_window=0), [login(), login()])
    assert results[0][0].id != results[1][0].id
    assert await count(store) == 2


async def test_a_batch_refused_for_one_tenants_key_leaves_nothing_on_any_store(
    any_store: Store, tmp_path: Path
) -> None:
    settings = Settings.model_validate(
        {
            "dsn": f"sqlite:///{tmp_path / 'postroom.db'}",
            "courier": {
                "outbox_path": str(tmp_path / "outbox"),
                "message_retries": 2,
                "message_ttl": 0,
            },
            "tenants": {
                "acme": {
                    "courier": {
                        "outbox_path": str(tmp_path / "acme"),
                        "message_retries": 7,
                        "message_ttl": "1h",
                    }
                }
            },
        }
    )
    await enqueue(any_store, settings, [login(code="111111", idempotency_key="k", tenant="acme")])
    batch = [
        login(to="first@example.org"),
        login(to="second@example.org", tenant="acme"),
        login(code="222222", idempotency_key="k", tenant="acme"),  # the key, another message
    ]
    with pytest.raises(DuplicateRequestError):
        await enqueue(any_store, settings, batch)
    assert await count(any_store) == 1  # the default tenant's message was not left behind
    # Without the conflict, one call stores both tenants' messages with their own budgets.
    stored = await enqueue(any_store, settings, batch[:2])
    by_tenant = {m.tenant: m for m, created in stored if created}
    assert by_tenant["default"].max_attempts == 3 and by_tenant["default"].expires_at is None
    assert by_tenant["acme"].max_attempts == 8 and by_tenant["acme"].expires_at is not None
    assert await count(any_store) == 3
