"""Credentials at rest: encrypted with ``secrets.default[0]``; older entries still decrypt,
so keys can be rotated by putting a new one first. Shown as ``***``, and a ``***`` sent back
keeps the stored credential only while the target it is bound to stays the same (which values
are credentials, and their targets: :mod:`postroom.config.credentials`). Intake tokens are
kept as their SHA-256 hashes.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import hmac
import re
from collections.abc import Callable, Sequence
from typing import Any

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from postroom.config.credentials import (
    TARGET_WORDS,
    bound_target,
    credential_slots,
    read_credential,
    write_credential,
)
from postroom.errors import ConfigError, InputError

MASK = "***"
PREFIX = "enc:v1:"
MIN_SECRET_LENGTH = 32


class Crypter:
    """Encrypts and decrypts credential strings with the configured secrets."""

    def __init__(self, secrets: Sequence[str]) -> None:
        for index, secret in enumerate(secrets):
            if len(secret) < MIN_SECRET_LENGTH:
                raise ConfigError(
                    f"must be at least {MIN_SECRET_LENGTH} characters long",
                    path=f"secrets.default[{index}]",
                )
        self._fernet = MultiFernet([Fernet(_key(s)) for s in secrets]) if secrets else None

    @property
    def available(self) -> bool:
        """True when at least one secret is configured."""
        return self._fernet is not None

    def encrypt(self, value: str) -> str:
        """Encrypt with the first secret; raise ConfigError when none is configured."""
        if self._fernet is None:
            raise ConfigError(
                "no encryption secret is configured, so credentials cannot be stored; set "
                "secrets.default (or SECRETS_DEFAULT) to a random string of 32+ characters",
                path="secrets.default",
            )
        return PREFIX + self._fernet.encrypt(value.encode()).decode()

    def decrypt(self, value: str) -> str:
        """Decrypt a value written by :meth:`encrypt` with any of the configured secrets."""
        if not value.startswith(PREFIX):
            return value
        if self._fernet is None:
            raise ConfigError(
                "stored credentials are encrypted but no secret is configured; "
                "set secrets.default to the secret they were stored with",
                path="secrets.default",
            )
        try:
            return self._fernet.decrypt(value[len(PREFIX) :].encode()).decode()
        except InvalidToken:
            raise ConfigError(
                "a stored credential does not decrypt with any of secrets.default; "
                "keep the old secret in the list (after the new one) when rotating",
                path="secrets.default",
            ) from None


def _key(secret: str) -> bytes:
    digest = hashlib.sha256(b"postroom-credentials\x00" + secret.encode()).digest()
    return base64.urlsafe_b64encode(digest)


TOKEN_HASH = re.compile(r"sha256:[0-9a-f]{64}")
"""An intake token's stored form: ``sha256:`` and 64 lowercase hex digits."""


def hash_token(token: str) -> str:
    """The SHA-256 of a token as stored (tokens are random, so a plain SHA-256 suffices).

    Always hashed, even when ``token`` itself looks like a stored hash: a hash read from a
    database backup or a configuration file is never a credential.
    """
    return "sha256:" + hashlib.sha256(token.encode()).hexdigest()


def stored_token(value: str) -> str:
    """The stored form of a configured intake token: an entry that is already a hash
    (``sha256:`` and 64 hex digits) as it is, anything else hashed. Raise ``ValueError`` for
    an entry that starts with ``sha256:`` but is no such hash (it could never match)."""
    if not value.startswith("sha256:"):
        return hash_token(value)
    if not TOKEN_HASH.fullmatch(value.lower()):
        raise ValueError(
            "an intake token starting with 'sha256:' is read as the token's stored hash and "
            "must be 'sha256:' and 64 hex digits (the SHA-256 of the token); give the token "
            "itself otherwise"
        )
    return value.lower()


def token_matches(token: str, hashes: Sequence[str]) -> bool:
    """Constant-time check of a presented token against stored hashes; the presented token
    is always hashed first, so presenting a stored hash matches nothing."""
    presented = hash_token(token)
    found = False
    for stored in hashes:
        found |= hmac.compare_digest(presented, stored)
    return found


def transform_secrets(courier: dict[str, Any], fn: Callable[[str], str]) -> dict[str, Any]:
    """A copy of a courier section with ``fn`` applied to every credential string."""
    out = copy.deepcopy(courier)
    for slot in credential_slots(out):
        write_credential(out, slot, fn(read_credential(out, slot)))
    return out


def mask_secrets(courier: dict[str, Any]) -> dict[str, Any]:
    """A copy safe to show: every credential reads ``***`` and intake tokens too."""
    out = transform_secrets(courier, lambda _value: MASK)
    if isinstance(out.get("intake_tokens"), list):
        out["intake_tokens"] = [MASK for _ in out["intake_tokens"]]
    return out


def keep_masked(new: dict[str, Any], stored: dict[str, Any]) -> dict[str, Any]:
    """Where ``new`` says ``***``, take the stored (decrypted) value instead.

    A kept credential goes only where it went before: when the target it is bound to (the
    SMTP server, the HTTP endpoint's origin, the OAuth2 token endpoint) differs between
    ``stored`` and ``new``, the credential must be given again. Raise :class:`InputError`
    naming the field when a ``***`` has nothing to keep or its target changed.
    """
    out = copy.deepcopy(new)
    stored_slots = credential_slots(stored)
    for slot in credential_slots(out):
        if read_credential(out, slot) != MASK:
            continue
        before = next((s for s in stored_slots if s.same_place(slot)), None)
        if before is None or not read_credential(stored, before):
            raise InputError(
                f"is {MASK!r} (keep the stored value) but nothing is stored to keep; give the "
                "value itself",
                field=slot.field,
            )
        if bound_target(out, slot.target, slot) != bound_target(stored, slot.target, before):
            raise InputError(
                f"is {MASK!r} (keep the stored value), but {TARGET_WORDS[slot.target]} changed "
                "since it was saved; a kept credential only goes where it went before, so give "
                "it again to send it to the new target",
                field=slot.field,
            )
        write_credential(out, slot, read_credential(stored, before))
    tokens = out.get("intake_tokens")
    if isinstance(tokens, list) and MASK in tokens:
        kept = [t for t in stored.get("intake_tokens") or [] if isinstance(t, str)]
        out["intake_tokens"] = kept + [t for t in tokens if t != MASK]
    return out
