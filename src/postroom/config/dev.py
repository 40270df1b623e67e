"""What ``serve --dev`` adds so that the first things a developer tries work: an encryption
secret kept in ``var/`` (so a tenant with a password can be saved, and read again after a
restart) and tenants that may point at loopback and private addresses (a local Mailpit on
port 1025)."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from postroom.config.settings import Settings

DEV_SECRET_FILE = Path("var") / "dev-secret"


def _dev_secret(path: Path) -> str:
    """The secret in ``path``, made (random, readable by the owner only) when missing."""
    if path.exists():
        value = path.read_text(encoding="utf-8").strip()
        if value:
            return value
    path.parent.mkdir(parents=True, exist_ok=True)
    value = secrets.token_urlsafe(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(value + "\n")
    return value


def dev_settings(
    settings: Settings, *, secret_file: Path = DEV_SECRET_FILE
) -> tuple[Settings, list[str]]:
    """``settings`` as ``serve --dev`` runs them, and the lines its banner adds to say so:
    without ``secrets.default``, the secret kept in ``secret_file``; and loopback and private
    targets allowed for tenants saved through the API or the dashboard."""
    notes: list[str] = []
    secrets_section = settings.secrets
    if not secrets_section.default:
        secrets_section = secrets_section.model_copy(update={"default": [_dev_secret(secret_file)]})
        notes.append(
            f"credentials are encrypted with the development secret in {secret_file} "
            "(set secrets.default to use tenants saved now outside --dev)"
        )
    serve = settings.serve
    if not serve.allow_private_targets:
        serve = serve.model_copy(update={"allow_private_targets": True})
        notes.append("tenants may point at localhost and private addresses (e.g. Mailpit on 1025)")
    return settings.model_copy(update={"secrets": secrets_section, "serve": serve}), notes
