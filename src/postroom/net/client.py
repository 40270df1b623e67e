"""The guarded HTTP client every outbound HTTP request uses: HTTP delivery, OAuth2 token
endpoints and Jsonnet bodies fetched from ``https://``.

Every connection goes through :class:`GuardedBackend`, which resolves the host itself, checks
every address with :mod:`postroom.net.targets` (for tenants that may not reach private
addresses) and connects to exactly the checked address. TLS is verified against the system
trust store (TLS 1.2 or newer), redirects are not followed and proxies from the environment
are not used.
"""

from __future__ import annotations

import logging
import ssl
from collections.abc import Iterable
from urllib.parse import urlsplit

import httpcore
import httpx

import postroom
from postroom.errors import DeliveryError, HttpDeliveryError, exception_chain
from postroom.net.targets import resolve_target

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


async def read_limited(response: httpx.Response, limit: int) -> bytes:
    """The body of ``response``, read until it passes ``limit`` bytes: a result longer than
    ``limit`` means the body was larger (the caller refuses or cuts it)."""
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.aiter_bytes():
        chunks.append(chunk)
        size += len(chunk)
        if size > limit:
            break
    return b"".join(chunks)


def excerpt(content: bytes, limit: int) -> str:
    """The first ``limit`` bytes of a body as text for a person (undecodable bytes replaced,
    ends stripped)."""
    return content[:limit].decode("utf-8", errors="replace").strip()


def as_http_error(exc: DeliveryError) -> HttpDeliveryError:
    """``exc`` as an :class:`HttpDeliveryError` (itself when it is one), the cause kept."""
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


def transport_failure(exc: httpx.TransportError, url: str) -> HttpDeliveryError:
    """A failure before any answer, with the stage it happened in."""
    guard = next((e for e in exception_chain(exc) if isinstance(e, DeliveryError)), None)
    if guard is not None:
        return as_http_error(guard)
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
                content = await read_limited(response, max_bytes)
        except httpx.TransportError as exc:
            raise transport_failure(exc, shown_url(url)) from exc
    if not 200 <= response.status_code < 300:
        raise HttpDeliveryError(
            f"the server answered {response.status_code} {response.reason_phrase}",
            stage="request",
            reply_code=response.status_code,
        )
    if len(content) > max_bytes:
        raise HttpDeliveryError(f"it is larger than {max_bytes // 1024} KiB", stage="request")
    return content
