"""DKIM signatures that an independent verifier (dkimpy) accepts, for RSA and Ed25519, on mail
from every intake path, as it arrives at a real SMTP server, in the outbox and in the raw MIME
an HTTP provider is given; and a message altered after signing fails."""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import dkim
import pytest

from postroom.config import Settings, load_settings
from postroom.deliverability.dkim import (
    SigningKey,
    generate_key,
    private_pem,
    public_value,
    sign_message,
    txt_record,
)
from postroom.deliverability.signer import dkim_sign
from postroom.errors import ConfigError
from postroom.intake import SendRequest, enqueue
from postroom.intake.bulk import read_bulk
from postroom.intake.enqueue import enqueue_prepared
from postroom.intake.ory import from_ory
from postroom.store import Store
from postroom.worker import Worker

from http_servers import http_server
from smtp_servers import smtp_server

SECRET = "s" * 40


def dns_serving(printed: str) -> Callable[..., bytes]:
    """A DNS function for dkimpy that serves the record exactly as ``txt_record`` printed it:
    the quoted 255-byte strings joined, as a resolver joins them."""
    name = printed.split()[0].encode()
    strings = re.findall(r'"([^"]*)"', printed)
    assert all(len(s) <= 255 for s in strings)

    def lookup(asked: bytes, timeout: int = 5) -> bytes:
        assert asked == name, asked
        return "".join(strings).encode()

    return lookup


def key_file(tmp_path: Path, algorithm: str) -> tuple[Path, str]:
    key = generate_key(algorithm)  # type: ignore[arg-type]
    path = tmp_path / f"{algorithm}.pem"
    path.write_text(private_pem(key))
    return path, txt_record("example.org", "mail", algorithm, public_value(key))  # type: ignore[arg-type]


def signing_settings(
    make_settings: Callable[..., Settings], path: Path, algorithm: str, **courier: Any
) -> Settings:
    dkim_section = {
        "domain": "example.org",
        "selector": "mail",
        "algorithm": algorithm,
        "private_key_path": str(path),
    }
    return make_settings(dkim=dkim_section, **courier)


ALGORITHMS = ["rsa-sha256", "ed25519-sha256"]
# The sink refuses the first DATA it is given (a retry follows) and accepts the rest.
FIRST_DATA_REFUSED: dict[str, Any] = {
    "DATA": lambda rec, n: "451 4.3.0 try later" if n == 1 else None
}


