"""A template is refused without the value it exists to carry."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from postroom.config import Settings
from postroom.errors import ConfigError, InputError
from postroom.intake import SendRequest, prepare
from postroom.intake.validate import REQUIRED_DATA


@pytest.mark.parametrize(("template", "key"), [(t.value, k) for t, k in REQUIRED_DATA.items()])
def test_missing_or_empty_required_value_is_refused(
    make_settings: Callable[..., Settings], template: str, key: str
) -> None:
    settings = make_settings()
    for data in ({}, {key: ""}, {key: None}):
        with pytest.raises(InputError) as info:
            prepare(SendRequest(to="a@example.org", template_type=template, data=data), settings)
        assert info.value.field == "data"
        assert key in str(info.value)
    ok = prepare(
        SendRequest(to="a@example.org", template_type=template, data={key: "V4LUE"}), settings
    )
    assert "V4LUE" in ok.body


def test_smtp_strategy_without_a_uri_fails_at_load(
    make_settings: Callable[..., Settings],
) -> None:
    with pytest.raises(ValueError, match="connection_uri is not set"):
        make_settings(delivery_strategy="smtp")
    from postroom.config import load_settings

    with pytest.raises(ConfigError, match="COURIER_SMTP_CONNECTION_URI"):
        load_settings(None, environ={"COURIER_DELIVERY_STRATEGY": "smtp"})
