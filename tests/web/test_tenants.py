"""Tenants through the API: credentials encrypted at rest and masked in answers, '***' keeps a
stored secret, keys rotate, file tenants are read-only, no file paths, no private targets."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path

import httpx

from postroom.config import Settings
from postroom.config.tenants import TenantRegistry
from postroom.store import open_store

from conftest import Pki
from smtp_servers import smtp_server
from web_support import AUTH, serving

PASSWORD = "Sup3r:s3cret/p@ss"
ENCODED = "Sup3r%3As3cret%2Fp%40ss"
SECRET_A = "first-secret-0123456789-0123456789"
SECRET_B = "second-secret-0123456789-0123456789"


def db_bytes(tmp_path: Path) -> bytes:
    return b"".join(p.read_bytes() for p in tmp_path.glob("postroom.db*"))


def test_secrets_are_encrypted_masked_and_kept(
    settings_with: Callable[..., Settings], tmp_path: Path, pki: Pki
) -> None:
    with smtp_server(starttls=pki.server_context(), users={"alice": PASSWORD}) as srv:
        settings = settings_with(
            secrets={"default": [SECRET_A]}, serve={"allow_private_targets": True}
        )
        uri = f"smtp://alice:{ENCODED}@localhost:{srv.port}/"
        with serving(settings) as base, httpx.Client(base_url=base) as http:
            put = http.put(
                "/admin/tenants/acme",
                json={
                    "smtp": {"connection_uri": uri, "from_address": "a@example.org"},
                    "intake_tokens": ["acme-token-0123456789abcdef"],
                },
                headers=AUTH,
            )
            assert put.status_code == 200, put.text
            shown = http.get("/admin/tenants/acme", headers=AUTH).json()
            assert shown["source"] == "api"
            assert shown["courier"]["smtp"]["connection_uri"] == (
                f"smtp://alice:***@localhost:{srv.port}/"
            )
            assert PASSWORD not in http.get("/admin/tenants", headers=AUTH).text
            assert ENCODED not in http.get("/admin/tenants", headers=AUTH).text
            # Send it back as shown, with another change: the stored password is kept.
            back = shown["courier"]
            back["smtp"]["from_name"] = "Acme"
            assert http.put("/admin/tenants/acme", json=back, headers=AUTH).status_code == 200
            # What GET answers goes back as it is too: id and source are read-only.
            echoed = http.get("/admin/tenants/acme", headers=AUTH).json()
            assert set(echoed) == {"id", "source", "courier"}
            again = http.put("/admin/tenants/acme", json=echoed, headers=AUTH)
            assert again.status_code == 200, again.text
            assert again.json()["courier"] == echoed["courier"]
            sent = http.post(
                "/admin/courier/messages",
                json={"recipient": "j@example.org", "template_type": "test", "tenant": "acme"},
                headers=AUTH,
            ).json()
            deadline = time.monotonic() + 10
            url = f"/admin/courier/messages/{sent['id']}"
            while http.get(url, headers=AUTH).json()["status"] != "sent":
                assert time.monotonic() < deadline, http.get(url, headers=AUTH).text
                time.sleep(0.05)
    assert srv.rec.logins == [("PLAIN", "alice", PASSWORD)]
    assert b"Acme" in srv.rec.messages[0].content
    stored = db_bytes(tmp_path)
    assert PASSWORD.encode() not in stored and ENCODED.encode() not in stored
    assert b"acme-token-0123456789abcdef" not in stored


def test_keys_rotate(settings_with: Callable[..., Settings]) -> None:
    async def scenario() -> None:
        first = settings_with(secrets={"default": [SECRET_A]})
        store = open_store(first.dsn)
        await store.migrate()
        try:
            uri = f"smtp://alice:{ENCODED}@smtp.example.org:587/"
            await TenantRegistry(first, store).save("acme", {"smtp": {"connection_uri": uri}})
            rotated = settings_with(secrets={"default": [SECRET_B, SECRET_A]})
            merged = await TenantRegistry(rotated, store).settings()
            smtp_uri = merged.tenant("acme").smtp.uri()
            assert smtp_uri is not None and smtp_uri.password == PASSWORD
            # Saving again encrypts with the new first key; the old key can then go.
            registry = TenantRegistry(rotated, store)
            await registry.save("acme", {"smtp": {"connection_uri": uri}})
            only_new = settings_with(secrets={"default": [SECRET_B]})
            merged = await TenantRegistry(only_new, store).settings()
            smtp_uri = merged.tenant("acme").smtp.uri()
            assert smtp_uri is not None and smtp_uri.password == PASSWORD
            # With the wrong key, that tenant (only) cannot be used, and says why.
            lost = TenantRegistry(settings_with(secrets={"default": [SECRET_A]}), store)
            usable = await lost.settings()
            assert "acme" not in usable.tenant_names() and "default" in usable.tenant_names()
            reason = lost.broken("acme") or ""
            assert "secrets.default" in reason and PASSWORD not in reason
            assert (await lost.describe("acme"))["error"] == reason
        finally:
            await store.close()

    asyncio.run(scenario())


def test_file_tenants_are_read_only(settings_with: Callable[..., Settings]) -> None:
    settings = settings_with(tenants={"acme": {"courier": {}}})
    with serving(settings, run_worker=False) as base, httpx.Client(base_url=base) as http:
        for name in ("default", "acme"):
            put = http.put(f"/admin/tenants/{name}", json={}, headers=AUTH)
            assert put.status_code == 409 and "file" in put.json()["error"]["reason"]
            assert http.delete(f"/admin/tenants/{name}", headers=AUTH).status_code == 409
        listed = http.get("/admin/tenants", headers=AUTH).json()
        assert [(t["id"], t["source"]) for t in listed] == [("default", "file"), ("acme", "file")]


# A generic OAuth2 login whose token endpoint is on the loopback (SSRF through the token fetch).
PRIVATE_TOKEN_URL = {
    "provider": "generic",
    "token_url": "https://127.0.0.1:8443/token",
    "client_id": "postroom",
    "client_secret": "s3cret",
    "scope": "smtp",
}


def test_api_tenants_may_not_name_files_or_private_targets(
    settings_with: Callable[..., Settings],
) -> None:
    with serving(settings_with(), run_worker=False) as base, httpx.Client(base_url=base) as http:
        for body, field in [
            ({"template_override_path": "/etc"}, "template_override_path"),
            ({"smtp": {"client_cert_path": "/etc/ssl/x.pem"}}, "smtp.client_cert_path"),
            ({"smtp": {"connection_uri": "smtp://127.0.0.1:25/"}}, "smtp.connection_uri"),
            ({"smtp": {"connection_uri": "smtp://10.1.2.3:25/"}}, "smtp.connection_uri"),
            ({"smtp": {"connection_uri": "smtp://localhost:25/"}}, "smtp.connection_uri"),
            ({"smtp": {"connection_uri": "smtp://[::1]:25/"}}, "smtp.connection_uri"),
            ({"smtp": {"connection_uri": "ftp://x/"}}, "smtp.connection_uri"),
            ({"smtp": {"oauth2": PRIVATE_TOKEN_URL}}, "smtp.oauth2.token_url"),
            ({"smtp": {"bogus": 1}}, "smtp.bogus"),
        ]:
            response = http.put("/admin/tenants/beta", json=body, headers=AUTH)
            assert response.status_code == 400, (body, response.text)
            assert field in response.json()["error"]["reason"], response.text
        bad_id = http.put("/admin/tenants/Not%20Valid", json={}, headers=AUTH)
        assert bad_id.status_code == 400
        ok = http.put(
            "/admin/tenants/beta",
            json={"smtp": {"connection_uri": "smtp://smtp.example.org:587/"}},
            headers=AUTH,
        )
        assert ok.status_code == 200
        assert http.delete("/admin/tenants/beta", headers=AUTH).status_code == 204
        assert http.get("/admin/tenants/beta", headers=AUTH).status_code == 404
        assert http.delete("/admin/tenants/beta", headers=AUTH).status_code == 404


def test_operator_flag_allows_private_targets(settings_with: Callable[..., Settings]) -> None:
    settings = settings_with(serve={"allow_private_targets": True})
    with serving(settings, run_worker=False) as base:
        ok = httpx.put(
            f"{base}/admin/tenants/lab",
            json={"smtp": {"connection_uri": "smtp://127.0.0.1:25/"}},
            headers=AUTH,
        )
        assert ok.status_code == 200


def test_credentials_need_a_configured_secret(settings_with: Callable[..., Settings]) -> None:
    settings = settings_with(secrets={"default": []})
    with serving(settings, run_worker=False) as base:
        response = httpx.put(
            f"{base}/admin/tenants/acme",
            json={"smtp": {"connection_uri": "smtp://u:pw@smtp.example.org:587/"}},
            headers=AUTH,
        )
        assert response.status_code == 400
        assert "secrets.default" in response.json()["error"]["reason"]
