"""The SSRF guard (``net.targets``) on its own, and the HTTP transport's TLS, message id
and Retry-After handling against a real local server."""

from __future__ import annotations

import logging
import ssl
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest

from postroom.config.http import HttpSettings
from postroom.diagnosis import diagnose_error
from postroom.errors import DeliveryError, HttpDeliveryError
from postroom.net.targets import check_address, forbidden_reason, resolve_target
from postroom.transports.base import Envelope
from postroom.transports.http import HttpTransport, parse_retry_after

from conftest import Pki
from http_servers import http_server, reply

FORBIDDEN = {
    "127.0.0.1": "loopback",
    "127.8.9.10": "loopback",
    "::1": "loopback",
    "10.1.2.3": "private",
    "172.16.0.1": "private",
    "192.168.1.1": "private",
    "fd12:3456::1": "private",
    "169.254.169.254": "the cloud metadata service",
    "169.254.10.1": "link-local",
    "fe80::1": "link-local",
    "0.0.0.0": "unspecified",
    "::": "unspecified",
    "224.0.0.1": "multicast",
    "ff02::1": "multicast",
    "240.0.0.1": "reserved",
    "100.64.0.1": "carrier-grade NAT",
    "::ffff:127.0.0.1": "loopback",
    "::ffff:10.0.0.1": "private",
    "64:ff9b::a9fe:a9fe": "the cloud metadata service",
    "2002:7f00:1::1": "loopback",
}


@pytest.mark.parametrize(("address", "reason"), FORBIDDEN.items())
def test_forbidden_addresses_are_named(address: str, reason: str) -> None:
    assert forbidden_reason(address) == reason
    with pytest.raises(DeliveryError) as caught:
        check_address("api.example.org", address, allow_private_targets=False)
    assert caught.value.hint == "target_forbidden"
    assert reason in str(caught.value)
    assert "serve.allow_private_targets" in str(caught.value)


@pytest.mark.parametrize("address", ["8.8.8.8", "1.1.1.1", "2606:4700:4700::1111", "100.128.0.1"])
def test_public_addresses_pass(address: str) -> None:
    assert forbidden_reason(address) is None
    check_address("api.example.org", address, allow_private_targets=False)


@pytest.mark.parametrize("address", ["127.0.0.1", "10.0.0.1", "169.254.169.254", "::1"])
def test_private_addresses_are_allowed_when_permitted(address: str) -> None:
    check_address("internal", address, allow_private_targets=True)


async def test_resolution_refuses_a_name_that_points_to_loopback() -> None:
    with pytest.raises(DeliveryError) as caught:
        await resolve_target("localhost", 443, allow_private_targets=False)
    assert caught.value.hint == "target_forbidden"
    targets = await resolve_target("localhost", 443, allow_private_targets=True)
    assert {t.address for t in targets} <= {"127.0.0.1", "::1"}
    assert targets and all(t.port == 443 for t in targets)


async def test_an_unresolvable_name_is_dns_unresolved() -> None:
    with pytest.raises(DeliveryError) as caught:
        await resolve_target("no-such-host.invalid", 443, allow_private_targets=False)
    assert (caught.value.hint, caught.value.stage) == ("dns_unresolved", "dns")


def envelope() -> Envelope:
    return Envelope(
        message_id="m-1",
        sender="no-reply@example.org",
        recipients=("you@example.org",),
        data=b"",
        recipient="you@example.org",
        subject="Your login code",
        text="Your code is 123456",
        template_type="login_code_valid",
        template_data={"login_code": "123456"},
    )


def transport(url: str, *, allow_private_targets: bool = True, **config: object) -> HttpTransport:
    settings = HttpSettings.model_validate({"request_config": {"url": url, **config}})
    return HttpTransport(settings, allow_private_targets=allow_private_targets)


@pytest.mark.parametrize("host", ["127.0.0.1", "[::1]", "localhost"])
async def test_the_transport_refuses_loopback_unless_allowed(host: str) -> None:
    with http_server() as srv:
        blocked = transport(f"http://{host}:{srv.port}/send", allow_private_targets=False)
        try:
            with pytest.raises(HttpDeliveryError) as caught:
                await blocked.send(envelope())
        finally:
            await blocked.close()
    assert srv.requests == []
    diagnosis = diagnose_error(caught.value)
    assert (diagnosis.code, diagnosis.transient) == ("target_forbidden", False)


async def test_the_transport_reaches_loopback_when_allowed() -> None:
    with http_server() as srv:
        allowed = transport(f"http://127.0.0.1:{srv.port}/send", allow_private_targets=True)
        try:
            result = await allowed.send(envelope())
        finally:
            await allowed.close()
    assert result.reply is not None and result.reply.startswith("202")
    assert len(srv.requests) == 1


