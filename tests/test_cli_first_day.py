"""The first day with the `postroom` command: --version, --config before the command (and on
every command), "did you mean" for template and preset names, a notice when a command creates
the database, and a drain that shows progress instead of library log lines."""

from __future__ import annotations

import json
from pathlib import Path

import postroom

from procs import postroom as run


def test_version_and_config_before_the_command(tmp_path: Path) -> None:
    shown = run(tmp_path, "--version")
    assert (shown.returncode, shown.stdout.strip()) == (0, f"postroom {postroom.__version__}")

    (tmp_path / "other.yaml").write_text("dsn: sqlite:///./other.db\n")
    sent = run(
        tmp_path, "--config", "other.yaml", "send", "--to", "a@example.org", "--template", "test"
    )
    assert sent.returncode == 0, sent.stderr
    assert (tmp_path / "other.db").exists() and not (tmp_path / "var" / "postroom.db").exists()
    listed = run(tmp_path, "--config", "other.yaml", "messages", "list", "--json")
    assert [m["id"] for m in json.loads(listed.stdout)] == [sent.stdout.strip()]
    for command in (["explain", "550 5.1.1 unknown"], ["presets", "show", "sendgrid"]):
        took = run(tmp_path, *command, "--config", "other.yaml")
        assert took.returncode == 0, (command, took.stderr)


def test_a_misspelt_template_or_preset_gets_a_suggestion(tmp_path: Path) -> None:
    template = run(tmp_path, "send", "--to", "a@example.org", "--template", "login_code_vaild")
    assert template.returncode == 2
    assert "did you mean login_code_valid?" in template.stderr
    preset = run(tmp_path, "presets", "show", "sendgird")
    assert preset.returncode == 2
    assert "did you mean sendgrid?" in preset.stderr


def test_a_command_that_creates_the_database_says_which_and_that_nothing_delivers(
    tmp_path: Path,
) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    first = run(elsewhere, "send", "--to", "a@example.org", "--template", "test")
    assert first.returncode == 0, first.stderr
    assert f"created a new database {elsewhere / 'var' / 'postroom.db'}" in first.stderr
    assert "no `postroom serve` or `postroom worker` has used it" in first.stderr
    second = run(elsewhere, "send", "--to", "b@example.org", "--template", "test")
    assert "created a new database" not in second.stderr


def test_a_drain_on_a_terminal_shows_progress_and_no_library_log_lines(tmp_path: Path) -> None:
    for n in range(3):
        assert (
            run(tmp_path, "send", "--to", f"u{n}@example.org", "--template", "test").returncode == 0
        )
    drained = run(tmp_path, "worker", "--drain", env={"FORCE_COLOR": "1", "COLUMNS": "100"})
    assert drained.returncode == 0, drained.stderr
    assert "delivering" in drained.stderr
    assert " INFO " not in drained.stderr
    assert "sent 3, retrying 0, abandoned 0; 0 still queued" in drained.stdout
