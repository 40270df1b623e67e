"""``postroom oauth login`` as a user runs it (a real process), against a real token endpoint:
the device code is printed, the endpoint polled until the sign-in, and the refresh token kept
encrypted (in the store for a file tenant, in the tenant's settings for an API tenant); the
worker then gets access tokens from it and keeps the rotated one."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import yaml

from postroom.config import load_settings
from postroom.config.secrets import Crypter
from postroom.config.tenants import TenantRegistry
from postroom.intake import SendRequest, enqueue
from postroom.models import Status
from postroom.store import open_store
from postroom.worker import Worker

from oauth_server import CLIENT_ID, OAuthProvider, oauth_endpoint, xoauth2_server
from procs import postroom

SECRET = "an-encryption-secret-that-is-long-enough-0123"
SENDER = "sender@example.org"


def device_smtp(provider: OAuthProvider, port: int) -> dict[str, Any]:
    return {
        "connection_uri": f"smtp://sender%40example.org@localhost:{port}/",
        "from_address": SENDER,
        "timeout": "5s",
        "oauth2": {
            "provider": "microsoft",
            "flow": "device_code",
            "client_id": CLIENT_ID,
            "token_url": provider.token_url("consumers"),
        },
    }


def write_config(tmp_path: Path, **data: Any) -> Path:
    data.setdefault("dsn", f"sqlite:///{tmp_path / 'postroom.db'}")
    data.setdefault("secrets", {"default": [SECRET]})
    path = tmp_path / "postroom.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def db_bytes(tmp_path: Path) -> bytes:
    return b"".join(p.read_bytes() for p in tmp_path.glob("postroom.db*"))


def valid_refresh_tokens(provider: OAuthProvider) -> list[str]:
    return [token for token, valid in provider.refresh_tokens.items() if valid]


LOGIN = SendRequest(
    to="you@example.org", template_type="login_code_valid", data={"login_code": "1"}
)


async def test_login_for_a_file_tenant_keeps_the_token_in_the_store_and_the_worker_rotates_it(
    tmp_path: Path, pki: Any
) -> None:
    with (
        oauth_endpoint(pki.server_context()) as (provider, _http),
        xoauth2_server(provider, tls=pki.server_context()) as srv,
    ):
        config = write_config(tmp_path, courier={"smtp": device_smtp(provider, srv.port)})
        env = {"SSL_CERT_FILE": str(pki.ca_file)}
        result = postroom(tmp_path, "oauth", "login", "--config", str(config), env=env)
        assert result.returncode == 0, result.stderr
        assert "https://microsoft.com/devicelogin" in result.stdout
        assert "PSTRM-42" in result.stdout
        assert "stored encrypted" in result.stdout
        polls = provider.grants("urn:ietf:params:oauth:grant-type:device_code")
        assert len(polls) == 2  # authorization_pending, then granted
        [first] = valid_refresh_tokens(provider)
        assert first not in result.stdout + result.stderr
        assert first.encode() not in db_bytes(tmp_path)

        settings = load_settings(config).settings
        store = open_store(settings.dsn)
        try:
            await store.migrate()
            kept = await store.get_oauth_token("default")
            assert kept is not None and kept.refresh_token.startswith("enc:v1:")
            assert Crypter([SECRET]).decrypt(kept.refresh_token) == first

            [(one, _)] = await enqueue(store, settings, [LOGIN])
            await Worker(store, settings).run(drain=True, max_wait=5)
            assert (await store.get(one.id)).status is Status.SENT
            [used] = provider.grants("refresh_token")
            assert used.form["refresh_token"] == first
            assert used.form["scope"] == "https://outlook.office.com/SMTP.Send offline_access"
            [second] = valid_refresh_tokens(provider)  # the first one is spent
            kept = await store.get_oauth_token("default")
            assert kept is not None
            assert Crypter([SECRET]).decrypt(kept.refresh_token) == second

            # A new worker (a restart) starts from the rotated token.
            # Another code: the same one again would be folded into the first (dedupe_window).
            again = SendRequest(
                to="you@example.org", template_type="login_code_valid", data={"login_code": "2"}
            )
            [(two, _)] = await enqueue(store, settings, [again])
            await Worker(store, settings).run(drain=True, max_wait=5)
            assert (await store.get(two.id)).status is Status.SENT
            assert [g.form["refresh_token"] for g in provider.grants("refresh_token")] == [
                first,
                second,
            ]
        finally:
            await store.close()
    assert [login.ok for login in srv.handler.xoauth2] == [True, True]
    assert second.encode() not in db_bytes(tmp_path)


async def test_login_for_an_api_tenant_updates_its_settings(tmp_path: Path, pki: Any) -> None:
    with (
        oauth_endpoint(pki.server_context()) as (provider, _http),
        xoauth2_server(provider, tls=pki.server_context()) as srv,
    ):
        config = write_config(tmp_path, serve={"allow_private_targets": True})
        settings = load_settings(config).settings
        store = open_store(settings.dsn)
        try:
            await store.migrate()
            registry = TenantRegistry(settings, store)
            await registry.save("acme", {"smtp": device_smtp(provider, srv.port)})
            env = {"SSL_CERT_FILE": str(pki.ca_file)}
            result = postroom(
                tmp_path, "oauth", "login", "--tenant", "acme", "--config", str(config), env=env
            )
            assert result.returncode == 0, result.stderr
            assert "tenant's settings" in result.stdout
            [token] = valid_refresh_tokens(provider)
            stored = await store.get_tenant("acme")
            assert stored is not None
            kept = stored.courier["smtp"]["oauth2"]["refresh_token"]
            assert kept.startswith("enc:v1:") and Crypter([SECRET]).decrypt(kept) == token
            shown = await registry.describe("acme")
            assert shown["courier"]["smtp"]["oauth2"]["refresh_token"] == "***"
            assert token.encode() not in db_bytes(tmp_path)

            registry.invalidate()
            merged = await registry.settings()
            request = SendRequest(
                to="you@example.org",
                template_type="login_code_valid",
                data={"login_code": "1"},
                tenant="acme",
            )
            [(message, _)] = await enqueue(store, merged, [request])
            await Worker(store, merged, tenants=registry).run(drain=True, max_wait=5)
            assert (await store.get(message.id)).status is Status.SENT
        finally:
            await store.close()
    assert [login.ok for login in srv.handler.xoauth2] == [True]


def declined_login(tmp_path: Path, pki: Any, **provider: Any) -> subprocess.CompletedProcess[str]:
    """`postroom oauth login` against an endpoint where the person declines the sign-in."""
    with oauth_endpoint(pki.server_context(), decline_device=True, **provider) as (oauth, _):
        config = write_config(tmp_path, courier={"smtp": device_smtp(oauth, 2525)})
        return postroom(
            tmp_path,
            "oauth",
            "login",
            "--config",
            str(config),
            env={"SSL_CERT_FILE": str(pki.ca_file)},
        )


def test_a_declined_sign_in_fails_with_the_diagnosis(tmp_path: Path, pki: Any) -> None:
    result = declined_login(tmp_path, pki)
    assert result.returncode == 1
    assert "oauth_token_rejected" in result.stderr
    assert "authorization_declined" in result.stderr
    assert "postroom oauth login" in result.stderr


def test_what_the_provider_says_is_printed_as_plain_text(tmp_path: Path, pki: Any) -> None:
    hostile = "[/] [bold]x\x1b[2J\x1b]0;owned\x07"
    result = declined_login(
        tmp_path,
        pki,
        user_code=f"PSTRM-42{hostile}",
        verification_uri=f"https://microsoft.com/devicelogin{hostile}",
        decline_description=f"AADSTS70019: declined {hostile}",
    )
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    output = result.stdout + result.stderr
    assert "\x1b" not in output and "\x07" not in output
    assert "PSTRM-42[/] [bold]x\\x1b[2J\\x1b]0;owned\\x07" in result.stdout
    assert "declined [/] [bold]x\\x1b[2J" in result.stderr


def test_login_needs_a_device_code_tenant_and_a_secret(tmp_path: Path) -> None:
    client_credentials = {
        "connection_uri": "smtp://sender%40example.org@smtp.office365.com:587/",
        "oauth2": {
            "provider": "microsoft",
            "tenant_id": "contoso",
            "client_id": CLIENT_ID,
            "client_secret": "not-needed-here-0123456789",
        },
    }
    config = write_config(tmp_path, courier={"smtp": client_credentials})
    result = postroom(tmp_path, "oauth", "login", "--config", str(config))
    assert result.returncode == 2
    assert "does not sign in with a device code" in result.stderr
    assert "not-needed-here" not in result.stderr

    device = {
        "connection_uri": "smtp://sender%40example.org@smtp-mail.outlook.com:587/",
        "oauth2": {"provider": "microsoft", "flow": "device_code", "client_id": CLIENT_ID},
    }
    config = write_config(tmp_path, secrets={"default": []}, courier={"smtp": device})
    result = postroom(tmp_path, "oauth", "login", "--config", str(config))
    assert result.returncode == 2
    assert "secrets.default" in result.stderr

    result = postroom(tmp_path, "oauth", "login", "--tenant", "nope", "--config", str(config))
    assert result.returncode == 2
    assert "unknown tenant 'nope'" in result.stderr
