"""The command line speaks locales: `send --locale`, the locale in `messages list/show`, and
`templates preview`."""

from __future__ import annotations

import email
from email.policy import default
from pathlib import Path

from procs import postroom


def configure(folder: Path) -> None:
    (folder / "postroom.yaml").write_text(
        "courier:\n  locale: de\n  smtp:\n    from_address: no-reply@example.org\n"
        "  branding:\n    product_name: Acme\n"
    )


def test_send_with_a_locale_and_see_it_everywhere(tmp_path: Path) -> None:
    configure(tmp_path)
    sent = postroom(
        tmp_path,
        "send",
        "--to",
        "jane@example.org",
        "--template",
        "login_code_valid",
        "--data",
        '{"login_code": "123456"}',
        "--locale",
        "pt-BR",
    )
    assert sent.returncode == 0, sent.stderr
    message_id = sent.stdout.strip()
    default_locale = postroom(
        tmp_path,
        "send",
        "--to",
        "ana@example.org",
        "--template",
        "login_code_valid",
        "--data",
        '{"login_code": "654321"}',
        "--json",
    )
    assert '"locale": "de"' in default_locale.stdout  # the tenant's courier.locale
    shown = postroom(tmp_path, "messages", "show", message_id)
    assert shown.returncode == 0
    assert "locale  pt-BR" in shown.stdout
    listed = postroom(tmp_path, "messages", "list")
    assert "pt-BR" in listed.stdout and " de " in listed.stdout
    assert postroom(tmp_path, "worker", "--drain").returncode == 0
    eml = tmp_path / "var" / "outbox" / f"{message_id}.eml"
    parsed = email.message_from_bytes(eml.read_bytes(), policy=default)
    assert parsed["Subject"] == "Acme: Seu código de login"


def test_a_bad_locale_exits_2_naming_the_option(tmp_path: Path) -> None:
    configure(tmp_path)
    result = postroom(
        tmp_path,
        "send",
        "--to",
        "jane@example.org",
        "--template",
        "login_code_valid",
        "--data",
        '{"login_code": "1"}',
        "--locale",
        "klingon please",
    )
    assert result.returncode == 2
    assert "locale: 'klingon please' is not a language tag" in result.stderr
    assert "Traceback" not in result.stderr


def test_templates_preview_prints_the_message_in_the_locale(tmp_path: Path) -> None:
    configure(tmp_path)
    text = postroom(tmp_path, "templates", "preview", "recovery_code_valid", "--locale", "uk")
    assert text.returncode == 0, text.stderr
    assert text.stdout.startswith("Subject: Acme: Ваш код для відновлення облікового запису\n")
    assert "recovery_code_valid in uk for tenant default" in text.stderr
    html = postroom(tmp_path, "templates", "preview", "login_code_valid", "--format", "html")
    assert '<html lang="de" dir="ltr">' in html.stdout and "<style" not in html.stdout
    eml = postroom(tmp_path, "templates", "preview", "test", "--format", "eml", "--locale", "ja")
    assert email.message_from_string(eml.stdout, policy=default)["Subject"] == "Acme：テストメール"
    unknown = postroom(tmp_path, "templates", "preview", "nope")
    assert unknown.returncode == 2 and "unknown template type 'nope'" in unknown.stderr
    assert "--locale" in postroom(tmp_path, "templates", "preview", "--help").stdout
