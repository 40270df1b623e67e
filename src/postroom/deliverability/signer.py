"""Which key signs a tenant's mail, and the one call that signs it: :func:`dkim_sign`.

Intake signs each message once, when its MIME is final (before it is stored), so that every
retry sends the same signed bytes; the SMTP listener calls :func:`dkim_sign` for the mail it
accepts. A tenant's key is its ``courier.dkim.private_key_path`` (file tenants) or the key
made by ``postroom dkim generate`` and switched on by ``postroom dkim activate``.
"""

from __future__ import annotations

import asyncio
import functools
import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric import ed25519

from postroom.config import Settings
from postroom.config.secrets import Crypter
from postroom.config.settings import CourierSettings
from postroom.deliverability.dkim import (
    Algorithm,
    PrivateKey,
    SigningKey,
    covers,
    from_domain,
    load_private_key,
    sign_message,
)
from postroom.errors import ConfigError
from postroom.store.base import StoredDkimKey
from postroom.store.roles import DkimKeys


@functools.lru_cache(maxsize=8)
def _crypter(secrets: tuple[str, ...]) -> Crypter:
    return Crypter(secrets)


@functools.lru_cache(maxsize=64)
def _file_key(path: str, mtime_ns: int, algorithm: Algorithm, source: str) -> PrivateKey:
    return load_private_key(Path(path).read_bytes(), algorithm=algorithm, source=source)


@functools.lru_cache(maxsize=64)
def _stored_key(encrypted: str, secrets: tuple[str, ...], algorithm: Algorithm) -> PrivateKey:
    pem = _crypter(secrets).decrypt(encrypted)
    return load_private_key(pem.encode("ascii"), algorithm=algorithm, source="dkim key")


def _source(tenant: str) -> str:
    where = "courier" if tenant == "default" else f"tenants.{tenant}.courier"
    return f"{where}.dkim.private_key_path"


def file_signing_key(tenant: str, courier: CourierSettings) -> SigningKey | None:
    """The key of ``courier.dkim.private_key_path`` (None when the tenant names none).

    Raise :class:`~postroom.errors.ConfigError` naming the setting for a key that cannot be
    read or is not of ``dkim.algorithm``.
    """
    dkim = courier.dkim
    if dkim.domain is None or dkim.private_key_path is None or dkim.selector is None:
        return None
    source = _source(tenant)
    try:
        mtime = os.stat(dkim.private_key_path).st_mtime_ns
    except OSError as exc:
        raise ConfigError(
            f"cannot be read ({exc.strerror}); point it at the PEM file of the DKIM key",
            path=source,
        ) from None
    key = _file_key(dkim.private_key_path, mtime, dkim.algorithm, source)
    return SigningKey(dkim.domain, dkim.selector, dkim.algorithm, key)


def stored_signing_key(stored: StoredDkimKey, secrets: Sequence[str]) -> SigningKey:
    """A stored key, decrypted with ``secrets`` and loaded (kept loaded for the next call)."""
    algorithm: Algorithm = (
        "ed25519-sha256" if stored.algorithm == "ed25519-sha256" else ("rsa-sha256")
    )
    key = _stored_key(stored.private_key, tuple(secrets), algorithm)
    return SigningKey(stored.domain, stored.selector, algorithm, key)


async def signing_key(store: DkimKeys, settings: Settings, tenant: str) -> SigningKey | None:
    """The key that signs ``tenant``'s mail now, or None when the tenant does not sign
    (no ``dkim.domain``, or no key file and no activated key)."""
    courier = settings.tenant(tenant)
    if courier.dkim.domain is None:
        return None
    if courier.dkim.private_key_path is not None:
        return file_signing_key(tenant, courier)
    stored = await store.active_dkim_key(tenant)
    if stored is None:
        return None
    return stored_signing_key(stored, settings.secrets.default)


def sign_with(key: SigningKey | None, mime: bytes) -> bytes:
    """``mime`` signed by ``key`` when the From domain is the key's domain (or below it), else
    ``mime`` unchanged: a signature for another domain would not help DMARC."""
    if key is None or not covers(key.domain, from_domain(mime)):
        return mime
    return sign_message(mime, key)


_RSA_POOL = ThreadPoolExecutor(max_workers=2, thread_name_prefix="postroom-dkim")


_POOL_FROM = 8  # messages: a smaller batch is signed in place


async def sign_all(key: SigningKey | None, mimes: Sequence[bytes]) -> list[bytes]:
    """:func:`sign_with` for each message. A batch of RSA signatures is made on a worker
    thread: OpenSSL releases the interpreter while it signs (about 0.3 ms a message), so the
    event loop goes on serving requests meanwhile. A message or a few are signed in place:
    handing them to a thread and back costs about as much CPU as the signature itself.
    Ed25519 is fast enough to sign in place."""
    if key is None or isinstance(key.key, ed25519.Ed25519PrivateKey) or len(mimes) < _POOL_FROM:
        return [sign_with(key, mime) for mime in mimes]
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(_RSA_POOL, lambda: [sign_with(key, m) for m in mimes])


async def dkim_sign(store: DkimKeys, settings: Settings, tenant: str, mime: bytes) -> bytes:
    """Sign one finished message of ``tenant`` for sending: the bytes to store and send.

    Returns ``mime`` unchanged when the tenant does not sign or the From domain is not its
    DKIM domain. Raise :class:`~postroom.errors.ConfigError` when the tenant's key cannot be
    loaded (an unreadable file, a secret that no longer decrypts the stored key).
    """
    [signed] = await sign_all(await signing_key(store, settings, tenant), [mime])
    return signed
