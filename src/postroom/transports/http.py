"""HTTP API delivery: a Jsonnet body built from ``ctx``, sent with httpx.

Per tenant one pooled :class:`httpx.AsyncClient` (TLS verified against the system trust store,
TLS 1.2 or newer, timeouts from ``courier.http.timeout``) and one
:class:`~postroom.render.jsonnet.JsonnetPool`. Redirects are not followed: a 3xx is reported
like any other refusal, so a request never lands somewhere the configuration did not name.

Every connection goes through the guarded client of :mod:`postroom.net.client`, which checks
every address (for tenants that may not reach private addresses) and connects to exactly the
checked address.

The transport reports, it does not decide: a failure is an
:class:`~postroom.errors.HttpDeliveryError` with its stage (``render``, ``dns``, ``connect``,
``tls``, ``request``), the HTTP status and the first KiB of the response body, and the
server's ``Retry-After`` in seconds; ``diagnosis.http`` names the code and ``worker.retry``
decides.
"""

from __future__ import annotations

import asyncio
import base64
import email.utils
import time
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

import httpx

from postroom.config.http import HttpSettings, content_kind
from postroom.errors import ConfigError, DeliveryError, HttpDeliveryError
from postroom.net.client import (
    as_http_error,
    excerpt,
    make_client,
    read_limited,
    shown_url,
    transport_failure,
)
from postroom.render.jsonnet import (
    JsonnetBody,
    JsonnetError,
    JsonnetPool,
    JsonnetUnavailable,
    default_payload,
    default_pool_size,
    form_fields,
    load_body,
)
from postroom.transports.base import Envelope, Recorder, SendResult, target_host
from postroom.transports.evidence import http_message_id

