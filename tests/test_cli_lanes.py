"""Priority lanes from the command line: `send --priority`, `send --bulk` mail in the bulk
lane with a warning when the limits cannot deliver it in time, and a recipient limit as exit 1
with the API's words."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pytest

from postroom.config import Settings
from postroom.errors import InputError
from postroom.intake import SendRequest, listener_message, prepare
from postroom.models import Priority
from test_cli import configure, listed, ok, refused

from procs import postroom


def test_send_takes_a_priority_and_bulk_files_default_to_bulk(tmp_path: Path) -> None:
    configure(tmp_path)
    code = json.loads(
        ok(
            postroom(
                tmp_path, "send", "--to", "jane@example.org", "--template", "login_code_valid",
                "--data", '{"login_code": "1"}', "--priority", "normal", "--json",
            )
        )
    )  # fmt: skip
    assert code["priority"] == "normal"
    lines = [
        {"to": "a@example.org", "subject": "News", "text": "1"},
        {"to": "b@example.org", "subject": "News", "text": "2", "priority": "urgent"},
    ]
    path = tmp_path / "news.jsonl"
    path.write_text("\n".join(json.dumps(line) for line in lines) + "\n")
    ok(postroom(tmp_path, "send", "--bulk", str(path)))
    lanes = {m["recipient"]: m["priority"] for m in listed(tmp_path)}
    assert lanes == {
        "jane@example.org": "normal",
        "a@example.org": "bulk",
        "b@example.org": "urgent",
    }
    refused(
        postroom(tmp_path, "send", "--to", "x@example.org", "--subject", "s", "--text", "t",
                 "--priority", "asap"),
        "priority", "urgent, normal or bulk",
    )  # fmt: skip


def test_send_bulk_warns_when_the_limits_cannot_deliver_it_within_the_bulk_ttl(
    tmp_path: Path,
) -> None:
    configure(tmp_path, "courier: {rate_limits: [{count: 2, per: 1h}], bulk_ttl: 2h}\n")
    path = tmp_path / "news.jsonl"
    rows = [{"to": f"u{n}@example.org", "subject": "News", "text": "hi"} for n in range(5)]
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    result = postroom(tmp_path, "send", "--bulk", str(path))
    ok(result)
    # 2 an hour, 0.8 of them for bulk (at least 1), for 2 hours: about 2 of the 5.
    assert "warning" in result.stderr and "courier.bulk_ttl (2h)" in result.stderr
    assert "about 2 message(s)" in result.stderr and "this file has 5" in result.stderr
    assert len(listed(tmp_path)) == 5  # a warning, not a refusal


def test_a_recipient_limit_exits_1_naming_the_limit(tmp_path: Path) -> None:
    configure(tmp_path, "courier: {recipient_limits: {cooldown: 30s}}\n")
    args = ["send", "--to", "jane@example.org", "--template", "login_code_valid"]
    ok(postroom(tmp_path, *args, "--data", '{"login_code": "111111"}'))
    result = postroom(tmp_path, *args, "--data", '{"login_code": "222222"}')
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert "courier.recipient_limits.cooldown" in result.stderr
    assert "try again in" in result.stderr
    assert len(listed(tmp_path)) == 1


def test_listener_mail_takes_its_lane_from_the_header_and_ignores_date_and_id(
    make_settings: Callable[..., Settings],
) -> None:
    settings = make_settings()
    base = prepare(SendRequest(to="jane@example.org", subject="Reset", text="link"), settings)
    one = listener_message(base, header=None)
    assert one.priority is Priority.URGENT  # Keycloak's mail: verification and reset
    assert listener_message(base, header="bulk").priority is Priority.BULK
    assert listener_message(base, header=None, login_priority=Priority.NORMAL).priority is (
        Priority.NORMAL
    )
    resent = base.mime.replace(b"Message-ID: <", b"Message-ID: <again.")
    assert resent != base.mime
    again = listener_message(replace(base, mime=resent), header=None)
    assert again.content_hash == one.content_hash
    with pytest.raises(InputError, match="X-Postroom-Priority"):
        listener_message(base, header="high")
