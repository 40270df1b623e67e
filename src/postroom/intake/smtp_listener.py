"""The SMTP submission listener: identity systems that only speak SMTP (Keycloak, authentik,
Authelia, ZITADEL, Supabase Auth, Django...) hand Postroom their mail here.

A thin adapter over the same enqueue path as the API: the message is stored (one per
recipient) before the ``250`` to end-of-data, or the client gets ``451 4.3.0``. Every refusal
carries an enhanced status code and is written to the refusal log.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import errno
import logging
import socket
import ssl
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, cast

from aiosmtpd.smtp import SMTP, AuthResult

from postroom.config import Settings
from postroom.config.listener import IDLE_TIMEOUT, MAX_PER_CLIENT
from postroom.config.networks import is_loopback
from postroom.errors import ConfigError, InputError, RecipientLimitError, SuppressedError
from postroom.intake.relay import (
    Submission,
    bare_line_break,
    build_messages,
    read_postroom_headers,
    store_submission,
)
from postroom.intake.smtp_auth import (
    Authenticator,
    LockedOut,
    Login,
    RefusalLog,
    allow_from_tenant,
)
from postroom.intake.validate import validate_address
from postroom.store import Store

log = logging.getLogger("postroom.listener")
# aiosmtpd warns at every successful AUTH about an attribute only it sets.
logging.getLogger("mail.log").addFilter(
    lambda record: "login_data is deprecated" not in record.getMessage()
)
DEV_PORT = 2525

# aiosmtpd's own replies, given an enhanced status code and a reason for the refusal log.
_STOCK: dict[str, tuple[str, str]] = {
    "552 Error: Too much mail data": ("552 5.3.4 Message too big", "the message is too big"),
    "552 Error: message size exceeds fixed maximum message size": (
        "552 5.3.4 Message too big",
        "the message is too big (announced in MAIL FROM SIZE=)",
    ),
    "553 5.1.3 Error: malformed address": (
        "553 5.1.3 Address cannot be parsed",
        "an address in MAIL FROM or RCPT TO cannot be parsed",
    ),
}


@dataclass(frozen=True, slots=True)
class BoundSocket:
    """A listening socket and whether it speaks TLS from the first byte (implicit TLS)."""

    sock: socket.socket
    implicit_tls: bool

    @property
    def port(self) -> int:
        """The port it listens on."""
        return int(self.sock.getsockname()[1])


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    sock.listen(256)
    sock.setblocking(False)
    return sock


def bind_sockets(settings: Settings, *, dev: bool) -> list[BoundSocket]:
    """Open the listener's sockets before the banner is printed: ``listener.smtp.port`` (and
    ``tls_port``), or for ``--dev`` without configuration 127.0.0.1:2525, or any free port when
    2525 is taken. Raise :class:`ConfigError` when a configured port cannot be opened."""
    smtp = settings.listener.smtp
    if dev and not settings.listener.smtp_enabled:
        try:
            return [BoundSocket(_bind("127.0.0.1", DEV_PORT), False)]
        except OSError as exc:
            if exc.errno != errno.EADDRINUSE:
                raise
            return [BoundSocket(_bind("127.0.0.1", 0), False)]
    out = []
    for port, implicit, key in ((smtp.port, False, "port"), (smtp.tls_port, True, "tls_port")):
        if port is None or (implicit and dev):  # --dev listens without TLS
            continue
        try:
            out.append(BoundSocket(_bind(smtp.host, port), implicit))
        except OSError as exc:
            for bound in out:
                bound.sock.close()
            raise ConfigError(
                f"cannot listen on {smtp.host}:{port}: {exc.strerror}; choose a free port",
                path=f"listener.smtp.{key}",
            ) from None
    return out


def listener_banner(settings: Settings, sockets: Sequence[BoundSocket], *, dev: bool) -> list[str]:
    """The lines ``serve`` prints about the SMTP listener (none when it is off)."""
    lines = []
    for bound in sockets:
        host = bound.sock.getsockname()[0]
        if dev:
            moved = "" if bound.port == DEV_PORT else f" ({DEV_PORT} was taken)"
            lines.append(
                f"SMTP listener (dev) on {host}:{bound.port}{moved}: no TLS, no login; "
                "mail goes to tenant default"
            )
        else:
            kind = (
                "implicit TLS"
                if bound.implicit_tls
                else "STARTTLS"
                if settings.listener.smtp.cert_path
                else "no TLS"
            )
            lines.append(f"SMTP listener on {host}:{bound.port} ({kind})")
    return lines


def tls_context(settings: Settings) -> ssl.SSLContext | None:
    """The server's TLS context from ``cert_path``/``key_path`` (None when unset)."""
    smtp = settings.listener.smtp
    if not smtp.cert_path or not smtp.key_path:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(smtp.cert_path, smtp.key_path)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(
            f"cannot load the certificate {smtp.cert_path} with its key {smtp.key_path}: "
            f"{getattr(exc, 'strerror', None) or exc}; give PEM files that belong together",
            path="listener.smtp.cert_path",
        ) from None
    return context


