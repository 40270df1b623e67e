"""The `postroom` command, driven as a user drives it: a real process in a project folder."""

from __future__ import annotations

import email
import json
import subprocess
from email.message import EmailMessage
from email.policy import default
from pathlib import Path
from typing import Any

import pytest
import typer

from postroom.cli import app

from procs import postroom

SECRET = "Hunter2Secret"
MESSAGE_KEYS = {
    "id",
    "tenant",
    "status",
    "type",
    "channel",
    "recipient",
    "subject",
    "body",
    "template_type",
    "priority",
    "folded_duplicates",
    "locale",
    "send_count",
    "idempotency_key",
    "created_at",
    "updated_at",
    "next_attempt_at",
    "waiting_for",
    "last_error",
    "dispatches",
}


def configure(folder: Path, text: str = "courier: {}\n") -> Path:
    path = folder / "postroom.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    return result.stdout


def refused(result: subprocess.CompletedProcess[str], *expected: str) -> str:
    """Exit 2, a short `error:` message that names what is wrong, no traceback, no secret."""
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    assert SECRET not in result.stderr and SECRET not in result.stdout
    assert result.stderr.startswith("error:"), result.stderr
    assert len(result.stderr.strip().splitlines()) <= 4, result.stderr
    for text in expected:
        assert text in result.stderr, result.stderr
    return result.stderr


def listed(folder: Path, *extra: str) -> list[dict[str, object]]:
    value = json.loads(
        ok(postroom(folder, "messages", "list", "--limit", "5000", "--json", *extra))
    )
    assert isinstance(value, list)
    return value


# -- the tour: send, deliver to the outbox, inspect ------------------------------------------


def test_send_deliver_and_inspect(tmp_path: Path) -> None:
    configure(tmp_path, "courier:\n  smtp:\n    from_address: no-reply@example.org\n")
    sent = ok(
        postroom(
            tmp_path,
            "send",
            "--to",
            "jane@example.org",
            "--template",
            "login_code_valid",
            "--data",
            '{"login_code":"123456"}',
        )
    )
    message_id = sent.strip()
    assert len(message_id) == 36 and message_id.count("-") == 4

    assert "sent 1" in ok(postroom(tmp_path, "worker", "--drain"))

    eml = tmp_path / "var" / "outbox" / f"{message_id}.eml"
    parsed = email.message_from_bytes(eml.read_bytes(), policy=default)
    assert isinstance(parsed, EmailMessage)
    assert parsed.get_content_type() == "multipart/alternative"
    assert parsed["To"] == "jane@example.org"
    assert parsed["From"].addresses[0].addr_spec == "no-reply@example.org"
    plain, html = parsed.get_body(("plain",)), parsed.get_body(("html",))
    assert plain is not None and "123456" in plain.get_content()
    assert html is not None and "123456" in html.get_content()

    [first] = listed(tmp_path)
    assert set(first) == MESSAGE_KEYS
    assert first["id"] == message_id
    assert first["status"] == "sent"
    assert first["type"] == "email"
    assert first["recipient"] == "jane@example.org"
    assert first["template_type"] == "login_code_valid"
    assert first["send_count"] == 1
    assert first["subject"] == "<redacted>" and first["body"] == "<redacted>"

    shown = json.loads(ok(postroom(tmp_path, "messages", "show", message_id, "--json")))
    assert set(shown) == MESSAGE_KEYS
    assert shown["status"] == "sent"
    dispatches = shown["dispatches"]
    assert isinstance(dispatches, list) and len(dispatches) == 1
    assert dispatches[0]["status"] == "success"
    assert dispatches[0]["message_id"] == message_id

    table = ok(postroom(tmp_path, "messages", "list"))
    assert message_id[-12:] in table  # the short id: the random end of the UUIDv7
    assert "jane@example.org" in table and "sent" in table

    human = ok(postroom(tmp_path, "messages", "show", message_id))
    assert message_id in human and "sent" in human and "attempt 1" in human
    assert ok(postroom(tmp_path, "messages", "show", message_id[-12:])) == human


