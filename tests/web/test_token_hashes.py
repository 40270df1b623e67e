"""An intake token's stored hash is not a credential: whoever reads it from a database backup
or the configuration file cannot enqueue with it. The tokens themselves still work, whether
the tenant was saved through the API with a plain token or configured with a ``sha256:``
value in the file."""

from __future__ import annotations

import hashlib
import json
import sqlite3
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from postroom.config import Settings
from postroom.config.loader import load_settings
from postroom.errors import ConfigError

from web_support import AUTH, assert_error, serving

FILE_TOKEN = "file-tenant-intake-token-0123456789"
FILE_HASH = "sha256:" + hashlib.sha256(FILE_TOKEN.encode()).hexdigest()
API_TOKEN = "api-tenant-intake-token-0123456789"
ORY = {"recipient": "a@example.org", "template_type": "login_code_valid", "login_code": "1"}


def stored_hash(database: Path, tenant: str) -> str:
    """What a database backup shows of an API tenant's intake token."""
    with sqlite3.connect(database) as db:
        (courier,) = db.execute("SELECT courier FROM tenants WHERE id = ?", (tenant,)).fetchone()
    [value] = json.loads(courier)["intake_tokens"]
    assert isinstance(value, str) and value.startswith("sha256:")
    return value


def enqueue_as(http: httpx.Client, tenant: str, token: str) -> tuple[int, int]:
    """The status of an Ory intake and of an admin-API enqueue with ``token`` for ``tenant``."""
    bearer = {"Authorization": f"Bearer {token}"}
    ory = http.post(f"/intake/ory/{tenant}", json=ORY, headers=bearer)
    api = http.post(
        "/admin/courier/messages",
        json={"recipient": "b@example.org", "template_type": "test", "tenant": tenant},
        headers=bearer,
    )
    return ory.status_code, api.status_code


def test_a_stored_hash_is_refused_and_the_tokens_work(
    settings_with: Callable[..., Settings], tmp_path: Path
) -> None:
    settings = settings_with(tenants={"filed": {"courier": {"intake_tokens": [FILE_HASH]}}})
    with serving(settings, run_worker=False) as base, httpx.Client(base_url=base) as http:
        saved = http.put("/admin/tenants/acme", json={"intake_tokens": [API_TOKEN]}, headers=AUTH)
        assert saved.status_code == 200, saved.text
        backup_hash = stored_hash(tmp_path / "postroom.db", "acme")
        assert API_TOKEN not in backup_hash

        assert enqueue_as(http, "acme", API_TOKEN) == (202, 202)
        assert enqueue_as(http, "filed", FILE_TOKEN) == (202, 202)

        for tenant, hashed in (("acme", backup_hash), ("filed", FILE_HASH)):
            bearer = {"Authorization": f"Bearer {hashed}"}
            assert_error(http.post(f"/intake/ory/{tenant}", json=ORY, headers=bearer), 401)
            body = {"recipient": "c@example.org", "template_type": "test", "tenant": tenant}
            assert_error(http.post("/admin/courier/messages", json=body, headers=bearer), 401)
        # Nothing was enqueued with a hash: only the four messages of the real tokens.
        listed = http.get("/admin/courier/messages", headers=AUTH).json()
        assert len(listed) == 4


def test_a_sha256_entry_that_is_no_hash_is_a_clear_error(tmp_path: Path) -> None:
    config = tmp_path / "postroom.yaml"
    config.write_text('courier: {intake_tokens: ["sha256:not-a-hash-0123456789"]}\n')
    with pytest.raises(ConfigError) as caught:
        load_settings(config, environ={})
    assert "courier.intake_tokens" in str(caught.value)
    assert "64 hex digits" in str(caught.value)