class Listener:
    """The SMTP listener of one ``serve`` process; see the module docstring."""

    def __init__(
        self,
        store: Store,
        settings: Callable[[], Awaitable[Settings]],
        base: Settings,
        *,
        dev: bool = False,
    ) -> None:
        self.store = store
        self.settings = settings
        self.base = base
        self.dev = dev
        self.auth = Authenticator(settings, store)
        self.refusals = RefusalLog(store)
        self.tls = None if dev else tls_context(base)
        self.connections: dict[str, int] = {}
        self.sessions: set[_Session] = set()
        self.ports: dict[str, int] = {}  # "port" and "tls_port" as bound
        self._servers: list[asyncio.Server] = []

    async def start(self, sockets: Sequence[BoundSocket]) -> None:
        """Accept connections on ``sockets``."""
        loop = asyncio.get_running_loop()
        for bound in sockets:
            implicit = bound.implicit_tls
            self.ports["tls_port" if implicit else "port"] = bound.port

            def factory(implicit: bool = implicit) -> _Session:
                return _Session(self, implicit_tls=implicit)

            server = await loop.create_server(
                factory, sock=bound.sock, ssl=self.tls if implicit else None
            )
            self._servers.append(server)

    async def stop(self) -> None:
        """Stop accepting, close sessions, and write the refusals still waiting."""
        for server in self._servers:
            server.close()
        for session in list(self.sessions):
            if session.transport is not None:
                session.transport.close()
        for server in self._servers:
            await server.wait_closed()
        await self.refusals.close()

    def admit(self, client: str) -> str | None:
        """Count a new connection; the refusal reply when there are too many."""
        limit = self.base.listener.smtp.max_connections
        if sum(self.connections.values()) >= limit:
            return f"421 4.7.0 Too many connections (at most {limit}); try again later"
        if self.connections.get(client, 0) >= MAX_PER_CLIENT:
            return f"421 4.7.0 Too many connections from your address (at most {MAX_PER_CLIENT})"
        self.connections[client] = self.connections.get(client, 0) + 1
        return None

    def release(self, client: str) -> None:
        """A counted connection ended."""
        left = self.connections.get(client, 0) - 1
        if left > 0:
            self.connections[client] = left
        else:
            self.connections.pop(client, None)

    # -- aiosmtpd handler hooks ----------------------------------------------------------

    async def handle_MAIL(
        self, server: _Session, session: Any, envelope: Any, address: str, options: list[str]
    ) -> str:
        """Check the sender address (the null sender ``<>`` is allowed)."""
        if address:
            try:
                validate_address(address, field="MAIL FROM")
            except InputError as exc:
                return server.refuse("501 5.1.7 Sender address cannot be parsed", str(exc))
        envelope.mail_from = address
        envelope.mail_options.extend(options)
        return "250 2.1.0 OK"

    async def handle_RCPT(
        self, server: _Session, session: Any, envelope: Any, address: str, options: list[str]
    ) -> str:
        """Check the recipient address and the recipient limit."""
        limit = self.base.listener.smtp.max_recipients
        if len(envelope.rcpt_tos) >= limit:
            return server.refuse(
                f"452 4.5.3 Too many recipients (at most {limit} per message)",
                f"more than {limit} recipients (listener.smtp.max_recipients)",
            )
        try:
            validate_address(address, field="RCPT TO")
        except InputError as exc:
            return server.refuse("553 5.1.3 Recipient address cannot be parsed", str(exc))
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server: _Session, session: Any, envelope: Any) -> str:
        """Store one message per recipient, then answer 250; 451 when the store fails."""
        raw: bytes = envelope.original_content or b""
        if bare_line_break(raw):
            return server.refuse(
                "500 5.5.2 Bare CR or LF in the message; end every line with CRLF",
                "a bare CR or LF in the data (SMTP smuggling is refused)",
            )
        settings = await self.settings()
        login: Login | None = session.auth_data if session.authenticated else None
        if login is not None:
            tenant, priority = login.tenant, login.priority
        else:
            tenant = allow_from_tenant(settings, server.client) or "default"
            priority = "normal" if not self.dev else "urgent"
        if tenant not in settings.tenant_names():
            return server.refuse(
                "550 5.7.1 This login's tenant no longer exists",
                f"tenant {tenant!r} is gone",
                username=login.username if login else None,
            )
        from_raw, extra = await asyncio.to_thread(read_postroom_headers, raw)
        submission = Submission(
            tenant=tenant,
            mail_from=envelope.mail_from or "",
            recipients=tuple(envelope.rcpt_tos),
            raw=from_raw,
            priority=priority,
            extra=extra,
        )
        try:
            prepared = await asyncio.to_thread(build_messages, submission, settings.tenant(tenant))
        except InputError as exc:
            return server.refuse(f"554 5.6.0 {exc}", str(exc), tenant=tenant)
        try:
            stored = await store_submission(self.store, settings, prepared)
        except RecipientLimitError as exc:  # a per-recipient limit: try again later
            return server.refuse(f"450 4.7.1 {exc}", str(exc), tenant=tenant)
        except SuppressedError as exc:  # permanent: the client must not try again
            why = " ".join(exc.reason.split())
            reply = f"550 5.7.1 {exc.address} is on the suppression list ({why})"
            return server.refuse(reply, str(exc), tenant=tenant)
        except ConfigError as exc:  # the tenant's DKIM key cannot be loaded: nothing stored
            return server.refuse(
                "451 4.3.5 The tenant's DKIM key cannot be loaded; try again later",
                str(exc),
                tenant=tenant,
            )
        except Exception as exc:
            log.exception("the listener could not store a message for tenant %s", tenant)
            return server.refuse(
                "451 4.3.0 Could not store the message; try again later",
                f"the store failed: {type(exc).__name__}",
                tenant=tenant,
            )
        first = stored[0][0].id if stored else "-"
        return f"250 2.0.0 OK: queued as {first} ({len(stored)} recipient(s))"


