"""Listener logins through the admin API: a tenant saved through the API gets generated
passwords (shown once), lists usernames without secrets, and a deleted login stops working at
once. Usernames are unique across tenants; file tenants keep theirs in the file."""

from __future__ import annotations

import smtplib
from collections.abc import Callable

import httpx
import pytest

from postroom.config import Settings

from conftest import Pki
from listener_support import PASSWORD, client_tls, listening, mail, submit, wait_until
from smtp_servers import smtp_server
from web_support import AUTH


def test_api_tenant_logins_are_made_listed_used_and_deleted(
    make: Callable[..., Settings], pki: Pki
) -> None:
    with smtp_server() as sink:
        settings = make()
        settings = settings.model_copy(
            update={"serve": settings.serve.model_copy(update={"allow_private_targets": True})}
        )
        with listening(settings) as run, httpx.Client(base_url=run.url, headers=AUTH) as api:
            uri = f"smtp://127.0.0.1:{sink.port}/?disable_starttls=true"
            saved = api.put(
                "/admin/tenants/acme",
                json={"smtp": {"connection_uri": uri, "from_address": "id@acme.example"}},
            )
            assert saved.status_code == 200, saved.text
            made = api.post("/admin/tenants/acme/smtp-logins", json={"username": "kc-acme"})
            assert made.status_code == 201, made.text
            login = made.json()
            assert set(login) == {"username", "password"} and len(login["password"]) >= 43
            assert (
                api.post(
                    "/admin/tenants/acme/smtp-logins", json={"username": "kc-acme"}
                ).status_code
                == 409
            )
            taken = api.post("/admin/tenants/acme/smtp-logins", json={"username": "keycloak"})
            assert taken.status_code == 409  # a login of the file's default tenant
            generated = api.post("/admin/tenants/acme/smtp-logins").json()["username"]
            assert generated.startswith("acme-")
            listed = api.get("/admin/tenants/acme/smtp-logins").json()
            assert [x["username"] for x in listed["logins"]] == sorted(["kc-acme", generated])
            assert login["password"] not in str(listed) and "sha256$" not in str(listed)
            assert listed["connection"]["encryption"] == "STARTTLS"

            submit(
                run.port,
                mail(),
                to=("acme-user@example.org",),
                login=("kc-acme", login["password"]),
                context=client_tls(pki),
            )
            wait_until(lambda: sink.rec.messages, what="the API tenant's delivery")
            assert sink.rec.messages[0].rcpt_tos == ["acme-user@example.org"]

            assert api.delete("/admin/tenants/acme/smtp-logins/kc-acme").status_code == 204
            assert api.delete("/admin/tenants/acme/smtp-logins/kc-acme").status_code == 404
            with pytest.raises(smtplib.SMTPAuthenticationError):
                submit(
                    run.port,
                    mail(),
                    login=("kc-acme", login["password"]),
                    context=client_tls(pki),
                )


def test_file_tenants_and_saved_logins_in_a_courier_are_refused(
    make: Callable[..., Settings],
) -> None:
    with listening(make()) as run, httpx.Client(base_url=run.url, headers=AUTH) as api:
        answer = api.post("/admin/tenants/default/smtp-logins")
        assert answer.status_code == 409
        assert "configuration file" in answer.json()["error"]["reason"]
        listed = api.get("/admin/tenants/default/smtp-logins").json()
        assert listed["logins"] == [
            {"username": "keycloak", "priority": "urgent", "source": "file", "created_at": None}
        ]
        with_logins = api.put(
            "/admin/tenants/beta",
            json={"listener": {"logins": [{"username": "x", "password": PASSWORD}]}},
        )
        assert with_logins.status_code == 400
        assert "smtp-logins" in with_logins.json()["error"]["reason"]
        assert api.get("/admin/tenants/nope/smtp-logins").status_code == 404
