"""The `postroom` command against hostile input and hostile servers, as real processes: header
breaks and overlong durations in the configuration, bulk files that are not text or not JSON
Lines, NaN in --data, and server text that tries to drive the terminal."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from procs import postroom
from smtp_servers import smtp_server

# Rich markup, an SGR colour, a window title (OSC ... BEL), and a screen clear.
HOSTILE = "[/] [bold]x\x1b[31mred\x1b]0;owned\x07\x1b[2J"
SHOWN = "[/] [bold]x\\x1b[31mred\\x1b]0;owned\\x07\\x1b[2J"  # how a terminal must see it


def configure(folder: Path, text: str = "courier: {}\n") -> Path:
    path = folder / "postroom.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def refused(result: subprocess.CompletedProcess[str], *expected: str) -> str:
    """Exit 2 with an `error:` line naming every ``expected`` text, and no traceback."""
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr, result.stderr
    assert result.stderr.startswith("error:"), result.stderr
    for text in expected:
        assert text in result.stderr, result.stderr
    return result.stderr


def no_terminal_control(result: subprocess.CompletedProcess[str]) -> str:
    """What was printed, once checked to hold no control character but line breaks."""
    output = result.stdout + result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    controls = sorted({c for c in output if (ord(c) < 0x20 and c != "\n") or 0x7F <= ord(c) < 0xA0})
    assert controls == [], controls
    return output


def listed(folder: Path) -> list[dict[str, object]]:
    result = postroom(folder, "messages", "list", "--json")
    assert result.returncode == 0, result.stderr
    value = json.loads(result.stdout)
    assert isinstance(value, list)
    return value


SEND = ["send", "--to", "jane@example.org", "--subject", "Hi", "--text", "Body"]


# -- the configuration -------------------------------------------------------------------


def test_every_header_break_in_the_configuration_is_refused_at_load(tmp_path: Path) -> None:
    # YAML's escapes: \v \f, \x1c-\x1e, \N (NEL, U+0085), \L (U+2028), \P (U+2029), \0 (NUL).
    escapes = ["\\v", "\\f", "\\x1c", "\\x1d", "\\x1e", "\\N", "\\L", "\\P", "\\0"]
    tenants = "".join(
        f"  t{n}:\n    courier:\n      smtp:\n"
        f'        from_name: "Acme{escape}Bcc: thief@evil.test"\n'
        f'        headers: {{X-Tag: "a{escape}Bcc: thief@evil.test"}}\n'
        for n, escape in enumerate(escapes)
    )
    configure(tmp_path, f"tenants:\n{tenants}")
    message = refused(postroom(tmp_path, *SEND))
    for n in range(len(escapes)):
        assert f"tenants.t{n}.courier.smtp.from_name: contains" in message, message
        assert f"tenants.t{n}.courier.smtp.headers: X-Tag: contains" in message, message
    assert not (tmp_path / "var" / "postroom.db").exists()


@pytest.mark.parametrize(
    ("yaml_text", "command", "expected"),
    [
        ("courier: {message_ttl: 3000000d}\n", SEND, ["courier.message_ttl", "30d"]),
        ("courier: {retry: {max: 99999999999d}}\n", ["worker", "--drain"], ["retry.max", "30d"]),
        (
            "courier: {rate_limits: [{count: 1, per: 99999999999d}]}\n",
            ["worker", "--drain"],
            ["courier.rate_limits.0.per", "31d"],
        ),
        ("courier: {}\n", ["worker", "--drain", "--max-wait", "99999999999d"], ["--max-wait"]),
        ("courier: {}\n", ["cleanup", "--older-than", "99999999999d"], ["--older-than", "3650d"]),
    ],
)
def test_durations_past_their_bound_are_refused_naming_it(
    tmp_path: Path, yaml_text: str, command: list[str], expected: list[str]
) -> None:
    configure(tmp_path, yaml_text)
    refused(postroom(tmp_path, *command), *expected)


# -- send: --data and arguments ------------------------------------------------------------


def test_nan_deep_nesting_and_lone_surrogates_are_refused_by_send(tmp_path: Path) -> None:
    configure(tmp_path)
    login = ["send", "--to", "jane@example.org", "--template", "login_code_valid"]
    for data, expected in (
        ('{"login_code": "1", "score": NaN}', "data.score"),
        ('{"login_code": "1", "score": -Infinity}', "data.score"),
        ('{"login_code": "1", "x": ' + "[" * 50_000 + "]" * 50_000 + "}", "--data"),
        ('{"login_code": "1", "x": ' + "9" * 5000 + "}", "--data"),
        ('{"login_code": "1\\ud800"}', "data.login_code"),
    ):
        refused(postroom(tmp_path, *login, "--data", data), expected)
    # An argument that is not UTF-8 arrives as a lone surrogate (Python's surrogateescape).
    refused(postroom(tmp_path, *SEND[:-4], "--subject", "Hi \udcff", "--text", "t"), "subject")
    refused(postroom(tmp_path, "messages", "list", "--recipient", "\udcff"), "--recipient")
    assert listed(tmp_path) == []


# -- send --bulk -----------------------------------------------------------------------------


def good_line(number: int) -> bytes:
    return json.dumps({"to": f"user{number}@example.org", "subject": "Hi", "text": "t"}).encode()


def hostile_bulk(folder: Path) -> Path:
    lines = [good_line(n) for n in range(1, 9)]
    lines[1] = b'{"to": "user2@example.org", "subject": "caf\xe9", "text": "latin-1"}'
    lines[2] = b'{"to": "user3@example.org", "data": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    lines[3] = b'{"to": "user4@example.org", "subject": "\\udc80", "text": "t"}'
    lines[4] = b'{"to": "user5@example.org", "template": "test", "data": {"n": NaN}}'
    lines[5] = b'{"to": "user6@example.org", "subject": "' + b"x" * (2 * 1024 * 1024) + b'"}'
    path = folder / "messages.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    return path


def test_a_bulk_file_with_hostile_lines_lists_each_and_enqueues_nothing(tmp_path: Path) -> None:
    configure(tmp_path)
    result = postroom(tmp_path, "send", "--bulk", str(hostile_bulk(tmp_path)))
    message = refused(result, "5 invalid line(s), nothing was enqueued")
    for number, problem in (
        (2, "is not valid UTF-8 (byte 0xe9"),
        (3, "is not valid JSON (nested too deeply)"),
        (4, "subject: contains a lone surrogate"),
        (5, "data.n: is NaN"),
        (6, "is longer than 1 MiB"),
    ):
        assert f"line {number}: {problem}" in message, message
    for number in (1, 7, 8):
        assert f"line {number}:" not in message
    assert listed(tmp_path) == []


def test_skip_invalid_enqueues_the_good_lines_of_a_hostile_file(tmp_path: Path) -> None:
    configure(tmp_path)
    result = postroom(tmp_path, "send", "--bulk", str(hostile_bulk(tmp_path)), "--skip-invalid")
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    for number in (2, 3, 4, 5, 6):
        assert f"skipped line {number}:" in result.stderr
    recipients = {m["recipient"] for m in listed(tmp_path)}
    assert recipients == {"user1@example.org", "user7@example.org", "user8@example.org"}


def test_a_bulk_file_without_line_breaks_is_refused_without_reading_it_all(
    tmp_path: Path,
) -> None:
    configure(tmp_path)
    result = postroom(tmp_path, "send", "--bulk", "/dev/zero", "--skip-invalid", timeout=60)
    refused(result, "--bulk", "no line break", "not a JSON Lines file", "nothing was enqueued")
    assert listed(tmp_path) == []


def test_an_endless_file_of_bad_lines_is_refused_after_a_thousand(tmp_path: Path) -> None:
    # /dev/urandom never ends and has a line break every 256 bytes or so: every line is bad.
    configure(tmp_path)
    result = postroom(tmp_path, "send", "--bulk", "/dev/urandom", "--skip-invalid", timeout=60)
    refused(result, "--bulk", "1000 bad lines", "not look like a JSON Lines file", "line 1:")
    assert listed(tmp_path) == []


# -- server text in the terminal ----------------------------------------------------------


def test_messages_show_and_list_print_a_hostile_reply_as_text(tmp_path: Path) -> None:
    faults = {"RCPT": lambda _rec, _n: f"550 5.1.1 {HOSTILE}"}
    with smtp_server(faults=faults) as srv:
        configure(
            tmp_path,
            "courier:\n  smtp:\n"
            f"    connection_uri: smtp://127.0.0.1:{srv.port}/?disable_starttls=true\n"
            # A tenant name is the operator's text, but printed in a table all the same.
            "tenants:\n  '[/]x':\n    courier: {delivery_strategy: outbox}\n",
        )
        sent = postroom(tmp_path, *SEND)
        assert sent.returncode == 0, sent.stderr
        assert postroom(tmp_path, *SEND, "--tenant", "[/]x").returncode == 0
        assert postroom(tmp_path, "worker", "--drain").returncode == 0
    message_id = sent.stdout.strip()

    shown = postroom(tmp_path, "messages", "show", message_id)
    assert shown.returncode == 0, shown.stderr
    assert SHOWN in no_terminal_control(shown)
    assert "abandoned" in shown.stdout

    as_json = postroom(tmp_path, "messages", "show", message_id, "--json")
    assert as_json.returncode == 0, as_json.stderr
    no_terminal_control(as_json)
    assert HOSTILE in json.loads(as_json.stdout)["last_error"]["reply"]

    table = postroom(tmp_path, "messages", "list")
    assert table.returncode == 0, table.stderr
    assert "[/]x" in no_terminal_control(table)


def test_test_smtp_prints_a_hostile_server_as_text(tmp_path: Path) -> None:
    faults = {"RCPT": lambda _rec, _n: f"550 5.1.1 {HOSTILE}"}
    with smtp_server(faults=faults) as srv:
        configure(tmp_path)
        uri = f"smtp://127.0.0.1:{srv.port}/?disable_starttls=true"
        result = postroom(tmp_path, "test-smtp", "--uri", uri, "--to", "jane@example.org")
        as_json = postroom(tmp_path, "test-smtp", "--uri", uri, "--json")
    assert result.returncode == 1, result.stderr
    assert SHOWN in no_terminal_control(result)
    assert as_json.returncode == 1, as_json.stderr
    no_terminal_control(as_json)


def test_explain_prints_pasted_text_as_text(tmp_path: Path) -> None:
    pasted = f"550 5.7.1 {HOSTILE} \x9b31m\u202egnp.exe"
    result = postroom(tmp_path, "explain", pasted)
    assert result.returncode == 0, result.stderr
    output = no_terminal_control(result)
    assert SHOWN in output and "\\x9b31m" in output and "\\u202e" in output
    as_json = postroom(tmp_path, "explain", "--json", pasted)
    assert as_json.returncode == 0, as_json.stderr
    no_terminal_control(as_json)
    assert "\u202e" not in as_json.stdout
    assert json.loads(as_json.stdout)["code"] == "sender_not_authorized"