class _Session(SMTP):
    """One client connection (aiosmtpd's protocol), with Postroom's rules added."""

    def __init__(self, listener: Listener, *, implicit_tls: bool) -> None:
        smtp = listener.base.listener.smtp
        super().__init__(
            listener,
            data_size_limit=smtp.max_message_size,
            enable_SMTPUTF8=True,
            hostname=smtp.shown_host if not listener.dev else "localhost",
            ident="Postroom ESMTP",
            tls_context=None if implicit_tls else listener.tls,
            timeout=IDLE_TIMEOUT,
            auth_require_tls=not implicit_tls,
        )
        self.listener = listener
        self.implicit_tls = implicit_tls
        self.client = "?"
        self._counted = False
        self._refused = False
        self._why: tuple[str, str | None, str | None] | None = None

    # -- connection accounting ------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """Count the connection (refuse it with 421 when over a limit), then greet."""
        if not self._counted and not self._refused:
            peer = transport.get_extra_info("peername")
            self.client = str(peer[0]) if peer else "?"
            refusal = self.listener.admit(self.client)
            if refusal is not None:
                self._refused = True
                self.listener.refusals.record(self.client, refusal, "too many connections")
                writer = cast(asyncio.WriteTransport, transport)  # uvloop's is not a subclass
                writer.write(refusal.encode() + b"\r\n")
                writer.close()
                return
            self._counted = True
            self.listener.sessions.add(self)
            loopback = is_loopback(self.client)
            self._auth_require_tls = not (self.implicit_tls or loopback)
            settings = self.listener.base
            allowed = self.listener.dev or allow_from_tenant(settings, self.client) is not None
            self._auth_required = not allowed
        super().connection_made(transport)

    def connection_lost(self, error: Exception | None) -> None:
        """Release the connection's slot."""
        if self._refused:
            return
        if self._counted:
            self._counted = False
            self.listener.release(self.client)
            self.listener.sessions.discard(self)
        super().connection_lost(error)

    def eof_received(self) -> bool | None:
        """The client closed its side."""
        if self._refused:
            return False
        result: bool | None = super().eof_received()
        return result

    # -- refusals -------------------------------------------------------------------------

    def refuse(
        self,
        reply: str,
        reason: str,
        *,
        username: str | None = None,
        tenant: str | None = None,
    ) -> str:
        """Remember why ``reply`` is sent, for the refusal log; return ``reply``."""
        self._why = (reason, username, tenant)
        return reply

    async def push(self, status: Any) -> None:
        """Send a reply; a 4xx or 5xx one is written to the refusal log."""
        if isinstance(status, str) and status[:1] in ("4", "5"):
            if status in _STOCK:
                status, reason = _STOCK[status]
                if status.startswith("552"):
                    limit = self.listener.base.listener.smtp.max_message_size
                    status += f": at most {limit} bytes"
            elif status.startswith("538"):
                reason = "AUTH before STARTTLS from a client beyond loopback"
            elif status.startswith("530"):
                reason = "no AUTH, and the client's address is in no tenant's allow_from"
            else:
                reason = status
            username = tenant = None
            if self._why is not None:
                reason, username, tenant = self._why
                self._why = None
            self.listener.refusals.record(
                self.client, status, reason, username=username, tenant=tenant
            )
        await super().push(status)

    # -- AUTH -----------------------------------------------------------------------------

    async def _login(self, mechanism: str, username: bytes, password: bytes) -> AuthResult:
        try:
            name, secret = username.decode(), password.decode()
        except UnicodeDecodeError:
            name, secret = username.decode("utf-8", "replace"), ""
        try:
            login = await self.listener.auth.check(name, secret, client=self.client)
        except LockedOut as locked:
            minutes = max(1, round(locked.seconds / 60))
            reply = self.refuse(
                f"454 4.7.0 Too many failed logins for this username from your address; "
                f"try again in {minutes} minute(s)",
                "locked out after repeated wrong passwords",
                username=name[:128],
            )
            return AuthResult(success=False, handled=False, message=reply)
        if login is None:
            reply = self.refuse(
                "535 5.7.8 Authentication credentials invalid",
                f"wrong username or password ({mechanism})",
                username=name[:128],
            )
            return AuthResult(success=False, handled=False, message=reply)
        return AuthResult(success=True, auth_data=login)

    async def auth_PLAIN(self, _: Any, args: list[str]) -> AuthResult:
        """AUTH PLAIN, with the answer on the line or after a challenge."""
        blob: object = await self.challenge_auth("") if len(args) == 1 else _b64(args[1])
        if not isinstance(blob, bytes):
            if len(args) > 1:
                await self.push("501 5.5.2 Cannot decode base64")
            return AuthResult(success=False, handled=True)
        parts = blob.split(b"\x00")
        if len(parts) != 3:
            await self.push("501 5.5.2 Cannot split the AUTH PLAIN answer")
            return AuthResult(success=False, handled=True)
        return await self._login("PLAIN", parts[1], parts[2])

    async def auth_LOGIN(self, _: Any, args: list[str]) -> AuthResult:
        """AUTH LOGIN: username and password after challenges."""
        if len(args) == 1:
            user = await self.challenge_auth("Username:")
        else:
            user = _b64(args[1]) or b""
        if not isinstance(user, bytes):
            return AuthResult(success=False, handled=True)
        password = await self.challenge_auth("Password:")
        if not isinstance(password, bytes):
            return AuthResult(success=False, handled=True)
        return await self._login("LOGIN", user, password)


def _b64(text: str) -> bytes | None:
    try:
        return base64.b64decode(text.encode(), validate=True)
    except (binascii.Error, ValueError):
        return None
