"""HTTP API delivery: a Jsonnet body built from ``ctx``, sent with httpx.

Per tenant one pooled :class:`httpx.AsyncClient` (TLS verified against the system trust store,
TLS 1.2 or newer, timeouts from ``courier.http.timeout``) and one
:class:`~postroom.render.jsonnet.JsonnetPool`. Redirects are not followed: a 3xx is reported
like any other refusal, so a request never lands somewhere the configuration did not name.

Every connection goes through :class:`GuardedBackend`, which resolves the host itself, checks
every address with :mod:`postroom.transports.targets` (for tenants that may not reach private
addresses) and connects to exactly the checked address.

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
import json
import logging
import ssl
import time
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode, urlsplit

import httpcore
import httpx

import postroom
from postroom.config.http import HttpSettings, content_kind
from postroom.errors import ConfigError, DeliveryError, HttpDeliveryError, exception_chain
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
from postroom.transports.base import Envelope, Recorder, SendResult
from postroom.transports.targets import resolve_target

REPLY_EXCERPT = 1024  # bytes of a refusal's body kept in the diagnosis
MAX_RESPONSE = 64 * 1024  # bytes of a response read at most
USER_AGENT = f"Postroom/{postroom.__version__}"


class _NoQueryInLogs(logging.Filter):
    """httpx logs every request's URL at INFO; a query string may hold an API key."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple) and len(record.args) > 1:
            url = record.args[1]
            if isinstance(url, httpx.URL) and url.query:
                record.args = (record.args[0], shown_url(url), *record.args[2:])
        return True


logging.getLogger("httpx").addFilter(_NoQueryInLogs())


def tls_context() -> ssl.SSLContext:
    """The system trust store (honours ``SSL_CERT_FILE``), hostname checked, TLS 1.2+."""
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context


class GuardedBackend(httpcore.AsyncNetworkBackend):
    """httpcore's network backend, resolving and checking every host before connecting."""

    def __init__(self, *, allow_private_targets: bool) -> None:
        self.allow_private_targets = allow_private_targets
        self._inner = httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        """Resolve ``host``, refuse forbidden addresses, connect to the first that answers."""
        targets = await resolve_target(
            host, port, allow_private_targets=self.allow_private_targets, timeout=timeout
        )
        last: Exception | None = None
        for target in targets:
            try:
                return await self._inner.connect_tcp(
                    target.address,
                    port,
                    timeout=timeout,
                    local_address=local_address,
                    socket_options=socket_options,
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                last = exc
        assert last is not None
        raise last

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        """Never used: HTTP delivery goes to TCP hosts only."""
        raise httpcore.ConnectError("Unix sockets are not an HTTP delivery target")

    async def sleep(self, seconds: float) -> None:
        """Delegate to anyio."""
        await self._inner.sleep(seconds)


class _GuardedTransport(httpx.AsyncHTTPTransport):
    """httpx's transport with :class:`GuardedBackend` underneath its connection pool."""

    def __init__(
        self, *, context: ssl.SSLContext, limits: httpx.Limits, allow_private_targets: bool
    ) -> None:
        super().__init__(verify=context, limits=limits, trust_env=False)
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=context,
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            network_backend=GuardedBackend(allow_private_targets=allow_private_targets),
        )


def make_client(
    *, timeout: float, connections: int, allow_private_targets: bool
) -> httpx.AsyncClient:
    """A pooled client: verified TLS, no redirects, no proxy from the environment, and
    :class:`GuardedBackend` under every connection."""
    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
    return httpx.AsyncClient(
        transport=_GuardedTransport(
            context=tls_context(), limits=limits, allow_private_targets=allow_private_targets
        ),
        timeout=httpx.Timeout(timeout, pool=None),
        follow_redirects=False,
        trust_env=False,
        headers={"User-Agent": USER_AGENT},
    )


def shown_url(url: str | httpx.URL) -> str:
    """A URL as messages print it: scheme, host, port and path; no query (it may hold keys)."""
    parts = urlsplit(str(url))
    return f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}{parts.path}"


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