REPLY_EXCERPT = 1024  # bytes of a refusal's body kept in the diagnosis
MAX_RESPONSE = 64 * 1024  # bytes of a response read at most


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or an HTTP date), or None
    when it is absent or unreadable. A date in the past means 0."""
    if value is None or not value.strip():
        return None
    text = value.strip()
    try:
        return max(0.0, float(text))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


def build_ctx(envelope: Envelope) -> dict[str, Any]:
    """The ``ctx`` a body sees for ``envelope``; ``template_data`` always carries
    ``to``, and ``raw_mime`` is the whole message as it would go over SMTP."""
    recipient = envelope.recipient or (envelope.recipients[0] if envelope.recipients else "")
    data = dict(envelope.template_data or {})
    data.setdefault("to", recipient)
    return {
        "recipient": recipient,
        "subject": envelope.subject,
        "body": envelope.text,
        "html_body": envelope.html,
        "template_type": envelope.template_type or "stub",
        "template_data": data,
        "message_type": "email",
        # The exact bytes SMTP would send (DKIM-signed when the tenant signs), for APIs that
        # take a whole MIME message (SES's raw content, Mailgun's messages.mime).
        "raw_mime": envelope.data.decode("utf-8", "replace"),
    }


class HttpTransport:
    """Delivers each message as one HTTP request to the tenant's provider API."""

    def __init__(
        self,
        settings: HttpSettings,
        *,
        pool_size: int = 1,
        allow_private_targets: bool = True,
        recorder: Recorder | None = None,
        jsonnet_pool: JsonnetPool | None = None,
    ) -> None:
        config = settings.request_config
        if not config.url:
            raise ConfigError(
                "delivery_strategy is http but no url is set",
                path="courier.http.request_config.url",
            )
        self.settings = settings
        self.url = config.url
        self.method = config.method
        self.allow_private_targets = allow_private_targets
        self.recorder = recorder
        self._body: JsonnetBody | None = None
        self.kind = content_kind(config.headers)
        self.headers = self._headers()
        self._pool_size = max(1, pool_size)
        self._client: httpx.AsyncClient | None = None
        self._jsonnet = jsonnet_pool or JsonnetPool(size=min(self._pool_size, default_pool_size()))
        self._closed = False

    def _headers(self) -> dict[str, str]:
        config = self.settings.request_config
        headers = dict(config.headers)
        if not any(name.lower() == "content-type" for name in headers):
            headers["Content-Type"] = "application/json"
        auth = config.auth
        if auth is None:
            return headers
        if auth.type == "basic_auth":
            pair = f"{auth.config.user or ''}:{auth.config.password or ''}".encode()
            headers["Authorization"] = "Basic " + base64.b64encode(pair).decode()
        elif auth.location == "cookie":
            cookie = f"{auth.config.name}={auth.config.value}"
            existing = next((k for k in headers if k.lower() == "cookie"), None)
            if existing is None:
                headers["Cookie"] = cookie
            else:
                headers[existing] = f"{headers[existing]}; {cookie}"
        else:
            name = auth.config.name or "Authorization"
            for key in [k for k in headers if k.lower() == name.lower()]:
                del headers[key]
            headers[name] = auth.config.value or ""
        return headers

    @property
    def client(self) -> httpx.AsyncClient:
        """The tenant's pooled client, opened on first use."""
        if self._client is None:
            self._client = make_client(
                timeout=self.settings.timeout,
                connections=self._pool_size,
                allow_private_targets=self.allow_private_targets,
            )
        return self._client

    async def render(self, envelope: Envelope) -> bytes:
        """The request body for ``envelope``: the Jsonnet output (compact JSON), or as form
        fields when the Content-Type is form-encoded. Raise ``HttpDeliveryError`` (stage
        ``render``) when the body fails, and ``ConfigError`` when it cannot be loaded."""
        source = self.settings.request_config.body
        if source is None:  # Ory's default payload, natively: the same JSON, no Jsonnet cost
            output = default_payload(build_ctx(envelope))
        else:
            if self._body is None:
                # Cached since the configuration loaded; off the event loop in case it was not.
                self._body = await asyncio.to_thread(
                    load_body, source, allow_private_targets=self.allow_private_targets
                )
            try:
                output = await self._jsonnet.evaluate(self._body, build_ctx(envelope))
            except JsonnetError as exc:
                raise HttpDeliveryError(
                    f"the Jsonnet body failed: {exc}", stage="render", hint="template_error"
                ) from exc
            except JsonnetUnavailable as exc:
                raise HttpDeliveryError(str(exc), stage="render") from exc
        if self.kind == "form":
            try:
                return urlencode(form_fields(output)).encode()
            except ValueError as exc:
                what = "default body" if source is None else "Jsonnet body"
                raise HttpDeliveryError(
                    f"the {what} failed: {exc}", stage="render", hint="template_error"
                ) from exc
        return output.encode()

    async def send(self, envelope: Envelope) -> SendResult:
        """Render the body and make the request; 2xx is a hand-off, anything else raises
        ``HttpDeliveryError`` with the status, a body excerpt and ``Retry-After``."""
        if self._closed:
            raise RuntimeError("transport closed")
        recorder = self.recorder or Recorder()
        with recorder.timed("render") as step:
            content = await self.render(envelope)
            step.detail = f"{len(content)} bytes"
        with recorder.timed("request") as step:
            try:
                return await self._request(content)
            except HttpDeliveryError as exc:
                step.stage = exc.stage
                step.reply = exc.reply
                step.detail = str(exc)
                raise

    async def _request(self, content: bytes) -> SendResult:
        url = shown_url(self.url)
        request = self.client.build_request(
            self.method, self.url, headers=self.headers, content=content
        )
        started = time.perf_counter()
        try:
            response = await self.client.send(request, stream=True)
            try:
                body = await read_limited(response, MAX_RESPONSE)
            finally:
                await response.aclose()
        except DeliveryError as exc:  # the SSRF guard or DNS, raised inside httpcore
            raise as_http_error(exc) from exc
        except httpx.TransportError as exc:
            raise transport_failure(exc, url) from exc
        status = response.status_code
        if 200 <= status < 300:
            ms = (time.perf_counter() - started) * 1000
            accepted = excerpt(body, REPLY_EXCERPT)
            return SendResult(
                reply=f"{status} {response.reason_phrase} ({ms:.0f} ms) {accepted}".strip(),
                provider_message_id=http_message_id(response.headers, body),
                transport="http",
                host=target_host(self.url),
            )
        reply_text = excerpt(body, REPLY_EXCERPT) or response.reason_phrase
        if 300 <= status < 400:
            location = response.headers.get("Location")
            where = shown_url(httpx.URL(self.url).join(location)) if location else "elsewhere"
            reply_text = f"redirect to {where} (not followed) {reply_text}"
        raise HttpDeliveryError(
            f"{url} answered {status} {response.reason_phrase}",
            stage="request",
            reply_code=status,
            reply_text=reply_text,
            retry_after=parse_retry_after(response.headers.get("Retry-After")),
        )

    async def close(self) -> None:
        """Close the client's connections and stop the Jsonnet children."""
        self._closed = True
        client, self._client = self._client, None
        if client is not None:
            await client.aclose()
        await self._jsonnet.close()
