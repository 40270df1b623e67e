"""`postroom messages` as a first-day user meets it: a list that reads at 80 columns, short
ids that `show`, `retry` and `cancel` take, recipient search in any case or by domain, and a
template filter that suggests the name meant."""

from __future__ import annotations

import json
import re
from pathlib import Path

from procs import postroom

ANSI = re.compile(r"\x1b\[[0-9;]*m")


def send(tmp: Path, to: str, template: str = "test") -> str:
    sent = postroom(
        tmp, "send", "--to", to, "--template", template, "--data", '{"login_code": "1"}'
    )
    assert sent.returncode == 0, sent.stderr
    return sent.stdout.strip()


def test_the_list_reads_at_80_columns_and_short_ids_name_messages(tmp_path: Path) -> None:
    long_one = send(tmp_path, "a.very.long.recipient.name.indeed@subdomain.example.org")
    jane = send(tmp_path, "Jane.Doe@Example.org", "login_code_valid")
    terminal = {"FORCE_COLOR": "1", "COLUMNS": "80"}
    listed = postroom(tmp_path, "messages", "list", env=terminal)
    assert listed.returncode == 0, listed.stderr
    lines = ANSI.sub("", listed.stdout).splitlines()
    assert max(len(line) for line in lines) <= 80
    # Status and the whole recipient stay readable (the recipient wraps, never cut).
    assert "queued" in lines[1] and "Jane.Doe@Example.org" in lines[1]
    joined = "".join(line[36:60].strip() for line in lines[2:])
    assert "a.very.long.recipient.name.indeed@subdomain.example.org" in joined
    assert lines[1].startswith(jane[-12:]) and lines[2].startswith(long_one[-12:])

    for name in (jane[-12:], jane[-5:], jane.upper()):
        shown = postroom(tmp_path, "messages", "show", name, "--json")
        assert json.loads(shown.stdout)["id"] == jane, name
    # Ids begin with their time of creation: the two share a prefix (a few characters more
    # or less, as their milliseconds fall; 4 hex digits change once in 49 days).
    same = next(i for i, (a, b) in enumerate(zip(jane, long_one, strict=True)) if a != b)
    shared = jane[:same]
    assert len(shared) >= 4
    ambiguous = postroom(tmp_path, "messages", "show", shared)
    assert ambiguous.returncode == 2 and "several messages" in ambiguous.stderr
    missing = postroom(tmp_path, "messages", "show", "0000000000ab")
    assert missing.returncode == 1 and "no message id" in missing.stderr


def test_recipient_search_template_filter_retry_and_cancel(tmp_path: Path) -> None:
    jane = send(tmp_path, "Jane@Example.org", "login_code_valid")
    send(tmp_path, "joe@example.net")

    def ids(*args: str) -> list[str]:
        out = postroom(tmp_path, "messages", "list", "--json", *args)
        assert out.returncode == 0, out.stderr
        return [m["id"] for m in json.loads(out.stdout)]

    assert ids("--recipient", "jane@example.ORG") == [jane]
    assert ids("--recipient", "@example.org") == [jane]
    assert ids("--template", "login_code_valid") == [jane]
    typo = postroom(tmp_path, "messages", "list", "--template", "login_code_vaild")
    assert typo.returncode == 2
    assert "did you mean login_code_valid?" in typo.stderr

    cancelled = postroom(tmp_path, "messages", "cancel", jane[-12:])
    assert cancelled.returncode == 0, cancelled.stderr
    assert ids("--status", "abandoned") == [jane]
    again = postroom(tmp_path, "messages", "cancel", jane[-12:])
    assert again.returncode == 1 and "only queued" in again.stderr.lower()
    retried = postroom(tmp_path, "messages", "retry", jane[-12:])
    assert retried.returncode == 0, retried.stderr
    assert "queued again" in retried.stdout
    assert ids("--status", "queued", "--recipient", "@example.org") == [jane]
