"""The base of every settings model: a setting's text is real text.

A lone surrogate cannot be stored or sent, and a NUL ends a C string or splits an SMTP AUTH
PLAIN answer; neither is ever part of a meaningful setting, so every string of every settings
model (in mappings and lists too) is refused with them, naming its key.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, field_validator

from postroom.text import data_problem


class SettingsModel(BaseModel):
    """A pydantic model whose string values (at any depth) hold no NUL and no lone surrogate."""

    @field_validator("*", mode="after")
    @classmethod
    def _real_text(cls, value: Any) -> Any:
        found = data_problem(value)
        if found is not None:
            path, problem = found
            raise ValueError(f"{path}: {problem}" if path else problem)
        return value
