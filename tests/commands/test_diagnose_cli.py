"""``postroom presets``, ``test-smtp`` and ``explain`` as a user runs them: exit codes, output,
and no secret in anything printed. ``test-smtp`` runs as a real process against real SMTP
servers; the quick commands run in-process through Typer's runner (one real process each checks
the entry point itself)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import subprocess
from pathlib import Path

import yaml
from typer.testing import CliRunner

from postroom.cli import app

from conftest import Pki
from procs import POSTROOM, clean_env, postroom
from smtp_servers import smtp_server

SECRET = "Sup3r/S3cret:pw@x"
ENCODED = "Sup3r%2FS3cret%3Apw%40x"
DOCUMENTED_NAMES = (
    "sendgrid",
    "mailgun",
    "amazon-ses",
    "postmark",
    "microsoft365",
    "microsoft365-relay",
    "microsoft365-direct-send",
    "azure-communication-services",
    "google-workspace",
    "gmail",
    "outlook",
)


def run(
    cwd: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return postroom(cwd, *args, env=env)


def invoke(*args: str) -> subprocess.CompletedProcess[str]:
    """The same command in-process (fast), with the same exit code and output streams."""
    result = CliRunner().invoke(app, list(args))
    return subprocess.CompletedProcess(list(args), result.exit_code, result.stdout, result.stderr)


def printed(result: subprocess.CompletedProcess[str]) -> str:
    return result.stdout + result.stderr


# -- presets ----------------------------------------------------------------------------------


def test_presets_list_names_every_provider(tmp_path: Path) -> None:
    listed = invoke("presets", "list")
    assert listed.returncode == 0, listed.stderr
    for name in DOCUMENTED_NAMES:
        assert name in listed.stdout
    assert "10,000 recipients per 1d" in listed.stdout
    as_json = invoke("presets", "list", "--json")
    names = [p["name"] for p in json.loads(as_json.stdout)]
    assert set(DOCUMENTED_NAMES) <= set(names)


def test_presets_show_prints_settings_steps_and_notes(tmp_path: Path) -> None:
    shown = invoke("presets", "show", "microsoft365-relay")
    assert shown.returncode == 0, shown.stderr
    out = shown.stdout
    assert "smtp://{domain}.mail.protection.outlook.com:25/" in out
    assert "  1. " in out
    assert "5.7.57" in out
    assert "connector" in out
    ses = json.loads(invoke("presets", "show", "amazon-ses", "--json").stdout)
    assert "us-east-1" in ses["regions"]


def test_unknown_preset_exits_2_and_lists_the_known_ones(tmp_path: Path) -> None:
    for args in (("presets", "show", "sendgird"), ("presets", "uri", "sendgird")):
        result = invoke(*args)
        assert result.returncode == 2
        assert "unknown preset 'sendgird'" in result.stderr
        for name in DOCUMENTED_NAMES:
            assert name in result.stderr


def test_presets_uri_percent_encodes_credentials(tmp_path: Path) -> None:
    result = run(
        tmp_path,
        "presets",
        "uri",
        "mailgun",
        "--username",
        "some-user@mailgun.example.org",
        "--password",
        SECRET,
        "--region",
        "eu",
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == (
        f"smtp://some-user%40mailgun.example.org:{ENCODED}@smtp.eu.mailgun.org:587/\n"
    )


def test_presets_uri_refusals_exit_2_without_echoing_the_secret(tmp_path: Path) -> None:
    cases = [
        (("sendgrid", "--username", "me", "--password", SECRET), "apikey"),
        (
            (
                "amazon-ses",
                "--username",
                "AKIAIOSFODNN7EXAMPLE",
                "--password",
                SECRET,
                "--region",
                "mars-1",
            ),
            "eu-west-1",
        ),
        (("microsoft365-relay",), "--domain"),
        (("microsoft365",), "--username"),
        (("gmail", "--username", "a@gmail.com"), "--password"),
    ]
    for args, needle in cases:
        result = invoke("presets", "uri", *args)
        assert result.returncode == 2, (args, result.stdout)
        assert needle in result.stderr
        assert result.stdout == ""
        assert SECRET not in printed(result)
        assert ENCODED not in printed(result)


def test_acs_username_warning_does_not_refuse(tmp_path: Path) -> None:
    result = invoke(
        "presets",
        "uri",
        "azure-communication-services",
        "--username",
        "my-acs|app|tenant",
        "--password",
        "secret",
    )
    assert result.returncode == 0
    assert "warning:" in result.stderr
    assert result.stdout.strip().endswith("@smtp.azurecomm.net:587/")


def test_ses_secret_key_is_explained_or_derived(tmp_path: Path) -> None:
    secret = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
    args = ("presets", "uri", "amazon-ses", "--username", "AKIAIOSFODNN7EXAMPLE",
            "--password", secret, "--region", "eu-central-1")  # fmt: skip
    refused = invoke(*args)
    assert refused.returncode == 2
    assert "secret access key" in refused.stderr
    assert "--derive-from-secret-key" in refused.stderr
    assert secret not in printed(refused)

    derived = invoke(*args, "--derive-from-secret-key")
    assert derived.returncode == 0, derived.stderr
    key = hmac.new(("AWS4" + secret).encode(), b"11111111", hashlib.sha256).digest()
    for part in (b"eu-central-1", b"ses", b"aws4_request", b"SendRawEmail"):
        key = hmac.new(key, part, hashlib.sha256).digest()
    password = base64.b64encode(b"\x04" + key).decode()
    encoded = password.replace("+", "%2B").replace("/", "%2F").replace("=", "%3D")
    assert derived.stdout == (
        f"smtp://AKIAIOSFODNN7EXAMPLE:{encoded}@email-smtp.eu-central-1.amazonaws.com:587/\n"
    )
    assert secret not in derived.stdout


# -- test-smtp --------------------------------------------------------------------------------


def write_config(tmp_path: Path, uri: str, **courier: object) -> Path:
    path = tmp_path / "postroom.yaml"
    smtp = {"connection_uri": uri, "from_address": "no-reply@example.org", "timeout": "3s"}
    data = {
        "dsn": f"sqlite:///{tmp_path / 'postroom.db'}",
        "courier": {"smtp": smtp, **courier},
        "tenants": {"quiet": {"courier": {"delivery_strategy": "outbox"}}},
    }
    path.write_text(yaml.safe_dump(data))
    return path


def test_test_smtp_prints_each_step_and_exits_0(tmp_path: Path, pki: Pki) -> None:
    env = {"SSL_CERT_FILE": str(pki.ca_file)}
    with smtp_server(starttls=pki.server_context(), users={"alice": SECRET}) as srv:
        config = write_config(tmp_path, f"smtp://alice:{ENCODED}@localhost:{srv.port}/")
        result = run(tmp_path, "test-smtp", "--config", str(config), "--to", "you@example.org",
                     env=env)  # fmt: skip
    assert result.returncode == 0, printed(result)
    out = result.stdout
    for stage in ("render", "dns", "connect", "ehlo", "starttls", "auth", "mail", "rcpt", "data"):
        assert f"✓ {stage}" in out, stage
    assert " ms" in out
    assert "✗" not in out
    assert "OK: the server accepted the test email for you@example.org" in out
    assert "extensions" in out
    assert "certificate" in out
    assert f"smtp://alice:***@localhost:{srv.port}/" in out
    assert SECRET not in printed(result)
    assert ENCODED not in printed(result)
    assert len(srv.rec.messages) == 1


def test_test_smtp_failure_shows_reply_cause_fix_and_exits_1(tmp_path: Path, pki: Pki) -> None:
    env = {"SSL_CERT_FILE": str(pki.ca_file)}
    with smtp_server(starttls=pki.server_context(), users={"alice": "other"}) as srv:
        uri = f"smtp://alice:{ENCODED}@localhost:{srv.port}/"
        config = write_config(tmp_path, uri, preset="microsoft365")
        human = run(tmp_path, "test-smtp", "--config", str(config), env=env)
        as_json = run(tmp_path, "test-smtp", "--uri", uri, "--json", "--no-send", env=env)
    assert human.returncode == 1, printed(human)
    assert "✗ auth" in human.stdout
    assert "reply  535" in human.stdout
    assert "FAILED at auth: auth_failed (permanent)" in human.stdout
    assert "  cause  " in human.stdout
    assert "  fix    " in human.stdout
    # The tenant names a preset: its notes follow the diagnosis.
    assert "Good to know about Microsoft 365" in human.stdout
    assert "SMTP AUTH" in human.stdout
    assert as_json.returncode == 1
    data = json.loads(as_json.stdout)
    assert list(data) == ["ok", "uri", "steps", "failed_stage", "diagnosis", "deliverability"]
    assert data["ok"] is False
    assert data["uri"] == f"smtp://alice:***@localhost:{srv.port}/"
    assert data["failed_stage"] == "auth"
    assert data["diagnosis"]["code"] == "auth_failed"
    assert set(data["diagnosis"]) == {"code", "transient", "cause", "fix"}
    assert {"stage", "ok", "ms"} <= set(data["steps"][0])
    for result in (human, as_json):
        assert SECRET not in printed(result)
        assert ENCODED not in printed(result)


def test_test_smtp_no_send_json_is_ok(tmp_path: Path, pki: Pki) -> None:
    env = {"SSL_CERT_FILE": str(pki.ca_file)}
    with smtp_server(starttls=pki.server_context()) as srv:
        result = run(
            tmp_path, "test-smtp", "--uri", f"smtp://localhost:{srv.port}/", "--no-send",
            "--json", "--to", "you@example.org", env=env,
        )  # fmt: skip
    assert result.returncode == 0, printed(result)
    data = json.loads(result.stdout)
    assert data["ok"] is True
    assert data["failed_stage"] is None
    assert data["diagnosis"] is None
    assert [s["stage"] for s in data["steps"]][-3:] == ["mail", "rcpt", "quit"]
    assert srv.rec.messages == []


def test_test_smtp_bad_input_exits_2(tmp_path: Path) -> None:
    config = write_config(tmp_path, "smtp://localhost:2525/")
    no_smtp = run(tmp_path, "test-smtp", "--config", str(config), "--tenant", "quiet")
    assert no_smtp.returncode == 2
    assert "no SMTP settings" in no_smtp.stderr
    unknown = run(tmp_path, "test-smtp", "--config", str(config), "--tenant", "nosuch")
    assert unknown.returncode == 2
    assert "unknown tenant 'nosuch'" in unknown.stderr
    bad_uri = run(tmp_path, "test-smtp", "--uri", f"smtp://u:{ENCODED}@localhost:25/?x=1")
    assert bad_uri.returncode == 2
    assert "unknown query parameter" in bad_uri.stderr
    assert ENCODED not in printed(bad_uri)
    bare = tmp_path / "bare"
    bare.mkdir()
    empty = run(bare, "test-smtp")  # no configuration at all: the outbox
    assert empty.returncode == 2
    assert "no SMTP settings" in empty.stderr


# -- explain ----------------------------------------------------------------------------------


def test_explain_prints_code_cause_and_fix(tmp_path: Path) -> None:
    text = (
        "535 5.7.139 Authentication unsuccessful, SmtpClientAuthentication is disabled for the "
        "Tenant. Visit https://aka.ms/smtp_auth_disabled for more information."
    )
    human = run(tmp_path, "explain", text)
    assert human.returncode == 0, human.stderr
    assert "auth_disabled (permanent: not retried)" in human.stdout
    assert "Microsoft 365" in human.stdout
    assert "stage  auth (guessed" in human.stdout
    assert "cause  " in human.stdout
    assert "fix  " in human.stdout

    as_json = invoke("explain", "--json", "--stage", "auth", text)
    data = json.loads(as_json.stdout)
    # The same fields as the text: code, retry, provider, stage, reply, cause and fix.
    assert data == {
        "code": "auth_disabled",
        "transient": False,
        "provider": "Microsoft 365",
        "stage": "auth",
        "stage_guessed": False,
        "reply": " ".join(text.split()),
        "cause": data["cause"],
        "fix": data["fix"],
    }
    assert data["cause"] and data["fix"]


def test_explain_reads_standard_input(tmp_path: Path) -> None:
    pasted = (
        "<a@example.org>: host mx.example.org[192.0.2.1] said: 450 4.2.0 <a@example.org>:\n"
        "    Recipient address rejected: Greylisted (in reply to RCPT TO command)\n"
    )
    result = subprocess.run(
        [*POSTROOM, "explain", "--json", "-"],
        cwd=tmp_path,
        input=pasted,
        capture_output=True,
        text=True,
        env=clean_env(),
        check=False,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["code"] == "greylisted"
    assert json.loads(result.stdout)["transient"] is True


def test_explain_bad_input_exits_2(tmp_path: Path) -> None:
    empty = invoke("explain", "  ")
    assert empty.returncode == 2
    assert "empty" in empty.stderr
    stage = invoke("explain", "--stage", "smtp", "535 no")
    assert stage.returncode == 2
    assert "unknown stage" in stage.stderr
