"""The project documents itself: docs/ holds a reference of every diagnosis code, configuration
key, HTTP route and CLI command, the README links each, and no page points at a document that
is not in the repository."""

from __future__ import annotations

import re
from pathlib import Path

import typer
from pydantic import BaseModel

from postroom.cli import app
from postroom.config import Settings
from postroom.diagnosis import CODES
from postroom.web.app import create_app

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"


def read(name: str) -> str:
    return (DOCS / name).read_text(encoding="utf-8")


def test_the_readme_links_every_reference_page_and_no_missing_document() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    for page in ("cli.md", "configuration.md", "http-routes.md", "diagnosis-codes.md"):
        assert f"(docs/{page})" in readme, page
    for target in re.findall(r"\]\((docs/[^)#]+)", readme):
        assert (ROOT / target).exists(), target
    assert "SPEC.md" not in readme


def test_every_diagnosis_code_has_its_section_with_cause_and_fix() -> None:
    text = read("diagnosis-codes.md")
    for code, entry in CODES.items():
        assert f"\n## {code}\n" in text, code
        assert entry.cause in text and entry.fix in text, code


def _keys(model: type[BaseModel], prefix: str = "") -> list[str]:
    keys = []
    for name, field in model.model_fields.items():
        annotation = field.annotation
        nested = [
            a
            for a in (annotation, *getattr(annotation, "__args__", ()))
            if isinstance(a, type) and issubclass(a, BaseModel)
        ]
        if nested and name != "tenants":
            # A list of sections (rate limits, logins) is written ``name[].key``.
            inner = f"{name}[]" if getattr(annotation, "__origin__", None) is list else name
            for model_type in nested:  # a union of shapes (HTTP auth types) lists each
                keys += _keys(model_type, f"{prefix}{inner}.")
        else:
            keys.append(f"{prefix}{name}")
    return keys


def test_every_configuration_key_is_listed_with_its_environment_variable() -> None:
    text = read("configuration.md")
    keys = _keys(Settings)
    assert len(keys) > 40
    for key in keys:
        key = key.replace(".in_", ".in")
        assert f"| `{key}` |" in text, key
        if key != "tenants" and "[]" not in key:
            assert f"`{key.upper().replace('.', '_')}`" in text, key


def test_every_http_route_is_listed() -> None:
    text = read("http-routes.md")
    application = create_app(
        Settings.model_validate({"dsn": "sqlite:///:memory:"}),
        run_worker=False,
        admin_token="x" * 32,
    )
    paths = set(application.openapi()["paths"])
    assert "/admin/courier/messages" in paths
    for path in paths:
        assert f"`{path}`" in text, path
    for dashboard_page in ("/messages/{message_id}", "/tenants/new", "/outbox"):
        assert f"`{dashboard_page}`" in text


def test_every_cli_command_and_option_is_listed() -> None:
    text = read("cli.md")
    root = typer.main.get_command(app)

    def walk(command: object, name: str) -> list[tuple[str, object]]:
        subs = getattr(command, "commands", None)
        if subs:
            return [c for n, sub in subs.items() for c in walk(sub, f"{name} {n}")]
        return [(name, command)]

    commands = walk(root, "postroom")
    assert len(commands) >= 15
    for name, command in commands:
        assert f"## `{name}`" in text, name
        section = text.split(f"## `{name}`", 1)[1].split("\n## ", 1)[0]
        for param in getattr(command, "params", []):
            for option in getattr(param, "opts", []):
                if option.startswith("--"):
                    assert f"`{option}`" in section, (name, option)