def test_bodies_are_shown_when_exposed(tmp_path: Path) -> None:
    configure(tmp_path, "courier: {expose_message_bodies: true}\n")
    out = ok(
        postroom(
            tmp_path,
            "send",
            "--to",
            "jane@example.org",
            "--subject",
            "Hello",
            "--text",
            "Body",
            "--json",
        )
    )
    message = json.loads(out)
    assert set(message) == MESSAGE_KEYS
    assert message["status"] == "queued"
    assert message["subject"] == "Hello"
    assert message["body"].strip() == "Body"
    assert message["template_type"] == "stub"
    [listed_message] = listed(tmp_path)
    assert listed_message["subject"] == "Hello"


def test_unknown_message_id_fails_clearly(tmp_path: Path) -> None:
    configure(tmp_path)
    result = postroom(tmp_path, "messages", "show", "no-such-id")
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert "no-such-id" in result.stderr


# -- bad input: exit 2, the field named, no traceback, no credential ------------------------


@pytest.mark.parametrize(
    ("config", "expected"),
    [
        (
            f"courier:\n  smtp:\n    connection_uri: 'smtp://user:{SECRET}@host:abc/'\n",
            ["courier.smtp.connection_uri", "malformed"],
        ),
        (
            f"courier:\n  smtp:\n    connection_uri: 'smtp://user:{SECRET}@host/?tls=yes'\n",
            ["courier.smtp.connection_uri", "'tls'", "skip_ssl_verify"],
        ),
        (
            f"courier:\n  smtp:\n    connection_uri: 'smtp://user:x/{SECRET}@host:587/'\n",
            ["courier.smtp.connection_uri", "percent-encoded"],
        ),
        (
            f"courier:\n  smtp:\n    connection_uri: 'http://user:{SECRET}@host/'\n",
            ["courier.smtp.connection_uri", "'http'"],
        ),
        ("courier:\n  smtp:\n    pasword: x\n", ["courier.smtp.pasword", "unknown key"]),
        (
            'courier:\n  smtp:\n    headers: {X-Tag: "a\\r\\nBcc: x@evil.test"}\n',
            ["courier.smtp.headers", "X-Tag", "line break"],
        ),
        ("courier: {message_retries: -1}\n", ["courier.message_retries"]),
    ],
)
def test_bad_configuration_is_refused(tmp_path: Path, config: str, expected: list[str]) -> None:
    configure(tmp_path, config)
    refused(
        postroom(tmp_path, "send", "--to", "jane@example.org", "--subject", "s", "--text", "t"),
        *expected,
    )


def test_bad_uri_in_the_environment_is_refused_without_the_password(tmp_path: Path) -> None:
    configure(tmp_path)
    result = postroom(
        tmp_path,
        "worker",
        "--drain",
        env={"COURIER_SMTP_CONNECTION_URI": f"smtps://user:{SECRET}@host:587/?server=x"},
    )
    refused(result, "courier.smtp.connection_uri", "'server'")


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--template", "login_code"], ["template", "login_code_valid", "recovery_code_valid"]),
        (["--template", "login_code_valid", "--data", "{login_code: 1}"], ["--data", "JSON"]),
        (["--template", "login_code_valid", "--data", "[1, 2]"], ["--data", "object"]),
        (["--subject", "Hi\r\nBcc: x@evil.test", "--text", "t"], ["subject", "line break"]),
        (["--subject", "Hi", "--text", "t", "--tenant", "nope"], ["tenant", "nope"]),
        (["--subject", "Only a subject"], ["--template"]),
    ],
)
def test_bad_send_input_is_refused(tmp_path: Path, args: list[str], expected: list[str]) -> None:
    configure(tmp_path)
    refused(postroom(tmp_path, "send", "--to", "jane@example.org", *args), *expected)


@pytest.mark.parametrize(
    "address",
    [
        "Jane <jane@example.org>",
        "jane@example.org, john@example.org",
        "jane.example.org",
        "jane@example.org\r\nBcc: x@evil.test",
        "jane@example.org\n",
    ],
)
def test_bad_recipient_is_refused(tmp_path: Path, address: str) -> None:
    configure(tmp_path)
    refused(postroom(tmp_path, "send", "--to", address, "--subject", "s", "--text", "t"), "to:")


# -- bulk ------------------------------------------------------------------------------------


def write_lines(path: Path, lines: list[str]) -> Path:
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


def test_bulk_enqueues_thousands(tmp_path: Path) -> None:
    configure(tmp_path)
    lines = [
        json.dumps(
            {
                "to": f"user{i}@example.org",
                "template": "login_code_valid",
                "data": {"login_code": f"{i:06d}"},
            }
        )
        for i in range(2000)
    ]
    bulk = write_lines(tmp_path / "messages.jsonl", lines)
    out = ok(postroom(tmp_path, "send", "--bulk", str(bulk)))
    assert "2000" in out
    messages = listed(tmp_path)
    assert len(messages) == 2000
    assert {m["recipient"] for m in messages} == {f"user{i}@example.org" for i in range(2000)}


