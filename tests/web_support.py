"""Serving the app on a real uvicorn and socket, in a thread of the test process."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import uvicorn

from postroom.config import Settings
from postroom.web.app import create_app

from smtp_servers import free_port

ADMIN = "admin-token-for-tests-0123456789"


@contextmanager
def serving(settings: Settings, **kwargs: Any) -> Iterator[str]:
    """Serve ``create_app(settings, **kwargs)`` until the block ends; yield its base URL."""
    kwargs.setdefault("admin_token", ADMIN)
    app = create_app(settings, **kwargs)
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(
            app,
            host="127.0.0.1",
            port=port,
            log_level="warning",
            lifespan="on",
            proxy_headers=False,  # as `postroom serve`: the app trusts serve.trusted_proxies
        )
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the app did not start"
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=20)


AUTH = {"Authorization": f"Bearer {ADMIN}"}


def assert_error(response: httpx.Response, code: int) -> dict[str, Any]:
    """Assert an error answer of status ``code`` in the JSON error shape; return its object."""
    assert response.status_code == code, response.text
    assert response.headers["content-type"].startswith("application/json")
    error = response.json()["error"]
    assert error["code"] == code and error["status"] and error["reason"] and error["message"]
    return dict(error)


def wait_for_status(http: httpx.Client, message_id: str, wanted: set[str]) -> dict[str, Any]:
    """The message as the admin API shows it, once its status is one of ``wanted``."""
    deadline = time.monotonic() + 15
    while True:
        shown: dict[str, Any] = http.get(
            f"/admin/courier/messages/{message_id}", headers=AUTH
        ).json()
        if shown["status"] in wanted:
            return shown
        assert time.monotonic() < deadline, shown
        time.sleep(0.05)
