"""A form-encoded request's fields from a body's JSON output."""

from __future__ import annotations

import json
from typing import Any


def form_fields(output: str) -> list[tuple[str, str]]:
    """The fields of a form-encoded request from a body's JSON output.

    The output must be a flat object: strings, numbers and booleans become field values
    (``true``/``false`` for booleans) and ``null`` leaves the field out. Raise ``ValueError``
    naming the first key whose value is an object or an array.
    """
    value = json.loads(output)
    if not isinstance(value, dict):
        raise ValueError(
            f"a form-encoded body must produce a flat object of strings, not a {_json_type(value)}"
        )
    fields: list[tuple[str, str]] = []
    for key, item in value.items():
        if item is None:
            continue
        if isinstance(item, bool):
            fields.append((key, "true" if item else "false"))
        elif isinstance(item, (str, int, float)):
            fields.append((key, str(item)))
        else:
            raise ValueError(
                f"a form-encoded body must produce a flat object of strings, but {key!r} "
                f"is an {_json_type(item)}"
            )
    return fields


def _json_type(value: Any) -> str:
    if isinstance(value, dict):
        return "object"
    if isinstance(value, list):
        return "array"
    if isinstance(value, str):
        return "string"
    if value is None:
        return "null"
    return "boolean" if isinstance(value, bool) else "number"
