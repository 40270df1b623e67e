"""`postroom serve --dev` as `make run` starts it: health checks answer, and the worker in
the same process delivers what the CLI enqueues."""

from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path

import httpx

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
    finally:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=20)
    assert code == 0, (tmp_path / "serve.log").read_text()
    assert f"http://127.0.0.1:{port}/" in (tmp_path / "serve.log").read_text()


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
