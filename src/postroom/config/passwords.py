"""Passwords of SMTP listener logins, as they are kept.

Two stored forms, told apart by their prefix:

- ``sha256$SALT$HEX``: a keyed SHA-256 (HMAC with a random per-login key). For passwords that
  Postroom generates (32 random bytes), which no dictionary holds: checking is a microsecond.
- ``scrypt$N$R$P$SALT$HASH``: for passwords a person chose, slow on purpose
  (``postroom listener hash-password``). Callers check these off the event loop.

Anything else given as a login's password in a configuration file is the password itself; it
is turned into the keyed form as it is read, so that no plain password stays in memory.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets

SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**14, 8, 1
GENERATED_BYTES = 32
MIN_CHOSEN_LENGTH = 12


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def generate_password() -> str:
    """A new random password of :data:`GENERATED_BYTES` bytes, URL-safe text."""
    return secrets.token_urlsafe(GENERATED_BYTES)


def keyed_hash(password: str, *, key: bytes | None = None) -> str:
    """The ``sha256$`` form of ``password``, keyed with ``key`` (random when None)."""
    key = os.urandom(16) if key is None else key
    digest = hmac.new(key, password.encode(), hashlib.sha256).hexdigest()
    return f"sha256${_b64(key)}${digest}"


def scrypt_hash(password: str) -> str:
    """The ``scrypt$`` form of a chosen password (a fresh salt; about 50 ms of work)."""
    salt = os.urandom(16)
    digest = hashlib.scrypt(
        password.encode(), salt=salt, n=SCRYPT_N, r=SCRYPT_R, p=SCRYPT_P, dklen=32
    )
    return f"scrypt${SCRYPT_N}${SCRYPT_R}${SCRYPT_P}${_b64(salt)}${_b64(digest)}"


def is_hash(value: str) -> bool:
    """True when ``value`` is a stored form (``sha256$`` or ``scrypt$``) that can match."""
    parts = value.split("$")
    try:
        if parts[0] == "sha256" and len(parts) == 3:
            return len(_unb64(parts[1])) >= 8 and len(bytes.fromhex(parts[2])) == 32
        if parts[0] == "scrypt" and len(parts) == 6:
            n, r, p = (int(x) for x in parts[1:4])
            return n > 1 and n & (n - 1) == 0 and r > 0 and p > 0 and len(_unb64(parts[5])) > 0
    except ValueError:
        return False
    return False


def is_slow(stored: str) -> bool:
    """True for the ``scrypt$`` form: check it off the event loop."""
    return stored.startswith("scrypt$")


def verify(password: str, stored: str) -> bool:
    """Constant-time check of ``password`` against a stored form; False for a malformed one."""
    parts = stored.split("$")
    try:
        if parts[0] == "sha256" and len(parts) == 3:
            expected = keyed_hash(password, key=_unb64(parts[1]))
            return hmac.compare_digest(expected, stored)
        if parts[0] == "scrypt" and len(parts) == 6:
            n, r, p = (int(x) for x in parts[1:4])
            want = _unb64(parts[5])
            got = hashlib.scrypt(
                password.encode(),
                salt=_unb64(parts[4]),
                n=n,
                r=r,
                p=p,
                dklen=len(want),
                maxmem=256 * 1024 * 1024,
            )
            return hmac.compare_digest(got, want)
    except ValueError:
        return False
    return False
