"""Shared fixtures: a certificate authority, SMTP servers, settings and a store."""

from __future__ import annotations

import os
import ssl
import sys
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import trustme

sys.path.insert(0, str(Path(__file__).parent))

from postroom import clock
from postroom.config import Settings
from postroom.store import Store, open_store

pytest_plugins = ["listener_support"]  # the SMTP listener's fixtures


@dataclass
class Pki:
    """A trusted CA (in SSL_CERT_FILE) and an untrusted one, with server contexts."""

    ca: trustme.CA
    ca_file: Path
    rogue: trustme.CA

    def server_context(self, *names: str, trusted: bool = True) -> ssl.SSLContext:
        ca = self.ca if trusted else self.rogue
        cert = ca.issue_cert(*(names or ("localhost", "127.0.0.1")))
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        cert.configure_cert(ctx)
        return ctx


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    ca = trustme.CA()
    ca_file = tmp_path_factory.mktemp("pki") / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    return Pki(ca=ca, ca_file=ca_file, rogue=trustme.CA())


@pytest.fixture(autouse=True)
def trust_test_ca(pki: Pki, monkeypatch: pytest.MonkeyPatch) -> None:
    """Postroom verifies against the system store, which honours SSL_CERT_FILE: the test CA."""
    monkeypatch.setenv("SSL_CERT_FILE", str(pki.ca_file))
    monkeypatch.delenv("SSL_CERT_DIR", raising=False)
    for name in (
        "POSTROOM_CONFIG",
        "DSN",
        "COURIER_SMTP_CONNECTION_URI",
        "COURIER_DELIVERY_STRATEGY",
    ):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def make_settings(tmp_path: Path) -> Callable[..., Settings]:
    """Settings with a fresh SQLite database and outbox under tmp_path; courier overrides."""

    def build(**courier: Any) -> Settings:
        base: dict[str, Any] = {
            "outbox_path": str(tmp_path / "outbox"),
            "retry": {"initial": "10ms", "max": "50ms"},
            "smtp": {"from_address": "no-reply@example.org", "timeout": "5s"},
        }
        smtp = courier.pop("smtp", {})
        base.update(courier)
        base["smtp"] = {**base["smtp"], **smtp}
        return Settings.model_validate(
            {"dsn": f"sqlite:///{tmp_path / 'postroom.db'}", "courier": base}
        )

    return build


PG_ADMIN_DSN = os.environ.get("POSTROOM_TEST_PG_DSN", "postgresql://postgres@127.0.0.1:5432/test")


@pytest.fixture
def pg_dsn() -> Iterator[str]:
    """A fresh, empty PostgreSQL database for one test (dropped afterwards)."""
    import psycopg
    from sqlalchemy.engine import make_url

    name = f"postroom_t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = make_url(PG_ADMIN_DSN).set(database=name)
    try:
        yield url.render_as_string(hide_password=False)
    finally:
        with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(params=["sqlite", "postgres", "memory"])
def store_dsn(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The DSN of a fresh store, once per backend: the contract holds for each."""
    if request.param == "postgres":
        return str(request.getfixturevalue("pg_dsn"))
    if request.param == "memory":
        return f"memory://{uuid.uuid4().hex}"
    return f"sqlite:///{tmp_path / 'postroom.db'}"


@pytest.fixture(params=["sqlite", "postgres"])
def sql_dsn(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The DSN of a fresh, empty SQL database, once per SQL backend (nothing migrated)."""
    if request.param == "postgres":
        return str(request.getfixturevalue("pg_dsn"))
    return f"sqlite:///{tmp_path / 'old.db'}"


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    """A migrated SQLite store under tmp_path."""
    s = open_store(f"sqlite:///{tmp_path / 'postroom.db'}")
    await s.migrate()
    yield s
    await s.close()


@pytest.fixture
async def any_store(store_dsn: str) -> AsyncIterator[Store]:
    """A migrated store of each backend in turn."""
    s = open_store(store_dsn)
    await s.migrate()
    yield s
    await s.close()


@pytest.fixture
def ca_pem(pki: Pki) -> Iterator[Path]:
    yield pki.ca_file


@pytest.fixture
def settings_with(tmp_path: Path) -> Callable[..., Settings]:
    """Settings from a dict, with a fresh database and outbox under tmp_path."""

    def build(**data: Any) -> Settings:
        courier = data.setdefault("courier", {})
        courier.setdefault("outbox_path", str(tmp_path / "outbox"))
        courier.setdefault("retry", {"initial": "10ms", "max": "50ms"})
        data.setdefault("dsn", f"sqlite:///{tmp_path / 'postroom.db'}")
        data.setdefault("secrets", {"default": ["a-test-secret-that-is-long-enough-0001"]})
        return Settings.model_validate(data)

    return build


class Clock:
    """A clock the stores read instead of the real one (the ``clock_at`` fixture): time
    moves one microsecond per reading (as real time never stands still) and otherwise only
    when a test says so."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        self.now += timedelta(microseconds=1)
        return self.now

    def advance(self, seconds: float) -> None:
        """Move the clock ``seconds`` on."""
        self.now += timedelta(seconds=seconds)


@pytest.fixture
def clock_at(monkeypatch: pytest.MonkeyPatch) -> Iterator[Clock]:
    """Stop the stores' clock at the current time; ``advance`` moves it on."""
    stopped = Clock(clock.utcnow())
    monkeypatch.setattr(clock, "utcnow", stopped)
    yield stopped
