"""`postroom listener`: add-login prints the lines to paste for a tenant of the file and saves
the login of an API tenant; hash-password prints a hash the file accepts; log shows refusals."""

from __future__ import annotations

import asyncio
import json
import subprocess
import textwrap
from pathlib import Path

import yaml

from postroom.config import load_settings
from postroom.config.passwords import verify
from postroom.store import open_store, utcnow
from postroom.store.listener import Refusal

from procs import POSTROOM, clean_env, postroom


def config(tmp_path: Path, logins: str = "[]") -> Path:
    path = tmp_path / "postroom.yaml"
    path.write_text(
        textwrap.dedent(f"""\
            dsn: sqlite:///{tmp_path / "postroom.db"}
            courier:
              listener:
                logins: {logins}
            tenants:
              acme: {{courier: {{}}}}
            """)
    )
    return path


def field(output: str, name: str) -> str:
    return next(line.split()[1] for line in output.splitlines() if line.startswith(name + " "))


def test_add_login_for_a_file_tenant_prints_the_yaml_to_paste(tmp_path: Path) -> None:
    done = postroom(tmp_path, "listener", "add-login", "--tenant", "default", "--username", "kc")
    assert done.returncode == 0, done.stderr
    password = field(done.stdout, "password")
    assert len(password) >= 43  # 32 random bytes
    pasted = done.stdout[done.stdout.index("# under courier.listener:") :]
    entry = yaml.safe_load(pasted.split("\n\n")[0])["logins"][0]
    assert entry["username"] == "kc" and password not in pasted
    assert verify(password, entry["password"])
    path = config(tmp_path, logins=json.dumps([entry]))
    loaded = load_settings(path).settings.courier.listener.logins
    assert loaded[0].username == "kc" and verify(password, loaded[0].password)


def test_add_login_for_an_api_tenant_saves_it_once(tmp_path: Path) -> None:
    path = config(tmp_path)

    async def save_tenant() -> None:
        store = open_store(f"sqlite:///{tmp_path / 'postroom.db'}")
        await store.migrate()
        await store.put_tenant("beta", {"delivery_strategy": "outbox"})
        await store.close()

    asyncio.run(save_tenant())
    args = ("listener", "add-login", "--tenant", "beta", "--username", "zitadel")
    first = postroom(tmp_path, *args, "--config", str(path))
    assert first.returncode == 0, first.stderr
    assert "# under" not in first.stdout
    again = postroom(tmp_path, *args, "--config", str(path))
    assert again.returncode == 1
    assert "'zitadel' is taken" in again.stderr

    async def stored() -> str:
        store = open_store(f"sqlite:///{tmp_path / 'postroom.db'}")
        login = await store.get_login("zitadel")
        await store.close()
        assert login is not None and login.tenant == "beta"
        return login.password_hash

    assert verify(field(first.stdout, "password"), asyncio.run(stored()))


def test_add_login_refuses_an_unknown_tenant(tmp_path: Path) -> None:
    done = postroom(tmp_path, "listener", "add-login", "--tenant", "nope")
    assert done.returncode == 1 and "no tenant 'nope'" in done.stderr


def test_hash_password_prints_a_hash_the_configuration_accepts(tmp_path: Path) -> None:
    done = postroom_stdin(tmp_path, "a-chosen-password-1234\n", "listener", "hash-password")
    assert done.returncode == 0, done.stderr
    hashed = done.stdout.strip()
    assert hashed.startswith("scrypt$") and "a-chosen" not in hashed
    path = config(tmp_path, logins=json.dumps([{"username": "kc", "password": hashed}]))
    login = load_settings(path).settings.courier.listener.logins[0]
    assert verify("a-chosen-password-1234", login.password)
    short = postroom_stdin(tmp_path, "short\n", "listener", "hash-password")
    assert short.returncode == 2 and "shorter than 12" in short.stderr


def test_log_shows_the_newest_refusals(tmp_path: Path) -> None:
    path = config(tmp_path)

    async def record() -> None:
        store = open_store(f"sqlite:///{tmp_path / 'postroom.db'}")
        await store.migrate()
        await store.record_refusals(
            [
                Refusal(utcnow(), "192.0.2.7", "530 5.7.0 Authentication required", "no AUTH"),
                Refusal(utcnow(), "192.0.2.8", "535 5.7.8 Authentication credentials invalid",
                        "wrong username or password (PLAIN)", username="keycloak"),
            ]
        )  # fmt: skip
        await store.close()

    asyncio.run(record())
    done = postroom(tmp_path, "listener", "log", "--json", "--config", str(path))
    assert done.returncode == 0, done.stderr
    rows = json.loads(done.stdout)
    assert [r["client"] for r in rows] == ["192.0.2.8", "192.0.2.7"]
    assert rows[0]["username"] == "keycloak"
    table = postroom(tmp_path, "listener", "log", "--config", str(path))
    assert "535 5.7.8" in table.stdout and "192.0.2.7" in table.stdout


def postroom_stdin(cwd: Path, text: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*POSTROOM, *args], cwd=cwd, env=clean_env(), input=text, capture_output=True,
        text=True, timeout=60, check=False,
    )  # fmt: skip
