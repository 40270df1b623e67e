"""Where a body comes from: ``file://PATH`` (imports allowed from its directory),
``base64://DATA``, ``https://URL`` (fetched through the guarded client) or inline Jsonnet text;
none at all means :data:`~postroom.render.jsonnet.body.DEFAULT_BODY`."""

from __future__ import annotations

import asyncio
import base64
import binascii
import functools
from collections.abc import Coroutine
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import unquote, urlsplit

from postroom.errors import ConfigError, DeliveryError
from postroom.net.client import fetch_limited
from postroom.render.jsonnet.body import DEFAULT_BODY, JsonnetBody

T = TypeVar("T")

MAX_SOURCE = 256 * 1024
"""Bytes a body may have, whichever its source."""


def describe_source(raw: str | None) -> str:
    """How a body source is named in messages: the file, the URL (no query), or its kind."""
    if not raw:
        return "the default body"
    if raw.startswith("file://"):
        return raw.removeprefix("file://")
    if raw.startswith("base64://"):
        return "the base64:// body"
    if raw.startswith("https://"):
        parts = urlsplit(raw)
        return f"https://{parts.netloc.rpartition('@')[2]}{parts.path}"
    return "the inline body"


def _decode(data: bytes, where: str) -> str:
    if len(data) > MAX_SOURCE:
        raise ConfigError(f"{where} is larger than {MAX_SOURCE // 1024} KiB")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise ConfigError(f"{where} is not UTF-8 text") from None


@functools.lru_cache(maxsize=128)
def load_body(raw: str | None, *, allow_private_targets: bool = True) -> JsonnetBody:
    """The body a ``request_config.body`` value names; loaded once per process and cached.

    Raise :class:`ConfigError` when it cannot be read, is not UTF-8, is larger than
    :data:`MAX_SOURCE`, or (``https://``) cannot be fetched; an ``https://`` host that resolves
    to a private address is refused unless ``allow_private_targets``.
    """
    if not raw:
        return JsonnetBody(name="default-body.jsonnet", source=DEFAULT_BODY)
    if raw.startswith("file://"):
        path = Path(unquote(raw.removeprefix("file://"))).expanduser()
        try:
            with open(path, "rb") as fh:
                data = fh.read(MAX_SOURCE + 1)
        except OSError as exc:
            raise ConfigError(f"cannot read {path}: {exc.strerror}") from None
        resolved = path.resolve()
        return JsonnetBody(
            name=str(resolved), source=_decode(data, str(path)), root=str(resolved.parent)
        )
    if raw.startswith("base64://"):
        text = "".join(raw.removeprefix("base64://").split())
        padded = (text + "=" * (-len(text) % 4)).replace("-", "+").replace("_", "/")
        try:
            data = base64.b64decode(padded, validate=True)
        except (binascii.Error, ValueError):
            raise ConfigError("the base64:// body is not valid base64") from None
        return JsonnetBody(name="base64-body.jsonnet", source=_decode(data, "the base64:// body"))
    if raw.startswith("https://"):
        source = _run_blocking(fetch_body(raw, allow_private_targets=allow_private_targets))
        return JsonnetBody(name=describe_source(raw), source=source)
    if raw.startswith("http://"):
        raise ConfigError("a body URL must use https:// (the body is code that Postroom runs)")
    return JsonnetBody(name="inline-body.jsonnet", source=_decode(raw.encode(), "the inline body"))


def _run_blocking(coroutine: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine to completion from synchronous code, even inside a running loop."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coroutine).result()


async def fetch_body(url: str, *, allow_private_targets: bool) -> str:
    """Fetch an ``https://`` body through the guarded client (private addresses refused unless
    ``allow_private_targets``); raise :class:`ConfigError` naming the URL without its query."""
    shown = describe_source(url)
    try:
        data = await fetch_limited(
            url, max_bytes=MAX_SOURCE, allow_private_targets=allow_private_targets
        )
    except DeliveryError as exc:
        raise ConfigError(f"cannot fetch the body from {shown}: {exc}") from None
    return _decode(data, shown)
