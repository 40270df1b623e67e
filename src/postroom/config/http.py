"""``courier.http``: HTTP API delivery, shaped like Ory Kratos's ``courier.http``.

Everything that can be checked without I/O is checked here: the URL, the method, the headers
and content type, and the auth block. The Jsonnet body (it must compile, be a function of
``ctx``, and produce a flat object when the content type is form-encoded) is checked by
``config.bodies`` where the settings enter Postroom. Each problem names its key.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import (
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)

from postroom.config.durations import MINUTE, PositiveDuration, at_most
from postroom.config.model import SettingsModel
from postroom.text import header_line_problem

JSON = "application/json"
FORM = "application/x-www-form-urlencoded"
METHODS = ("POST", "PUT", "PATCH")
AUTH_TYPES = ("api_key", "basic_auth")

_TOKEN = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
_PLACEHOLDER = re.compile(r"\{[a-z][a-z_]*\}")
_MANAGED_HEADERS = {"content-length", "host", "transfer-encoding", "connection"}

# A login-code message: what a form-encoded body is tried with when the configuration loads.
SAMPLE_CTX: dict[str, Any] = {
    "recipient": "someone@example.org",
    "subject": "Your login code",
    "body": "Your login code is 123456",
    "html_body": "<p>Your login code is <b>123456</b></p>",
    "template_type": "login_code_valid",
    "template_data": {"to": "someone@example.org", "login_code": "123456"},
    "message_type": "email",
}


class _Strict(SettingsModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _placeholder_hint(found: str) -> str:
    return (
        f"still holds the placeholder {found}; replace it with your own value "
        "(`postroom presets show` explains each one)"
    )


def content_kind(headers: Mapping[str, str]) -> Literal["json", "form"]:
    """``form`` when the Content-Type header is form-encoded, else ``json`` (the default)."""
    for name, value in headers.items():
        if name.lower() == "content-type":
            media = value.split(";", 1)[0].strip().lower()
            return "form" if media == FORM else "json"
    return "json"


class HttpAuthConfig(_Strict):
    """``auth.config``: ``name``, ``value``, ``in`` for ``api_key``; ``user``, ``password``
    for ``basic_auth``."""

    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        validate_by_name=True,
        validate_by_alias=True,
        serialize_by_alias=True,
    )

    name: str | None = None
    value: str | None = Field(default=None, repr=False)  # the API key
    in_: Literal["header", "cookie"] | None = Field(default=None, alias="in")
    user: str | None = None
    password: str | None = Field(default=None, repr=False)

    @field_validator("name", "value", "user", "password")
    @classmethod
    def _one_line(cls, value: str | None) -> str | None:
        problem = None if value is None else header_line_problem(value)
        if problem is not None:
            raise ValueError(problem)
        if value is not None and _PLACEHOLDER.fullmatch(value.split(" ")[-1]):
            raise ValueError(_placeholder_hint(value.split(" ")[-1]))
        return value


class HttpAuth(_Strict):
    """``request_config.auth``: ``{type: api_key, config: {name, value, in: header|cookie}}``
    or ``{type: basic_auth, config: {user, password}}``."""

    type: str
    config: HttpAuthConfig = Field(default_factory=HttpAuthConfig)

    @field_validator("type")
    @classmethod
    def _known_type(cls, value: str) -> str:
        if value not in AUTH_TYPES:
            raise ValueError(
                f"unknown auth type {value!r}; use api_key (config: name, value, in: header or "
                "cookie) or basic_auth (config: user, password)"
            )
        return value

    @model_validator(mode="after")
    def _complete(self) -> HttpAuth:
        config = self.config
        if self.type == "api_key":
            missing = [key for key in ("name", "value") if not getattr(config, key)]
            extra = [key for key in ("user", "password") if getattr(config, key) is not None]
            if missing:
                raise ValueError(
                    f"config.{missing[0]} is missing: api_key needs the header or cookie name "
                    "and its value, e.g. {name: Authorization, value: Bearer KEY, in: header}"
                )
            if config.name and not _TOKEN.match(config.name):
                raise ValueError(f"config.name {config.name!r} is not a valid header name")
        else:
            missing = [key for key in ("user", "password") if getattr(config, key) is None]
            extra = [key for key in ("name", "value", "in_") if getattr(config, key) is not None]
            if missing:
                raise ValueError(
                    f"config.{missing[0]} is missing: basic_auth needs user and password"
                )
        if extra:
            key = extra[0].rstrip("_")
            raise ValueError(f"config.{key} does not belong to {self.type}")
        return self

    @property
    def location(self) -> Literal["header", "cookie"]:
        """Where an API key goes (``header`` unless the config says ``cookie``)."""
        return self.config.in_ or "header"


class RequestConfig(_Strict):
    """``courier.http.request_config``, as in Ory Kratos."""

    url: str | None = None
    method: str = "POST"
    headers: dict[str, str] = Field(default_factory=dict)
    body: str | None = Field(default=None, repr=False)  # inline bodies may embed keys
    auth: HttpAuth | None = Field(default=None, repr=False)

    @field_validator("url")
    @classmethod
    def _valid_url(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        value = value.strip()
        placeholder = _PLACEHOLDER.search(value)
        if placeholder:
            raise ValueError(_placeholder_hint(placeholder.group()))
        if any(c.isspace() for c in value):
            raise ValueError("contains whitespace; percent-encode it (%20)")
        try:
            parts = urlsplit(value)
            port = parts.port
        except ValueError as exc:
            raise ValueError(f"is not a valid URL: {exc}") from None
        if parts.scheme.lower() not in {"http", "https"}:
            shown = f"the scheme {parts.scheme!r}" if parts.scheme else "no scheme"
            raise ValueError(
                f"has {shown}; HTTP delivery needs an https:// (or http://) URL such as "
                "https://api.example.org/v1/send"
            )
        if not parts.hostname:
            raise ValueError("has no host; write it like https://api.example.org/v1/send")
        if parts.username is not None or parts.password is not None:
            raise ValueError(
                "contains a user or password; put credentials under request_config.auth "
                "(basic_auth) so they are never printed"
            )
        if port == 0:
            raise ValueError("has port 0")
        return value

    @field_validator("method")
    @classmethod
    def _valid_method(cls, value: str) -> str:
        method = value.strip().upper()
        if method not in METHODS:
            raise ValueError(f"{value!r} is not supported; use {', '.join(METHODS)}")
        return method

    @field_validator("headers")
    @classmethod
    def _valid_headers(cls, value: dict[str, str]) -> dict[str, str]:
        for name, text in value.items():
            if not _TOKEN.match(name):
                raise ValueError(f"{name!r} is not a valid header name")
            problem = header_line_problem(text)
            if problem is not None:
                raise ValueError(f"{name}: the value {problem}")
            if name.lower() in _MANAGED_HEADERS:
                raise ValueError(f"{name} is set by Postroom; remove it")
            placeholder = _PLACEHOLDER.search(text)
            if placeholder:
                raise ValueError(f"{name} {_placeholder_hint(placeholder.group())}")
            if name.lower() == "content-type":
                media = text.split(";", 1)[0].strip().lower()
                if media not in {JSON, FORM} and not media.endswith("+json"):
                    raise ValueError(
                        f"Content-Type {text!r} is not supported; use {JSON} or {FORM}"
                    )
        return value

    @field_validator("body")
    @classmethod
    def _valid_body(cls, value: str | None) -> str | None:
        # Only what needs no I/O: loading, compiling and trying the body happens where the
        # settings enter Postroom (``config.bodies``), never while a settings object is built.
        if value is None or not value.strip():
            return None
        if value.startswith("http://"):
            raise ValueError("a body URL must use https:// (the body is code that Postroom runs)")
        if value.startswith("https://"):
            try:
                parts = urlsplit(value)
            except ValueError as exc:
                raise ValueError(f"is not a valid URL: {exc}") from None
            if parts.username is not None or parts.password is not None:
                raise ValueError(
                    "the body URL contains a user or password; put a signed query key such "
                    "as ?sig=... in the URL instead (it is encrypted and masked like a password)"
                )
        return value


class HttpSettings(_Strict):
    """``courier.http``: the request to make for every message, and how long to wait."""

    request_config: RequestConfig = Field(default_factory=RequestConfig)
    timeout: Annotated[PositiveDuration, at_most(10 * MINUTE)] = 10.0
