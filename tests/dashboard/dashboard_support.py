"""Helpers for the dashboard's tests: a browser-like HTTP client that signs in and posts forms
with their CSRF token, and creates messages through the admin API."""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from types import TracebackType
from typing import Any

import httpx
import pytest

from web_support import ADMIN, AUTH

CSRF = re.compile(r'name="csrf" value="([^"]+)"')


class Dash:
    """A client that keeps the session cookie, like a browser."""

    def __init__(self, base: str, *, local_address: str | None = None) -> None:
        self.base = base
        # local_address: connect from another loopback address, as another client would.
        transport = httpx.HTTPTransport(local_address=local_address) if local_address else None
        self.http = httpx.Client(
            base_url=base, follow_redirects=False, timeout=30, transport=transport
        )

    def csrf(self, path: str) -> str:
        """The CSRF token of the form on ``path``."""
        page = self.http.get(path)
        found = CSRF.search(page.text)
        assert found, f"no form with a CSRF token on {path}: {page.status_code}"
        return found.group(1)

    def sign_in(self, token: str = ADMIN) -> httpx.Response:
        """Sign in through the form."""
        csrf = self.csrf("/sign-in")
        return self.http.post("/sign-in", data={"csrf": csrf, "token": token, "next": "/"})

    def submit(self, page: str, action: str, data: dict[str, str] | None = None) -> httpx.Response:
        """Post a form of ``page`` to ``action`` with the page's CSRF token."""
        return self.http.post(action, data={"csrf": self.csrf(page), **(data or {})})

    def enqueue(self, **body: Any) -> dict[str, Any]:
        """A message through the admin API (202)."""
        body.setdefault("recipient", "jane@example.org")
        if "subject" not in body:
            body.setdefault("template_type", "login_code_valid")
            body.setdefault("template_data", {"login_code": "246810"})
        response = self.http.post("/admin/courier/messages", json=body, headers=AUTH)
        assert response.status_code == 202, response.text
        return dict(response.json())

    def message(self, message_id: str) -> dict[str, Any]:
        """A message's JSON from the admin API."""
        return dict(self.http.get(f"/admin/courier/messages/{message_id}", headers=AUTH).json())

    def wait_for(self, message_id: str, status: str, timeout: float = 15) -> dict[str, Any]:
        """Poll the API until the message reaches ``status``."""
        deadline = time.monotonic() + timeout
        while True:
            message = self.message(message_id)
            if message["status"] == status:
                return message
            assert time.monotonic() < deadline, f"still {message['status']}: {message}"
            time.sleep(0.05)

    def close(self) -> None:
        """Close the connection pool."""
        self.http.close()

    def __enter__(self) -> Dash:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


@pytest.fixture(name="dash_client")
def dash_client_fixture() -> Iterator[Callable[[str], Dash]]:
    """``dash_client(base_url)``: a fresh :class:`Dash`, closed after the test (import this
    fixture into a test module to use it)."""
    made: list[Dash] = []

    def make(base: str) -> Dash:
        made.append(Dash(base))
        return made[-1]

    yield make
    for client in made:
        client.close()
