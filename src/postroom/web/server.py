"""Running the app under uvicorn, and what ``serve`` checks before it listens."""

from __future__ import annotations

import errno
import signal
import socket
from types import FrameType

import uvicorn
from fastapi import FastAPI

from postroom.config.networks import is_loopback
from postroom.errors import ConfigError, InputError

MIN_ADMIN_TOKEN = 32
"""Characters an admin token needs when ``serve`` listens beyond loopback."""
MAKE_A_TOKEN = (
    "make one with `python -c 'import secrets; print(secrets.token_urlsafe(32))'` or "
    "`openssl rand -base64 32`"
)


def check_listen(host: str, *, dev: bool, admin_token: str | None) -> None:
    """Refuse to listen where the admin token would not protect enough: ``--dev`` (no
    sign-in) beyond loopback, and beyond loopback without an admin token of
    :data:`MIN_ADMIN_TOKEN` characters or more. Raise ``InputError`` or ``ConfigError``."""
    if is_loopback(host):
        return
    if dev:
        raise InputError(
            f"--dev listens on loopback only (127.0.0.1, ::1 or localhost), not {host!r}",
            field="--host",
        )
    if not admin_token:
        raise ConfigError(
            f"refusing to listen on {host} without an admin token; set serve.admin_token "
            f"(or SERVE_ADMIN_TOKEN) to a random string of {MIN_ADMIN_TOKEN}+ characters "
            f"({MAKE_A_TOKEN}), or listen on 127.0.0.1",
            path="serve.admin_token",
        )
    if len(admin_token) < MIN_ADMIN_TOKEN:
        raise ConfigError(
            f"is {len(admin_token)} characters long; listening on {host}, beyond loopback, "
            f"needs {MIN_ADMIN_TOKEN} or more: {MAKE_A_TOKEN}, and set it as "
            "serve.admin_token (or SERVE_ADMIN_TOKEN)",
            path="serve.admin_token",
        )


class GracefulServer(uvicorn.Server):
    """uvicorn re-raises SIGTERM after its graceful shutdown; Postroom's graceful stop exits 0."""

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        """Stop serving; a second Ctrl-C forces the exit."""
        if self.should_exit and sig == signal.SIGINT:
            self.force_exit = True
        self.should_exit = True


def bind(host: str, port: int) -> socket.socket:
    """A listening socket on ``host``:``port``; raise :class:`InputError` saying how to pick
    another port when this one is taken or not allowed."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise InputError(f"cannot listen on {host!r}: {exc.strerror}", field="--host") from exc
    family, _type, _proto, _name, address = infos[0]
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
        sock.listen(2048)
    except OSError as exc:
        sock.close()
        how = "pick another with --port, or SERVE_PORT (`SERVE_PORT=4437 make run`)"
        if exc.errno == errno.EADDRINUSE:
            raise InputError(
                f"port {port} on {host} is already in use (another `postroom serve` or "
                f"`make run`?); stop that one or {how}",
                field="--port",
            ) from exc
        if exc.errno == errno.EACCES:
            raise InputError(
                f"may not listen on port {port} (ports below 1024 need privileges); {how}",
                field="--port",
            ) from exc
        raise InputError(f"cannot listen on {host}:{port}: {exc.strerror}", field="--host") from exc
    return sock


def run_server(app: FastAPI, *, sock: socket.socket) -> None:
    """Serve ``app`` on the bound ``sock`` until SIGTERM or Ctrl-C; the app's lifespan stops
    its worker cleanly."""
    # The app reads X-Forwarded-For itself, from serve.trusted_proxies only: uvicorn's own
    # default would trust any local peer's header.
    config = uvicorn.Config(app, log_level="warning", proxy_headers=False)
    GracefulServer(config).run(sockets=[sock])
