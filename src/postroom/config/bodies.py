"""Checking a tenant's Jsonnet body, once, where the settings enter Postroom.

A ``courier.http.request_config.body`` is code from somewhere (a file, a URL, inline text), so
it is loaded and checked explicitly, never inside a pydantic validator: building a settings
object stays free of network and subprocesses, and a reload of saved tenants costs nothing.

- The configuration file's tenants are checked by :func:`check_file_bodies` when the loader
  reads the file (blocking is fine there: nothing else runs yet).
- A tenant saved through the admin API is checked by :func:`prepare_body` when it is saved,
  off the event loop and within :data:`SAVE_TIMEOUT`; an ``https://`` body is fetched then,
  through the guarded client, and kept (see :func:`kept_body`), so that a later reload never
  fetches it again.
"""

from __future__ import annotations

import asyncio
import base64
import re
from typing import Any

from postroom.config.http import FORM, SAMPLE_CTX, RequestConfig, content_kind
from postroom.errors import ConfigError
from postroom.render.jsonnet import (
    JsonnetBody,
    check_body,
    fetch_body,
    form_fields,
    load_body,
)

SAVE_TIMEOUT = 20.0
"""Seconds a tenant save may spend fetching and compiling its body."""

_QUOTED_PLACEHOLDER = re.compile(r"""["']\{[a-z][a-z_]*\}["']""")


def _check_loaded(body: JsonnetBody, headers: dict[str, str]) -> None:
    """Placeholders, compilation, and (form bodies) a flat output; raise ``ConfigError``."""
    placeholder = _QUOTED_PLACEHOLDER.search(body.source)
    if placeholder:
        raise ConfigError(
            f"still holds the placeholder {placeholder.group()[1:-1]}; replace it with your own "
            "value (`postroom presets show` explains each one)"
        )
    form = content_kind(headers) == "form"
    checked = check_body(body, sample_ctx=SAMPLE_CTX if form else None)
    if form and checked.sample_output is not None:
        try:
            form_fields(checked.sample_output)
        except ValueError as exc:
            raise ConfigError(
                f"the Content-Type is {FORM}, so {exc} (tried with a sample login-code message)"
            ) from None


def check_file_bodies(config: RequestConfig, *, path: str) -> None:
    """Load and check the body of a tenant from the configuration file (blocking); raise
    ``ConfigError`` naming ``path`` (the dotted key of ``request_config``)."""
    if config.body is None:
        return
    try:
        _check_loaded(load_body(config.body), dict(config.headers))
    except ConfigError as exc:
        raise ConfigError(str(exc), path=f"{path}.body") from None


async def prepare_body(config: RequestConfig, *, allow_private_targets: bool) -> str | None:
    """Load and check the body of a tenant being saved, off the event loop and within
    :data:`SAVE_TIMEOUT`; return the Jsonnet source of an ``https://`` body (to keep with the
    tenant), else None. Raise ``ConfigError`` (without a path) when the body is unusable."""
    raw = config.body
    if raw is None:
        return None

    async def work() -> str | None:
        fetched: str | None = None
        if raw.startswith("https://"):
            fetched = await fetch_body(raw, allow_private_targets=allow_private_targets)
            body = JsonnetBody(name="https-body.jsonnet", source=fetched)
        else:
            body = await asyncio.to_thread(load_body, raw)
        await asyncio.to_thread(_check_loaded, body, dict(config.headers))
        return fetched

    try:
        return await asyncio.wait_for(work(), SAVE_TIMEOUT)
    except TimeoutError:
        raise ConfigError(
            f"loading and checking the body took longer than {SAVE_TIMEOUT:g}s; make it "
            "smaller or put it inline"
        ) from None


def kept_body(source: str) -> str:
    """How a fetched body is given to the transport: as a ``base64://`` body, so a reload
    neither fetches it again nor can mistake its text for another kind of source."""
    return "base64://" + base64.b64encode(source.encode()).decode()


def with_kept_body(courier: dict[str, Any], kept: dict[str, Any] | None) -> dict[str, Any]:
    """``courier`` with its ``https://`` body replaced by the source kept when it was saved
    (``kept`` is ``{"url": ..., "source": ...}``); unchanged when the URL is not the one kept."""
    config = (courier.get("http") or {}).get("request_config") or {}
    if not kept or config.get("body") != kept.get("url"):
        return courier
    request_config = {**config, "body": kept_body(str(kept["source"]))}
    return {**courier, "http": {**courier["http"], "request_config": request_config}}
