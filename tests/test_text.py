"""The text rules shared by intake, MIME, settings and the CLI (``postroom.text``)."""

from __future__ import annotations

import json
import typing
import unicodedata

import pytest
from pydantic import BaseModel

from postroom.config.durations import parse_duration
from postroom.config.settings import CourierSettings
from postroom.errors import InputError
from postroom.text import (
    HEADER_BREAKS,
    check_data,
    data_problem,
    header_line_problem,
    json_terminal_safe,
    terminal_safe,
)

EVERY_CHARACTER = "".join(map(chr, range(0x110000)))
# What a terminal may act on: controls, format characters (bidi overrides), line and paragraph
# separators, surrogates, private use and unassigned code points.
ACTED_ON = {"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"}


def test_the_header_breaks_are_what_splitlines_splits_on_and_nul() -> None:
    splits = {c for c in EVERY_CHARACTER if len(f"a{c}b".splitlines()) > 1}
    assert splits | {"\x00"} == HEADER_BREAKS
    for char in HEADER_BREAKS:
        assert header_line_problem(f"Hello{char}Bcc: x@evil.test") is not None
    assert header_line_problem("Hello \t Welt, café ✓") is None
    assert "lone surrogate" in str(header_line_problem("Hi \ud800"))


def test_terminal_safe_leaves_nothing_a_terminal_acts_on() -> None:
    shown = terminal_safe(EVERY_CHARACTER)
    assert {unicodedata.category(c) for c in shown} & ACTED_ON == set()
    assert terminal_safe("\x1b]0;t\x07 [/]") == "\\x1b]0;t\\x07 [/]"
    assert terminal_safe("a\nb") == "a\\nb"
    assert terminal_safe("a\nb", keep_newlines=True) == "a\nb"
    assert terminal_safe("Grüße ✓ 日本") == "Grüße ✓ 日本"


def test_json_for_a_terminal_is_the_same_json() -> None:
    value = {"reply": EVERY_CHARACTER[:0x3000] + "\U000e0001\ud800", "n": [1, 2.5, None]}
    text = json_terminal_safe(json.dumps(value, indent=2, ensure_ascii=False))
    assert json.loads(text) == value
    assert {unicodedata.category(c) for c in text.replace("\n", "")} & ACTED_ON == set()


@pytest.mark.parametrize(
    ("value", "path", "problem"),
    [
        ({"a": [1, {"b": float("nan")}]}, "a.1.b", "NaN"),
        ({"a": float("-inf")}, "a", "-Infinity"),
        ({"k\ud800": 1}, "k\\ud800", "the key contains a lone surrogate"),
        ({"k": "v\x00"}, "k", "NUL"),
        ("x\udfff", "", "lone surrogate"),
    ],
)
def test_data_problems_name_their_path(value: object, path: str, problem: str) -> None:
    found = data_problem(value)
    assert found is not None
    assert found[0] == path and problem in found[1]
    with pytest.raises(InputError) as info:
        check_data(value, field="data")
    assert info.value.field == ("data." + path if path else "data")


def test_nesting_past_the_limit_is_refused_with_a_short_path() -> None:
    deep: object = "leaf"
    for _ in range(100):
        deep = [deep]
    found = data_problem({"x": deep})
    assert found is not None and "nested more than 64" in found[1]
    assert found[0] == "x.0.0.0.0.0.0.0.(...)"
    assert data_problem({"fine": [[["ok", 1, 2.5, None, True]]]}) is None


def _durations(model: type[BaseModel], prefix: str = "") -> dict[str, list[object]]:
    """Every duration field of ``model`` and the models in it, with its validators."""
    found: dict[str, list[object]] = {}
    for name, info in model.model_fields.items():
        args = typing.get_args(info.annotation) or (info.annotation,)
        for arg in args:
            inner = typing.get_args(arg)[0] if typing.get_origin(arg) is list else arg
            if isinstance(inner, type) and issubclass(inner, BaseModel):
                found.update(_durations(inner, f"{prefix}{name}."))
        validators = [getattr(m, "func", None) for m in info.metadata]
        if parse_duration in validators:
            found[prefix + name] = validators
    return found


def test_every_duration_setting_has_an_upper_bound() -> None:
    durations = _durations(CourierSettings)
    assert "message_ttl" in durations and "rate_limits.per" in durations
    assert "http.timeout" in durations
    for name, validators in durations.items():
        # parse_duration, then at least one AfterValidator: the bound (and perhaps > 0).
        assert len(validators) >= 2, f"{name} has no upper bound"
        try:
            CourierSettings.model_validate(_setting(name, "99999999999d"))
        except ValueError as exc:
            assert "too long; the longest allowed is" in str(exc), name
        else:
            raise AssertionError(f"{name} accepts 99999999999d")


def _setting(dotted: str, value: str) -> dict[str, object]:
    data: dict[str, object] = {}
    node = data
    *parents, leaf = dotted.split(".")
    for part in parents:
        child: dict[str, object] = {}
        node[part] = [child] if part == "rate_limits" else child
        node = child
    node[leaf] = value
    if "rate_limits" in parents:
        node.setdefault("count", 1)
    return data
