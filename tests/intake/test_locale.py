"""The locale of a message: asked for on enqueue (API, CLI, bulk lines, Ory's payload), else
the tenant's courier.locale; rendered along its fallback chain and stored with the message."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from postroom.config import Settings
from postroom.errors import InputError
from postroom.intake import SendRequest, enqueue, prepare
from postroom.intake.bulk import read_bulk
from postroom.intake.ory import from_ory
from postroom.store import Store

MakeSettings = Callable[..., Settings]


def login(**extra: Any) -> SendRequest:
    return SendRequest(
        to="jane@example.org", template_type="login_code_valid", data={"login_code": "1"}, **extra
    )


@pytest.mark.parametrize(
    ("asked", "tenant_default", "rendered", "subject"),
    [
        ("de", "en", "de", "Ihr Anmeldecode"),
        ("pt-BR", "en", "pt-BR", "Seu código de login"),
        ("pt_pt", "en", "pt", "O seu código de início de sessão"),  # pt-PT -> pt
        ("fi", "fr", "fr", "Votre code de connexion"),  # no Finnish: the tenant's default
        ("fi", "en", "en", "Your sign-in code"),
        (None, "ja", "ja", "サインインコード"),
    ],
)
def test_the_message_is_rendered_and_stored_in_the_first_locale_with_strings(
    make_settings: MakeSettings, asked: str | None, tenant_default: str, rendered: str, subject: str
) -> None:
    new = prepare(login(locale=asked), make_settings(locale=tenant_default))
    assert new.locale == rendered
    assert new.subject == subject


def test_a_locale_that_is_not_a_language_tag_is_refused_naming_the_field(
    make_settings: MakeSettings,
) -> None:
    with pytest.raises(InputError) as caught:
        prepare(login(locale="german please"), make_settings())
    assert caught.value.field == "locale"
    assert "pt-BR" in str(caught.value)  # the example of what to write


def test_the_same_key_with_another_locale_is_another_request(make_settings: MakeSettings) -> None:
    settings = make_settings()
    one = prepare(login(locale="de"), settings)
    two = prepare(login(locale="fr"), settings)
    assert one.request_hash != two.request_hash


async def test_enqueue_stores_the_locale_with_the_message(
    make_settings: MakeSettings, store: Store
) -> None:
    [(message, _)] = await enqueue(store, make_settings(), [login(locale="uk")])
    assert (await store.get(message.id)).locale == "uk"
    assert message.subject == "Ваш код для входу"


def test_bulk_lines_carry_a_locale(make_settings: MakeSettings, tmp_path: Path) -> None:
    lines = [
        {"to": "a@example.org", "template": "login_code_valid", "data": {"login_code": "1"}},
        {
            "to": "b@example.org",
            "template": "login_code_valid",
            "data": {"login_code": "2"},
            "locale": "ko",
        },
        {
            "to": "c@example.org",
            "template": "login_code_valid",
            "data": {"login_code": "3"},
            "locale": "not a tag",
        },
    ]
    path = tmp_path / "bulk.jsonl"
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    read = read_bulk(path, make_settings())
    assert [new.locale for new in read.good] == ["en", "ko"]
    assert len(read.bad) == 1 and read.bad[0].startswith("line 3:") and "locale" in read.bad[0]


@pytest.mark.parametrize(
    ("payload", "locale"),
    [
        ({"locale": "es"}, "es"),
        ({"template_data": {"locale": "it"}}, "it"),
        ({"template_data": {"identity": {"traits": {"locale": "nl"}}}}, "nl"),
        ({"identity": {"traits": {"locale": "sv"}}}, "sv"),
        ({"template_data": {"traits": {"locale": "pl"}}}, "pl"),  # registration models
        ({"template_data": {"locale": "???"}}, None),  # ignored: the tenant's default applies
        ({}, None),
    ],
)
def test_ory_payloads_carry_the_locale_where_a_custom_kratos_body_puts_it(
    payload: dict[str, Any], locale: str | None
) -> None:
    body = {
        "recipient": "jane@example.org",
        "template_type": "login_code_valid",
        "login_code": "123456",
        **payload,
    }
    request = from_ory(body, tenant="default")
    assert request.locale == locale
    assert request.data["login_code"] == "123456"
    assert "template_data" not in request.data and "locale" not in request.data


def test_ory_template_data_brings_the_identity_s_name_into_the_greeting(
    make_settings: MakeSettings,
) -> None:
    body = {
        "recipient": "jane@example.org",
        "template_type": "verification_code_valid",
        "template_data": {
            "verification_code": "771204",
            "verification_url": "https://id.example.org/verify?flow=1",
            "identity": {"traits": {"name": {"first": "Jane", "last": "Doe"}, "locale": "fr"}},
        },
    }
    new = prepare(from_ory(body, tenant="default"), make_settings())
    assert new.locale == "fr"
    assert new.body.startswith("Bonjour Jane Doe,")
    assert "https://id.example.org/verify?flow=1" in new.body  # the link beside the code
