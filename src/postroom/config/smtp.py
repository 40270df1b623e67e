"""``courier.smtp``: the SMTP server a tenant's mail is handed to (connection URI, TLS client
certificate, OAuth2 login) and the sender and headers its messages carry."""

from __future__ import annotations

from typing import Annotated

from pydantic import ConfigDict, Field, field_validator, model_validator

from postroom.config.durations import MINUTE, PositiveDuration, at_most
from postroom.config.model import SettingsModel
from postroom.config.oauth2 import OAuth2Settings
from postroom.config.smtp_uri import SmtpUri, parse_smtp_uri
from postroom.errors import ConfigError, InputError
from postroom.render.mime import check_configured_header, header_address
from postroom.text import header_line_problem


class _Strict(SettingsModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SmtpSettings(_Strict):
    """``courier.smtp``."""

    connection_uri: str | None = Field(default=None, repr=False)  # holds the password
    from_address: str = "no-reply@postroom.localhost"
    from_name: str | None = None
    reply_to: str | None = None
    headers: dict[str, str] = Field(default_factory=dict)
    local_name: str | None = None
    timeout: Annotated[PositiveDuration, at_most(10 * MINUTE)] = 30.0
    client_cert_path: str | None = None
    client_key_path: str | None = None
    oauth2: OAuth2Settings = Field(default_factory=OAuth2Settings)

    @field_validator("connection_uri")
    @classmethod
    def _valid_uri(cls, value: str | None) -> str | None:
        if value:
            try:
                parse_smtp_uri(value)
            except ConfigError as exc:
                raise ValueError(str(exc)) from None
        return value or None

    @field_validator("from_address", "reply_to")
    @classmethod
    def _plain_address(cls, value: str | None) -> str | None:
        if value is None:
            return None
        problem = header_line_problem(value)
        if problem is not None:
            raise ValueError(f"{problem}; write one address like no-reply@example.org")
        try:
            header_address(value, field="address")
        except InputError:
            raise ValueError(
                f"{value!r} is not an email address; write it like no-reply@example.org"
            ) from None
        return value

    @field_validator("headers")
    @classmethod
    def _header_lines(cls, value: dict[str, str]) -> dict[str, str]:
        # The same rules as when the email is built, but at start instead of at every send.
        for name, text in value.items():
            try:
                check_configured_header(name, text)
            except InputError as exc:
                detail = str(exc).removeprefix(f"{exc.field}: ")
                raise ValueError(
                    detail if exc.field == "headers" else f"{name}: {detail}"
                ) from None
        return value

    @field_validator("from_name", "local_name")
    @classmethod
    def _one_line(cls, value: str | None) -> str | None:
        problem = None if value is None else header_line_problem(value)
        if problem is not None:
            raise ValueError(problem)
        return value

    @model_validator(mode="after")
    def _oauth2_login(self) -> SmtpSettings:
        # XOAUTH2 logs in as the URI's user with a token instead of the URI's password.
        uri = self.uri() if self.oauth2.configured else None
        if uri is None:
            return self
        if uri.password:
            raise ValueError(
                "connection_uri has a password, but oauth2 is configured and the access token "
                "replaces it; remove the password (smtp://user%40example.org@host:587/)"
            )
        if not uri.username and not (self.oauth2.provider == "google" and self.oauth2.subject):
            raise ValueError(
                "oauth2 logs in as the connection_uri's user, and it has none; put the mailbox "
                "in the URI, percent-encoded: smtp://user%40example.org@host:587/"
            )
        return self

    def uri(self) -> SmtpUri | None:
        """The parsed connection URI, or None when none is configured."""
        return parse_smtp_uri(self.connection_uri) if self.connection_uri else None

    def xoauth2_user(self) -> str | None:
        """The mailbox an XOAUTH2 login names: Google's ``subject`` when set (the token acts
        as that user), else the URI's user."""
        if self.oauth2.provider == "google" and self.oauth2.subject:
            return self.oauth2.subject
        uri = self.uri()
        return uri.username if uri is not None and uri.username else None
