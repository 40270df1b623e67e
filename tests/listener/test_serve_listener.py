"""`postroom serve` with its SMTP listener as a real process: `--dev` listens on
127.0.0.1:2525 (another port, printed, when 2525 is taken) without TLS or login, and a burst
of mail survives SIGKILL: every message a client got 250 for is delivered after a restart."""

from __future__ import annotations

import contextlib
import errno
import re
import signal
import smtplib
import socket
import subprocess
import textwrap
import threading
import time
from collections.abc import Iterator
from email import message_from_bytes, policy
from pathlib import Path

from listener_support import mail, wait_until
from procs import POSTROOM, clean_env
from smtp_servers import free_port, smtp_server

BANNER = re.compile(r"SMTP listener \(dev\) on 127\.0\.0\.1:(\d+)(.*)")


@contextlib.contextmanager
def serve(tmp_path: Path, *args: str) -> Iterator[tuple[subprocess.Popen[bytes], Path]]:
    log = tmp_path / f"serve-{time.monotonic_ns()}.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [*POSTROOM, "serve", "--port", str(free_port()), *args],
            cwd=tmp_path,
            env=clean_env(),
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        yield proc, log
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def smtp_ready(port: int) -> bool:
    try:
        with smtplib.SMTP("127.0.0.1", port, timeout=2) as client:
            return client.noop()[0] == 250
    except OSError:
        return False


@contextlib.contextmanager
def port_2525_taken() -> Iterator[None]:
    holder = socket.socket()
    try:
        holder.bind(("127.0.0.1", 2525))
        holder.listen(1)
    except OSError as exc:
        assert exc.errno == errno.EADDRINUSE  # someone else holds it: taken all the same
    try:
        yield
    finally:
        holder.close()


def test_dev_listens_for_smtp_on_another_port_when_2525_is_taken(tmp_path: Path) -> None:
    with port_2525_taken(), serve(tmp_path, "--dev") as (proc, log):
        wait_until(lambda: BANNER.search(log.read_text()) or proc.poll() is not None)
        found = BANNER.search(log.read_text())
        assert found, log.read_text()
        port = int(found.group(1))
        assert port != 2525 and "2525 was taken" in found.group(2)
        assert "no TLS, no login" in found.group(2)
        wait_until(lambda: smtp_ready(port), what="the dev listener")
        with smtplib.SMTP("127.0.0.1", port, timeout=10) as client:
            client.sendmail("app@example.org", ["dev@example.org"], mail())
        outbox = tmp_path / "var" / "outbox"
        wait_until(lambda: list(outbox.glob("*.eml")), what="the outbox file")
    written = message_from_bytes(next(outbox.glob("*.eml")).read_bytes(), policy=policy.default)
    assert written["Subject"] == "Votre code: 123456 ✓"


def test_every_acknowledged_message_survives_sigkill(tmp_path: Path) -> None:
    sink_port, smtp_port = free_port(), free_port()
    config = tmp_path / "postroom.yaml"
    config.write_text(
        textwrap.dedent(f"""\
            dsn: sqlite:///{tmp_path / "postroom.db"}
            serve: {{admin_token: an-admin-token-for-the-sigkill-test-0001}}
            listener:
              smtp: {{host: 127.0.0.1, port: {smtp_port}}}
            courier:
              smtp:
                connection_uri: smtp://127.0.0.1:{sink_port}/?disable_starttls=true
                from_address: no-reply@example.org
              retry: {{initial: 50ms, max: 200ms}}
              message_retries: 100
              worker: {{lease: 2s}}  # what the killed process held is taken over soon
              listener:
                logins: [{{username: keycloak, password: a-chosen-password-0001}}]
            """)
    )
    acked: list[str] = []
    stop = threading.Event()

    def client(n: int) -> None:
        sent = 0
        while not stop.is_set():
            to = f"u{n}-{sent}@example.org"
            try:
                with smtplib.SMTP("127.0.0.1", smtp_port, timeout=10) as smtp:
                    smtp.login("keycloak", "a-chosen-password-0001")
                    smtp.sendmail("keycloak@example.org", [to], mail())
            except (OSError, smtplib.SMTPException):
                return  # killed mid-conversation: this one was never acknowledged
            acked.append(to)
            sent += 1

    with serve(tmp_path, "--config", str(config)) as (proc, log):
        wait_until(lambda: smtp_ready(smtp_port) or proc.poll() is not None, what="serve")
        assert proc.poll() is None, log.read_text()
        threads = [threading.Thread(target=client, args=(n,)) for n in range(8)]
        for thread in threads:
            thread.start()
        wait_until(lambda: len(acked) >= 80, what="a burst of acknowledged messages")
        proc.send_signal(signal.SIGKILL)  # no shutdown at all, clients mid-conversation
        proc.wait()
        stop.set()
        for thread in threads:
            thread.join()
    assert len(acked) >= 80
    with smtp_server(port=sink_port) as sink, serve(tmp_path, "--config", str(config)):
        wait_until(
            lambda: {m.rcpt_tos[0] for m in sink.rec.messages} >= set(acked),
            timeout=60,
            what=f"every acknowledged message delivered after the restart ({len(acked)})",
        )
    delivered = [m.rcpt_tos[0] for m in sink.rec.messages]
    assert set(acked) <= set(delivered)
