"""The SMTP listener's ports: opening its sockets before ``serve`` prints its banner, the lines
of that banner, and the server's TLS context from ``listener.smtp.cert_path``/``key_path``."""

from __future__ import annotations

import errno
import socket
import ssl
from collections.abc import Sequence
from dataclasses import dataclass

from postroom.config import Settings
from postroom.errors import ConfigError

DEV_PORT = 2525


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
