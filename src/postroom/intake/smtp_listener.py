"""The SMTP submission listener: identity systems that only speak SMTP (Keycloak, authentik,
Authelia, ZITADEL, Supabase Auth, Django...) hand Postroom their mail here.

A thin adapter over the same enqueue path as the API: the message is stored (one per
recipient) before the ``250`` to end-of-data, or the client gets ``451 4.3.0``. Every refusal
carries an enhanced status code and is written to the refusal log.

This module holds the :class:`Listener` (servers, connection counts, and the MAIL, RCPT and DATA
answers); one client's connection is :mod:`postroom.intake.smtp_session`, the ports and the
banner :mod:`postroom.intake.listener_sockets`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from postroom.config import Settings
from postroom.config.listener import MAX_PER_CLIENT
from postroom.errors import ConfigError, InputError, RecipientLimitError, SuppressedError
from postroom.intake.listener_sockets import BoundSocket, tls_context
from postroom.intake.relay import (
    Submission,
    bare_line_break,
    build_messages,
    read_postroom_headers,
    store_submission,
)
from postroom.intake.smtp_auth import Authenticator, Login, RefusalLog, allow_from_tenant
from postroom.intake.smtp_session import SmtpSession
from postroom.intake.validate import validate_address
from postroom.store import Store

log = logging.getLogger("postroom.listener")


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
        self.sessions: set[SmtpSession] = set()
        self.ports: dict[str, int] = {}  # "port" and "tls_port" as bound
        self._servers: list[asyncio.Server] = []

    async def start(self, sockets: Sequence[BoundSocket]) -> None:
        """Accept connections on ``sockets``."""
        loop = asyncio.get_running_loop()
        for bound in sockets:
            implicit = bound.implicit_tls
            self.ports["tls_port" if implicit else "port"] = bound.port

            def factory(implicit: bool = implicit) -> SmtpSession:
                return SmtpSession(self, implicit_tls=implicit)

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
        self, server: SmtpSession, session: Any, envelope: Any, address: str, options: list[str]
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
        self, server: SmtpSession, session: Any, envelope: Any, address: str, options: list[str]
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

    async def handle_DATA(self, server: SmtpSession, session: Any, envelope: Any) -> str:
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