@pytest.mark.parametrize("algorithm", ALGORITHMS)
async def test_every_intake_path_stores_a_signature_that_verifies(
    algorithm: str, store: Store, make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    path, record = key_file(tmp_path, algorithm)
    settings = signing_settings(make_settings, path, algorithm)
    bulk = tmp_path / "bulk.jsonl"
    bulk.write_text(json.dumps({"to": "b@example.net", "subject": "Hi", "text": "Body"}) + "\n")
    ory = from_ory(
        {
            "recipient": "ory@example.net",
            "template_type": "login_code_valid",
            "login_code": "424242",
        },
        tenant="default",
    )
    requests = [
        SendRequest(
            to="api@example.net", template_type="login_code_valid", data={"login_code": "1"}
        ),
        SendRequest(
            to="stub@example.net", subject="Ünïcode  subject", text="a\n\n", html="<p>b</p>"
        ),
        ory,
    ]
    results = await enqueue(store, settings, requests)
    results += await enqueue_prepared(store, settings, read_bulk(bulk, settings).good)
    assert len(results) == 4
    verify = dns_serving(record)
    for message, _ in results:
        stored = (await store.get(message.id)).mime
        assert stored.startswith(b"DKIM-Signature: v=1; a=" + algorithm.encode())
        assert dkim.verify(stored, dnsfunc=verify), stored[:400]
        altered = stored.replace(b"To: ", b"To: x", 1)
        assert not dkim.verify(altered, dnsfunc=verify)


@pytest.mark.parametrize("algorithm", ALGORITHMS)
async def test_the_smtp_server_and_the_outbox_receive_the_signed_bytes_on_every_attempt(
    algorithm: str, store: Store, make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    path, record = key_file(tmp_path, algorithm)
    verify = dns_serving(record)
    with smtp_server(faults=FIRST_DATA_REFUSED) as srv:
        settings = signing_settings(
            make_settings,
            path,
            algorithm,
            smtp={"connection_uri": f"smtp://127.0.0.1:{srv.port}/?disable_starttls=true"},
            delivery_strategy="smtp",
        )
        [(message, _)] = await enqueue(
            store, settings, [SendRequest(to="you@example.net", subject="Code", text="123456")]
        )
        await Worker(store, settings).run(drain=True, max_wait=5)
    [accepted] = srv.rec.messages
    assert srv.handler.calls["DATA"] == 2  # refused once, then the same bytes again
    assert dkim.verify(accepted.content, dnsfunc=verify)
    assert accepted.content == (await store.get(message.id)).mime

    outbox = signing_settings(make_settings, path, algorithm, delivery_strategy="outbox")
    [(message, _)] = await enqueue(
        store, outbox, [SendRequest(to="you@example.net", subject="Code", text="654321")]
    )
    await Worker(store, outbox).run(drain=True, max_wait=5)
    written = (tmp_path / "outbox" / f"{message.id}.eml").read_bytes()
    assert dkim.verify(written, dnsfunc=verify)


async def test_mail_from_another_domain_is_not_signed(
    store: Store, make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    path, _ = key_file(tmp_path, "ed25519-sha256")
    settings = signing_settings(make_settings, path, "ed25519-sha256")
    other = settings.model_copy(
        update={
            "courier": settings.courier.model_copy(
                update={
                    "smtp": settings.courier.smtp.model_copy(
                        update={"from_address": "no-reply@other.example"}
                    )
                }
            )
        }
    )
    [(message, _)] = await enqueue(store, other, [SendRequest(to="a@b.org", subject="s", text="t")])
    assert b"DKIM-Signature" not in (await store.get(message.id)).mime
    # The listener's call: a subdomain of the DKIM domain is signed, another domain is not.
    sub = b"From: a@mail.example.org\r\nTo: b@c.org\r\nSubject: x\r\n\r\nbody\n"
    assert (await dkim_sign(store, settings, "default", sub)).startswith(b"DKIM-Signature:")
    foreign = b"From: a@example.net\r\nTo: b@c.org\r\n\r\nbody\r\n"
    assert await dkim_sign(store, settings, "default", foreign) == foreign


def test_a_header_added_after_signing_breaks_the_signature() -> None:
    key = generate_key("rsa-sha256")
    record = txt_record("example.org", "s1", "rsa-sha256", public_value(key))
    mime = b"From: a@example.org\r\nTo: b@example.net\r\nSubject: hi\r\n\r\nbody\r\n"
    signed = sign_message(mime, SigningKey("example.org", "s1", "rsa-sha256", key))
    verify = dns_serving(record)
    assert dkim.verify(signed, dnsfunc=verify)
    for extra in (b"From: evil@example.org\r\n", b"Reply-To: evil@example.net\r\n"):
        head, body = signed.split(b"\r\n\r\n", 1)
        assert not dkim.verify(
            head + b"\r\n" + extra.rstrip(b"\r\n") + b"\r\n\r\n" + body, dnsfunc=verify
        )


async def test_an_http_provider_gets_the_signed_mime_as_ctx_raw_mime(
    store: Store, make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    path, record = key_file(tmp_path, "rsa-sha256")
    with http_server() as srv:
        settings = signing_settings(
            make_settings,
            path,
            "rsa-sha256",
            delivery_strategy="http",
            http={
                "request_config": {
                    "url": srv.url,
                    "body": "function(ctx) { raw: std.base64(ctx.raw_mime), to: ctx.recipient }",
                }
            },
        )
        [(message, _)] = await enqueue(
            store, settings, [SendRequest(to="you@example.net", subject="Code", text="777")]
        )
        await Worker(store, settings).run(drain=True, max_wait=5)
    [request] = srv.requests
    raw = base64.b64decode(request.json()["raw"])
    assert raw == (await store.get(message.id)).mime
    assert dkim.verify(raw, dnsfunc=dns_serving(record))


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (None, "cannot be read (No such file or directory)"),
        ("not a key", "is not an unencrypted PEM private key"),
        ("ed25519", "holds an Ed25519 key, not one for rsa-sha256"),
    ],
)
def test_a_bad_key_file_is_refused_when_the_configuration_is_read(
    tmp_path: Path, content: str | None, problem: str
) -> None:
    key = tmp_path / "dkim.pem"
    if content == "ed25519":
        key.write_text(private_pem(generate_key("ed25519-sha256")))
    elif content is not None:
        key.write_text(content)
    config = tmp_path / "postroom.yaml"
    config.write_text(
        "tenants:\n  acme:\n    courier:\n      dkim: {domain: example.org, selector: s1, "
        f"algorithm: rsa-sha256, private_key_path: {key}}}\n"
    )
    with pytest.raises(
        ConfigError, match=r"tenants\.acme\.courier\.dkim\.private_key_path"
    ) as caught:
        load_settings(config)
    assert problem in str(caught.value)


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"\r\n\r\n",
        b"no line end",
        b"tabs\t\tand  spaces  \r\n \t \r\nlast line \t\r\n\r\n \r\n",
        b"bare\nline feeds\n\n",
    ],
)
def test_relaxed_body_edge_cases_verify(body: bytes) -> None:
    key = generate_key("ed25519-sha256")
    record = txt_record("example.org", "s1", "ed25519-sha256", public_value(key))
    mime = b"From: a@example.org\r\nSubject:  folded\r\n\tsubject \r\n\r\n" + body
    signed = sign_message(mime, SigningKey("example.org", "s1", "ed25519-sha256", key))
    assert dkim.verify(signed, dnsfunc=dns_serving(record))
