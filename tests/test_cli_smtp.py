"""The CLI end to end over SMTP, configured only by environment variables, as the README's
tour does it: send, worker --drain, messages list/show."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from conftest import Pki
from procs import clean_env, postroom
from smtp_servers import smtp_server


def run(args: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return postroom(cwd, *args, env=env)


def test_env_configured_smtp_delivery_and_a_clear_failure(tmp_path: Path, pki: Pki) -> None:
    users = {"alice": "s3cret"}
    with smtp_server(starttls=pki.server_context(), users=users) as srv:
        env = clean_env(
            COURIER_SMTP_CONNECTION_URI=f"smtp://alice:s3cret@localhost:{srv.port}/",
            COURIER_SMTP_FROM_ADDRESS="no-reply@example.org",
            SSL_CERT_FILE=str(pki.ca_file),
        )
        sent = run(
            [
                "send",
                "--to",
                "you@example.org",
                "--template",
                "login_code_valid",
                "--data",
                '{"login_code": "777111"}',
            ],
            tmp_path,
            env,
        )
        assert sent.returncode == 0, sent.stderr
        good_id = sent.stdout.strip()
        wrong = dict(env, COURIER_SMTP_CONNECTION_URI=f"smtp://alice:wrong@localhost:{srv.port}/")
        drained = run(["worker", "--drain"], tmp_path, env)
        assert drained.returncode == 0, drained.stderr
        run(["send", "--to", "other@example.org", "--template", "test"], tmp_path, wrong)
        failed = run(["worker", "--drain"], tmp_path, wrong)
        assert failed.returncode == 0, failed.stderr

    assert len(srv.rec.messages) == 1
    assert b"777111" in srv.rec.messages[0].content
    assert srv.rec.messages[0].tls

    listed = run(["messages", "list", "--json"], tmp_path, env)
    rows = json.loads(listed.stdout)
    assert [(r["recipient"], r["status"]) for r in rows] == [
        ("other@example.org", "abandoned"),
        ("you@example.org", "sent"),
    ]
    bad_id = rows[0]["id"]
    shown = run(["messages", "show", bad_id], tmp_path, env)
    assert shown.returncode == 0
    assert "auth_failed" in shown.stdout
    assert "535" in shown.stdout
    assert "wrong" not in shown.stdout + shown.stderr + failed.stderr
    good = json.loads(run(["messages", "show", good_id, "--json"], tmp_path, env).stdout)
    assert good["status"] == "sent"
    [handoff] = good["dispatches"]
    queue_id = srv.rec.messages[0].queue_id
    assert (handoff["status"], handoff["transport"], handoff["host"]) == (
        "success",
        "smtp",
        f"localhost:{srv.port}",
    )
    assert handoff["reply"] == f"250 2.0.0 Ok: queued as {queue_id}"
    assert handoff["provider_message_id"] == queue_id
    shown_good = run(["messages", "show", good_id], tmp_path, env).stdout
    assert "transport  smtp" in shown_good and f"queued as {queue_id}" in shown_good
    by_provider = run(["messages", "list", "--provider-id", queue_id, "--json"], tmp_path, env)
    assert [r["id"] for r in json.loads(by_provider.stdout)] == [good_id]


def test_drain_max_wait_waits_for_a_retry_that_falls_due(tmp_path: Path) -> None:
    faults = {"DATA": lambda rec, n: "451 4.3.0 try again" if n == 1 else None}
    with smtp_server(faults=faults) as srv:
        env = clean_env(
            COURIER_SMTP_CONNECTION_URI=f"smtp://127.0.0.1:{srv.port}/?disable_starttls=true",
            COURIER_RETRY_INITIAL="300ms",
        )
        assert (
            run(["send", "--to", "you@example.org", "--template", "test"], tmp_path, env).returncode
            == 0
        )
        first = run(["worker", "--drain"], tmp_path, env)
        assert "retrying 1" in first.stdout and "1 still queued" in first.stdout
        second = run(["worker", "--drain", "--max-wait", "10s"], tmp_path, env)
        assert "sent 1" in second.stdout, second.stdout + second.stderr
    assert len(srv.rec.messages) == 1
