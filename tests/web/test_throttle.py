"""Guessing tokens is throttled per client address: after ten wrong tokens (admin or intake,
API or dashboard sign-in) the address gets 429 with Retry-After, whatever it presents, while
other addresses go on; X-Forwarded-For names the client only behind serve.trusted_proxies."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from postroom.config import Settings
from postroom.config.loader import load_settings
from postroom.config.tenants import TenantRegistry
from postroom.errors import ConfigError
from postroom.web.throttle import FAILURES, WINDOW, Throttle

from procs import POSTROOM, clean_env
from smtp_servers import free_port
from web_support import ADMIN, AUTH, assert_error, serving

INTAKE = "acme-intake-token-0123456789"
WRONG = {"Authorization": "Bearer a-wrong-guess-0123456789-0123456789"}
ORY = {"recipient": "a@example.org", "template_type": "login_code_valid", "login_code": "1"}


@contextmanager
def client_at(base: str, address: str) -> Iterator[httpx.Client]:
    """An HTTP client connecting from ``address`` (any 127.x.y.z is this machine)."""
    transport = httpx.HTTPTransport(local_address=address)
    with httpx.Client(base_url=base, transport=transport, timeout=30) as http:
        yield http


def test_wrong_tokens_from_one_address_get_429_and_other_addresses_go_on(
    settings_with: Callable[..., Settings],
) -> None:
    settings = settings_with(tenants={"acme": {"courier": {"intake_tokens": [INTAKE]}}})
    intake = {"Authorization": f"Bearer {INTAKE}"}
    with (
        serving(settings, run_worker=False) as base,
        client_at(base, "127.0.0.1") as guesser,
        client_at(base, "127.0.0.2") as neighbour,
    ):
        for n in range(FAILURES):
            # The successes in between do not count ...
            assert guesser.post("/intake/ory/acme", json=ORY, headers=intake).status_code == 202
            # ... and wrong admin and intake tokens count together.
            if n % 2:
                assert_error(guesser.get("/admin/courier/messages", headers=WRONG), 401)
            else:
                assert_error(guesser.post("/intake/ory/acme", json=ORY, headers=WRONG), 401)
        refused = guesser.get("/admin/courier/messages", headers=AUTH)  # even the right token
        assert "try again in" in assert_error(refused, 429)["reason"]
        assert 0 < int(refused.headers["retry-after"]) <= WINDOW
        assert_error(guesser.post("/intake/ory/acme", json=ORY, headers=intake), 429)
        assert_error(guesser.post("/intake/ory/acme", json=ORY, headers=WRONG), 429)
        # Another address is not affected, neither its successes nor its own failures.
        assert neighbour.get("/admin/courier/messages", headers=AUTH).status_code == 200
        assert_error(neighbour.get("/admin/courier/messages", headers=WRONG), 401)
        assert neighbour.post("/intake/ory/acme", json=ORY, headers=intake).status_code == 202


def test_a_burst_of_guesses_gets_no_more_than_the_limit(
    settings_with: Callable[..., Settings],
) -> None:
    settings = settings_with(tenants={"acme": {"courier": {"intake_tokens": [INTAKE]}}})
    with serving(settings, run_worker=False) as base, httpx.Client(base_url=base) as http:

        def guess(n: int) -> int:
            bearer = {"Authorization": f"Bearer guess-{n:04d}-0123456789-0123456789"}
            return http.post("/intake/ory/acme", json=ORY, headers=bearer).status_code

        with ThreadPoolExecutor(12) as pool:
            answers = list(pool.map(guess, range(40)))
    assert answers.count(401) == FAILURES
    assert answers.count(429) == 40 - FAILURES


def test_behind_trusted_proxies_the_client_is_the_right_most_untrusted_hop(
    settings_with: Callable[..., Settings],
) -> None:
    settings = settings_with(serve={"trusted_proxies": ["127.0.0.1", "10.0.0.0/8"]})
    with serving(settings, run_worker=False) as base, httpx.Client(base_url=base) as http:

        def admin(forwarded_for: str, headers: dict[str, str] = AUTH) -> httpx.Response:
            return http.get(
                "/admin/courier/messages", headers={**headers, "X-Forwarded-For": forwarded_for}
            )

        for _ in range(FAILURES):
            assert_error(admin("203.0.113.5", WRONG), 401)
        assert_error(admin("203.0.113.5"), 429)
        # What the client itself writes in front does not change who it is ...
        assert_error(admin("198.51.100.77, 203.0.113.5"), 429)
        # ... nor does a second trusted proxy behind the first.
        assert_error(admin("203.0.113.5, 10.1.2.3"), 429)
        # Another client behind the same proxy goes on.
        assert admin("203.0.113.6").status_code == 200
        # IPv6 clients count per /64: the next address in the same network is the same client.
        for _ in range(FAILURES):
            assert_error(admin("2001:db8::1", WRONG), 401)
        assert_error(admin("2001:db8::2"), 429)
        assert admin("2001:db8:0:1::1").status_code == 200


def test_serve_ignores_x_forwarded_for_unless_the_peer_is_a_trusted_proxy(
    tmp_path: Path,
) -> None:
    port = free_port()
    with open(tmp_path / "serve.log", "wb") as log:
        proc = subprocess.Popen(
            [*POSTROOM, "serve", "--port", str(port), "--no-worker"],
            cwd=tmp_path,
            env=clean_env(SERVE_ADMIN_TOKEN=ADMIN),
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.get(f"{base}/health/alive", timeout=1)
                break
            except httpx.TransportError:
                assert proc.poll() is None, (tmp_path / "serve.log").read_text()
                assert time.monotonic() < deadline, "serve did not start"
                time.sleep(0.1)
        with httpx.Client(base_url=base) as http:
            for n in range(FAILURES):  # a new made-up address with every guess
                spoofed = {**WRONG, "X-Forwarded-For": f"198.51.100.{n}"}
                assert_error(http.get("/admin/courier/messages", headers=spoofed), 401)
            spoofed = {**AUTH, "X-Forwarded-For": "198.51.100.200"}
            assert_error(http.get("/admin/courier/messages", headers=spoofed), 429)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=20)


def test_trusted_proxies_are_addresses_or_networks(tmp_path: Path) -> None:
    loaded = load_settings(None, environ={"SERVE_TRUSTED_PROXIES": "127.0.0.1, 10.0.0.0/8"})
    assert loaded.settings.serve.trusted_proxies == ["127.0.0.1/32", "10.0.0.0/8"]
    assert load_settings(None, environ={}).settings.serve.trusted_proxies == []
    config = tmp_path / "postroom.yaml"
    config.write_text("serve: {trusted_proxies: [proxy.example]}\n")
    with pytest.raises(ConfigError) as caught:
        load_settings(config, environ={})
    assert "serve.trusted_proxies" in str(caught.value)
    assert "'proxy.example' is not an IP address or network" in str(caught.value)


def test_failures_leave_the_window_and_forgotten_addresses_make_room() -> None:
    now = [1000.0]
    throttle = Throttle(failures=3, window=60, max_clients=2, clock=lambda: now[0])
    for _ in range(3):
        throttle.failed("a")
        now[0] += 10
    assert throttle.retry_after("a") == 30  # the first failure leaves the window at 1060
    now[0] += 30
    assert throttle.retry_after("a") == 0
    for client in ("b", "c", "d"):
        for _ in range(3):
            throttle.failed(client)
    assert throttle.retry_after("b") == 0  # forgotten: at most two addresses are kept
    assert throttle.retry_after("d") > 0


def test_a_burst_of_valid_intake_requests_is_never_throttled(
    settings_with: Callable[..., Settings], monkeypatch: pytest.MonkeyPatch
) -> None:
    # A store that takes a while to answer (PostgreSQL under load): a caller's burst of good
    # requests must not be counted as guesses while their lookups wait.
    slow_read = TenantRegistry.settings

    async def slow(self: TenantRegistry) -> Settings:
        await asyncio.sleep(0.05)
        return await slow_read(self)

    monkeypatch.setattr(TenantRegistry, "settings", slow)
    settings = settings_with(tenants={"acme": {"courier": {"intake_tokens": [INTAKE]}}})
    intake = {"Authorization": f"Bearer {INTAKE}"}
    with serving(settings, run_worker=False) as base, httpx.Client(base_url=base) as http:
        assert http.post("/intake/ory/acme", json=ORY, headers=intake).status_code == 202

        def post(_n: int) -> int:
            return http.post("/intake/ory/acme", json=ORY, headers=intake).status_code

        with ThreadPoolExecutor(12) as pool:
            answers = list(pool.map(post, range(3 * FAILURES)))
    assert answers == [202] * (3 * FAILURES)