def _provider_message_id(response: httpx.Response, content: bytes) -> str | None:
    for header in ("X-Message-Id", "X-Message-ID", "X-Request-Id"):
        if header in response.headers:
            return response.headers[header]
    if b"{" not in content[:64]:
        return None
    try:
        data = json.loads(content)
    except ValueError:
        return None
    if isinstance(data, dict):
        for key in ("id", "message_id", "messageId", "MessageID", "MessageId"):
            value = data.get(key)
            if isinstance(value, (str, int)) and str(value):
                return str(value)
    return None


async def _read_limited(response: httpx.Response, limit: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.aiter_bytes():
        chunks.append(chunk)
        size += len(chunk)
        if size > limit:
            break
    return b"".join(chunks)


def _excerpt(content: bytes, response: httpx.Response) -> str:
    text = content[:REPLY_EXCERPT].decode("utf-8", errors="replace").strip()
    return text or response.reason_phrase


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


def _wrap(exc: DeliveryError) -> HttpDeliveryError:
    if isinstance(exc, HttpDeliveryError):
        return exc
    error = HttpDeliveryError(
        str(exc),
        stage=exc.stage,
        reply_code=exc.reply_code,
        reply_text=exc.reply_text,
        hint=exc.hint,
        retry_after=exc.retry_after,
    )
    error.__cause__ = exc
    return error


def _transport_failure(exc: httpx.TransportError, url: str) -> HttpDeliveryError:
    """A failure before any answer, with the stage it happened in."""
    guard = next((e for e in exception_chain(exc) if isinstance(e, DeliveryError)), None)
    if guard is not None:
        return _wrap(guard)
    if isinstance(exc, httpx.ConnectTimeout):
        return HttpDeliveryError(
            f"no answer from {url} while connecting", stage="connect", hint="connection_timeout"
        )
    if isinstance(exc, httpx.TimeoutException):
        return HttpDeliveryError(f"{url} did not answer in time", stage="request")
    if isinstance(exc, httpx.ConnectError):
        tls = any(isinstance(e, ssl.SSLError) for e in exception_chain(exc))
        return HttpDeliveryError(
            f"cannot connect to {url}: {exc}", stage="tls" if tls else "connect"
        )
    return HttpDeliveryError(
        f"the request to {url} failed: {exc or type(exc).__name__}", stage="request"
    )


async def fetch_limited(url: str, *, max_bytes: int, allow_private_targets: bool) -> bytes:
    """GET ``url`` (an ``https://`` body source) and return at most ``max_bytes`` of it.

    Raise :class:`~postroom.errors.DeliveryError` for a refused target, a failed connection,
    a non-2xx status or a larger response.
    """
    async with make_client(
        timeout=10.0, connections=1, allow_private_targets=allow_private_targets
    ) as client:
        try:
            async with client.stream("GET", url) as response:
                content = await _read_limited(response, max_bytes)
        except httpx.TransportError as exc:
            raise _transport_failure(exc, shown_url(url)) from exc
    if not 200 <= response.status_code < 300:
        raise HttpDeliveryError(
            f"the server answered {response.status_code} {response.reason_phrase}",
            stage="request",
            reply_code=response.status_code,
        )
    if len(content) > max_bytes:
        raise HttpDeliveryError(f"it is larger than {max_bytes // 1024} KiB", stage="request")
    return content


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
                body = await _read_limited(response, MAX_RESPONSE)
            finally:
                await response.aclose()
        except DeliveryError as exc:  # the SSRF guard or DNS, raised inside httpcore
            raise _wrap(exc) from exc
        except httpx.TransportError as exc:
            raise _transport_failure(exc, url) from exc
        status = response.status_code
        if 200 <= status < 300:
            ms = (time.perf_counter() - started) * 1000
            return SendResult(
                reply=f"{status} {response.reason_phrase} ({ms:.0f} ms)",
                provider_message_id=_provider_message_id(response, body),
            )
        reply_text = _excerpt(body, response)
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
