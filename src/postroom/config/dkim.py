"""``courier.dkim``: the domain and selector a tenant's mail is signed for, and where its key
comes from (a PEM file, or the store after ``postroom dkim activate``)."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import ConfigDict, field_validator, model_validator

from postroom.config.model import SettingsModel


class _Strict(SettingsModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


_LABEL = re.compile(r"(?!-)[a-z0-9-]{1,63}(?<!-)")


def _dns_name(value: str, what: str) -> str:
    name = value.strip().lower().rstrip(".")
    try:
        name = name.encode("idna").decode("ascii")
    except UnicodeError:
        raise ValueError(f"{value!r} is not a {what}; write one like example.org") from None
    if not name or not all(_LABEL.fullmatch(label) for label in name.split(".")):
        raise ValueError(f"{value!r} is not a {what}; write one like example.org")
    return name


class DkimSettings(_Strict):
    """``courier.dkim``: sign this tenant's mail for ``domain`` (off while it is unset).

    With ``private_key_path`` (file tenants only) the key is that PEM file; without it, the key
    is the one made by ``postroom dkim generate`` and switched on by ``postroom dkim activate``
    (then ``selector`` and ``algorithm`` come from the store).
    """

    domain: str | None = None
    selector: str | None = None
    algorithm: Literal["rsa-sha256", "ed25519-sha256"] = "rsa-sha256"
    private_key_path: str | None = None

    @field_validator("domain")
    @classmethod
    def _domain(cls, value: str | None) -> str | None:
        return None if value is None else _dns_name(value, "domain name")

    @field_validator("selector")
    @classmethod
    def _selector(cls, value: str | None) -> str | None:
        return None if value is None else _dns_name(value, "DKIM selector")

    @model_validator(mode="after")
    def _file_needs_selector(self) -> DkimSettings:
        if (self.selector or self.private_key_path) and not self.domain:
            raise ValueError(
                "dkim has a selector or key but no domain; set dkim.domain to the domain of "
                "your from_address (or a parent of it)"
            )
        if self.private_key_path and not self.selector:
            raise ValueError(
                "private_key_path is set but selector is not; set selector to the name the "
                "key is published under (<selector>._domainkey.<domain>)"
            )
        return self