async def test_tls_is_verified_against_the_trust_store(pki: Pki) -> None:
    with http_server(tls=pki.server_context("localhost", "127.0.0.1")) as srv:
        https = transport(srv.url)
        try:
            result = await https.send(envelope())
        finally:
            await https.close()
    assert result.reply is not None and result.reply.startswith("202")
    assert len(srv.requests) == 1


async def test_an_untrusted_certificate_is_refused_for_good(pki: Pki) -> None:
    with http_server(tls=pki.server_context("localhost", "127.0.0.1", trusted=False)) as srv:
        https = transport(srv.url)
        try:
            with pytest.raises(HttpDeliveryError) as caught:
                await https.send(envelope())
        finally:
            await https.close()
    assert srv.requests == []
    diagnosis = diagnose_error(caught.value)
    assert (diagnosis.code, diagnosis.transient, diagnosis.stage) == (
        "tls_certificate_untrusted",
        False,
        "tls",
    )


async def test_https_to_a_plain_http_port_is_the_wrong_mode() -> None:
    with http_server() as srv:
        https = transport(srv.url.replace("http://", "https://"))
        try:
            with pytest.raises(HttpDeliveryError) as caught:
                await https.send(envelope())
        finally:
            await https.close()
    diagnosis = diagnose_error(caught.value)
    assert (diagnosis.code, diagnosis.transient) == ("tls_wrong_mode", False)


@pytest.mark.parametrize(
    ("answer", "message_id"),
    [
        (reply(202, X_Message_Id="W3bq2RSQ"), "W3bq2RSQ"),
        (
            reply(200, {"id": "<2024.1@mg.example.org>", "message": "Queued."}),
            "2024.1@mg.example.org",  # as Mailgun's events name it: no angle brackets
        ),
        (reply(200, {"ErrorCode": 0, "MessageID": "b7bc2f4a-e38e"}), "b7bc2f4a-e38e"),
        (reply(204), None),
    ],
    ids=["sendgrid", "mailgun", "postmark", "none"],
)
async def test_the_providers_message_id_is_kept(answer: object, message_id: str | None) -> None:
    with http_server([answer]) as srv:  # type: ignore[list-item]
        http = transport(srv.url)
        try:
            result = await http.send(envelope())
        finally:
            await http.close()
    assert result.provider_message_id == message_id


async def test_connections_are_reused() -> None:
    with http_server() as srv:
        http = transport(srv.url)
        try:
            for _ in range(5):
                await http.send(envelope())
        finally:
            await http.close()
    assert len(srv.requests) == 5
    assert all(r.header("connection") != "close" for r in srv.requests)


def test_retry_after_in_seconds_and_as_an_http_date() -> None:
    now = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)
    assert parse_retry_after("2", now=now) == 2.0
    assert parse_retry_after(" 120 ", now=now) == 120.0
    later = format_datetime(now + timedelta(seconds=90), usegmt=True)
    assert parse_retry_after(later, now=now) == 90.0
    earlier = format_datetime(now - timedelta(seconds=90), usegmt=True)
    assert parse_retry_after(earlier, now=now) == 0.0
    assert parse_retry_after("soon", now=now) is None
    assert parse_retry_after(None, now=now) is None


async def test_a_503_carries_its_retry_after_date() -> None:
    when = format_datetime(datetime.now(UTC) + timedelta(seconds=30), usegmt=True)
    with http_server([reply(503, "maintenance", Retry_After=when)]) as srv:
        http = transport(srv.url)
        try:
            with pytest.raises(HttpDeliveryError) as caught:
                await http.send(envelope())
        finally:
            await http.close()
    assert caught.value.retry_after is not None
    assert 25 <= caught.value.retry_after <= 31
    assert caught.value.reply == "503 maintenance"


def test_tls_context_refuses_old_versions() -> None:
    from postroom.net.client import tls_context

    context = tls_context()
    assert context.minimum_version >= ssl.TLSVersion.TLSv1_2
    assert context.verify_mode is ssl.CERT_REQUIRED and context.check_hostname


async def test_a_key_in_the_query_or_auth_never_reaches_the_logs(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    with http_server([reply(401, "bad key")]) as srv:
        http = transport(
            srv.url + "?api_key=SECRET-IN-QUERY",
            auth={"type": "api_key", "config": {"name": "X-Key", "value": "SECRET-IN-HEADER"}},
        )
        try:
            with pytest.raises(HttpDeliveryError) as caught:
                await http.send(envelope())
        finally:
            await http.close()
    assert srv.requests[0].path.endswith("?api_key=SECRET-IN-QUERY")
    assert srv.requests[0].header("x-key") == "SECRET-IN-HEADER"
    shown = caplog.text + str(caught.value) + repr(diagnose_error(caught.value))
    assert "HTTP Request" in caplog.text
    assert "SECRET" not in shown