def bulk_with_bad_lines(folder: Path) -> Path:
    lines = [
        json.dumps({"to": f"user{i}@example.org", "subject": "Hi", "text": f"Body {i}"})
        for i in range(1, 11)
    ]
    lines[2] = "{not json"  # line 3
    lines[6] = json.dumps({"to": "not an address", "template": "login_code_valid"})  # line 7
    lines[8] = json.dumps({"to": "user9@example.org", "template": "login_code"})  # line 9
    return write_lines(folder / "messages.jsonl", lines)


def test_bulk_with_bad_lines_enqueues_nothing_and_lists_them(tmp_path: Path) -> None:
    configure(tmp_path)
    result = postroom(tmp_path, "send", "--bulk", str(bulk_with_bad_lines(tmp_path)))
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    for number in (3, 7, 9):
        assert f"line {number}:" in result.stderr
    for number in (1, 2, 4, 5, 6, 8, 10):
        assert f"line {number}:" not in result.stderr
    assert "nothing was enqueued" in result.stderr
    assert listed(tmp_path) == []


def test_bulk_skip_invalid_enqueues_the_good_lines(tmp_path: Path) -> None:
    configure(tmp_path)
    result = postroom(
        tmp_path, "send", "--bulk", str(bulk_with_bad_lines(tmp_path)), "--skip-invalid"
    )
    ok(result)
    assert "line 3" in result.stderr and "line 7" in result.stderr
    recipients = {m["recipient"] for m in listed(tmp_path)}
    assert recipients == {f"user{i}@example.org" for i in (1, 2, 4, 5, 6, 8, 10)}


def test_bulk_with_a_key_reused_for_another_message_is_refused(tmp_path: Path) -> None:
    configure(tmp_path)
    bulk = write_lines(
        tmp_path / "messages.jsonl",
        [
            json.dumps(
                {"to": "a@example.org", "subject": "s", "text": "one", "idempotency_key": "k"}
            ),
            json.dumps(
                {"to": "a@example.org", "subject": "s", "text": "one", "idempotency_key": "k"}
            ),
            json.dumps(
                {"to": "a@example.org", "subject": "s", "text": "two", "idempotency_key": "k"}
            ),
        ],
    )
    result = postroom(tmp_path, "send", "--bulk", str(bulk))
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert "line 3" in result.stderr and "line 1" in result.stderr
    assert "line 2:" not in result.stderr  # the same message again is fine
    assert listed(tmp_path) == []


# -- help ------------------------------------------------------------------------------------


def commands(group: Any, prefix: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], str]]:
    """Every command path of a (Typer-built) command group, with its help text."""
    out: list[tuple[tuple[str, ...], str]] = []
    for name, command in sorted(group.commands.items()):
        out.append(((*prefix, name), command.help or command.short_help or ""))
        if getattr(command, "commands", None) is not None:
            out.extend(commands(command, (*prefix, name)))
    return out


ALL_COMMANDS = commands(typer.main.get_group(app))


def test_the_core_commands_exist() -> None:
    names = {path for path, _ in ALL_COMMANDS}
    for path in [
        ("send",),
        ("worker",),
        ("migrate",),
        ("serve",),
        ("messages", "list"),
        ("messages", "show"),
    ]:
        assert path in names


@pytest.mark.parametrize(
    ("path", "text"), ALL_COMMANDS, ids=[" ".join(path) for path, _ in ALL_COMMANDS]
)
def test_every_command_has_help(tmp_path: Path, path: tuple[str, ...], text: str) -> None:
    assert text.strip(), f"{' '.join(path)} has no help text"
    result = postroom(tmp_path, *path, "--help", env={"COLUMNS": "200"})
    assert ok(result)
    assert "Usage:" in result.stdout
    assert text.strip().splitlines()[0].strip()[:30] in " ".join(result.stdout.split())


def test_top_level_help_lists_the_commands(tmp_path: Path) -> None:
    out = ok(postroom(tmp_path, "--help"))
    for name in ("send", "worker", "migrate", "serve", "messages"):
        assert name in out
