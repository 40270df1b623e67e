"""`postroom serve --dev` as `make run` starts it: health checks answer, and the worker in
the same process delivers what the CLI enqueues. And where `serve` refuses to listen: --dev or
no admin token beyond loopback (an address, or the word localhost, not a look-alike name), and
an admin token shorter than 32 characters beyond loopback."""

from __future__ import annotations

import signal
import socket
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from postroom.web.server import is_loopback

from procs import POSTROOM, clean_env
from smtp_servers import free_port


def test_serve_dev_answers_health_and_delivers_to_the_outbox(tmp_path: Path) -> None:
    env = clean_env()
    port = free_port()
    with open(tmp_path / "serve.log", "wb") as log:
        proc = subprocess.Popen(
            [*POSTROOM, "serve", "--dev", "--port", str(port)],
            cwd=tmp_path,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while True:
            try:
                alive = httpx.get(f"{base}/health/alive", timeout=1)
                break
            except httpx.TransportError:
                assert proc.poll() is None, (tmp_path / "serve.log").read_text()
                assert time.monotonic() < deadline, "serve did not start"
                time.sleep(0.1)
        assert alive.status_code == 200
        ready = httpx.get(f"{base}/health/ready", timeout=5)
        assert ready.status_code == 200
        assert ready.json() == {"status": "ok"}

        sent = subprocess.run(
            [
                *POSTROOM,
                "send",
                "--to",
                "you@example.org",
                "--template",
                "login_code_valid",
                "--data",
                '{"login_code": "424242"}',
            ],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert sent.returncode == 0, sent.stderr
        message_id = sent.stdout.strip()
        eml = tmp_path / "var" / "outbox" / f"{message_id}.eml"
        deadline = time.monotonic() + 10
        while not eml.exists():
            assert time.monotonic() < deadline, "the in-process worker did not deliver"
            time.sleep(0.1)
        assert b"424242" in eml.read_bytes()
        page = httpx.get(f"{base}/messages", timeout=5)  # the dashboard, no sign-in in --dev
        assert "you@example.org" in page.text
        # What a developer tries first: a tenant with a password, pointing at a local Mailpit.
        mailpit = {
            "smtp": {
                "connection_uri": "smtp://dev:secret@localhost:1025/?disable_starttls=true",
                "from_address": "no-reply@example.org",
            }
        }
        saved = httpx.put(f"{base}/admin/tenants/mailpit", json=mailpit, timeout=10)
        assert saved.status_code == 200, saved.text
        assert "secret" not in saved.text
        secret_file = tmp_path / "var" / "dev-secret"
        assert secret_file.stat().st_mode & 0o777 == 0o600
    finally:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=20)
    log_text = (tmp_path / "serve.log").read_text()
    assert code == 0, log_text
    assert f"http://127.0.0.1:{port}/" in log_text
    assert "var/dev-secret" in log_text and "Mailpit" in log_text


def test_a_taken_port_is_refused_with_a_way_out_and_no_banner(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        stderr = serve_refused(tmp_path, "--dev", "--port", str(port))
    assert f"port {port} on 127.0.0.1 is already in use" in stderr
    assert "--port" in stderr and "SERVE_PORT" in stderr
    assert "listening on" not in stderr


def test_a_port_out_of_range_is_refused(tmp_path: Path) -> None:
    stderr = serve_refused(tmp_path, "--dev", "--port", "80000")
    assert "--port" in stderr and "65535" in stderr


def test_serve_refuses_a_public_address_without_an_admin_token(tmp_path: Path) -> None:
    env = clean_env()
    proc = subprocess.run(
        [*POSTROOM, "serve", "--host", "0.0.0.0", "--port", str(free_port())],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert proc.returncode == 2
    assert "admin token" in proc.stderr
    assert "Traceback" not in proc.stderr


def serve_refused(tmp_path: Path, *args: str, **env: str) -> str:
    """Run `postroom serve ARGS`, which must refuse to start (exit 2); return its stderr."""
    proc = subprocess.run(
        [*POSTROOM, "serve", "--port", str(free_port()), *args],
        cwd=tmp_path,
        env=clean_env(**env),
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    return proc.stderr


@pytest.mark.parametrize("host", ["127.0.0.1.example", "127.evil.example", "localhost.example"])
def test_a_name_that_starts_like_loopback_is_not_loopback(tmp_path: Path, host: str) -> None:
    # --dev has no sign-in: on such a name it would serve everything to whoever resolves it.
    dev = serve_refused(tmp_path, "--dev", "--host", host)
    assert "--dev listens on loopback only" in dev and host in dev
    # Without a token, a name is not loopback either.
    assert "without an admin token" in serve_refused(tmp_path, "--host", host)


def test_beyond_loopback_the_admin_token_needs_32_characters(tmp_path: Path) -> None:
    short = "s" * 31
    stderr = serve_refused(tmp_path, "--host", "0.0.0.0", SERVE_ADMIN_TOKEN=short)
    assert "serve.admin_token" in stderr and "31 characters" in stderr
    assert "secrets.token_urlsafe(32)" in stderr and "openssl rand -base64 32" in stderr
    assert short not in stderr
    stderr = serve_refused(tmp_path, "--host", "0.0.0.0", SERVE_ADMIN_TOKEN="x")
    assert "1 characters" in stderr


def test_a_token_of_32_characters_serves_beyond_loopback(tmp_path: Path) -> None:
    port = free_port()
    with open(tmp_path / "serve.log", "wb") as log:
        proc = subprocess.Popen(
            [*POSTROOM, "serve", "--host", "0.0.0.0", "--port", str(port), "--no-worker"],
            cwd=tmp_path,
            env=clean_env(SERVE_ADMIN_TOKEN="t" * 32),
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                answer = httpx.get(f"http://127.0.0.1:{port}/health/alive", timeout=1)
                break
            except httpx.TransportError:
                assert proc.poll() is None, (tmp_path / "serve.log").read_text()
                assert time.monotonic() < deadline, "serve did not start"
                time.sleep(0.1)
        assert answer.status_code == 200
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=20)


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.8.9.10", True),
        ("::1", True),
        ("localhost", True),
        ("127.0.0.1.example", False),
        ("localhost.example", False),
        ("LOCALHOST.", False),
        ("0.0.0.0", False),
        ("::", False),
        ("192.168.1.10", False),
        ("", False),
    ],
)
def test_loopback_is_an_address_or_the_word_localhost(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback
