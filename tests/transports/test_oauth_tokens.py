"""The token cache and the grants on their own: reuse until shortly before expiry, one request
for many callers, drop and fetch again, the JWT assertion's signature, refresh-token rotation
and what a token endpoint's refusal or absence becomes."""

from __future__ import annotations

import asyncio
import base64
import json
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from postroom.config.oauth2 import OAuth2Settings
from postroom.diagnosis.classify import diagnose_error
from postroom.errors import OAuthError
from postroom.oauth.client import TokenCache, token_cache
from postroom.oauth.endpoint import TokenEndpoint
from postroom.oauth.grants import ClientCredentialsGrant, RefreshTokenGrant
from postroom.oauth.signing import jwt_assertion
from postroom.oauth.tokens import AccessToken, TokenAnswer

from oauth_server import CLIENT_ID, CLIENT_SECRET, oauth_endpoint
from smtp_servers import free_port


class FakeGrant:
    """A grant that counts its requests (the cache's logic, without a network)."""

    source = "test (fake)"

    def __init__(self, lifetime: float = 3600) -> None:
        self.lifetime = lifetime
        self.fetches = 0

    async def fetch(self) -> TokenAnswer:
        self.fetches += 1
        await asyncio.sleep(0.01)
        return TokenAnswer(f"token-{self.fetches}", self.lifetime)


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


async def test_a_token_is_reused_until_shortly_before_it_expires() -> None:
    grant, clock = FakeGrant(3600), Clock()
    cache = TokenCache(grant, clock=clock)
    first = await cache.get()
    assert first.fresh and first.value == "token-1"
    clock.now += 3290  # 5 minutes and 10 seconds left: still good
    again = await cache.get()
    assert (again.value, again.fresh) == ("token-1", False)
    clock.now += 20  # less than 5 minutes left: renewed before it expires
    renewed = await cache.get()
    assert (renewed.value, renewed.fresh) == ("token-2", True)
    assert cache.requests == grant.fetches == 2


async def test_short_tokens_are_renewed_in_the_last_tenth_of_their_life() -> None:
    grant, clock = FakeGrant(60), Clock()
    cache = TokenCache(grant, clock=clock)
    await cache.get()
    clock.now += 53
    assert (await cache.get()).value == "token-1"
    clock.now += 2
    assert (await cache.get()).value == "token-2"


async def test_concurrent_callers_share_one_request_and_a_dropped_token_is_replaced() -> None:
    grant = FakeGrant()
    cache = TokenCache(grant)
    tokens = await asyncio.gather(*(cache.get() for _ in range(50)))
    assert {t.value for t in tokens} == {"token-1"} and grant.fetches == 1
    cache.drop(AccessToken("someone-else", tokens[0].expires_at))
    assert (await cache.get()).value == "token-1"  # dropping another token changes nothing
    cache.drop(tokens[0])
    assert (await cache.get()).value == "token-2"
    assert "token-" not in repr(tokens[0]) and "token-" not in repr(TokenAnswer("token-9", 1))


def test_the_jwt_assertion_is_signed_rs256_with_the_service_account_key() -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    from cryptography.hazmat.primitives import serialization

    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    ).decode()
    account = {
        "client_email": "svc@p.iam.gserviceaccount.com",
        "private_key": pem,
        "private_key_id": "kid-1",
        "token_uri": "https://oauth2.googleapis.com/token",
    }
    assertion = jwt_assertion(
        account, subject="a@example.org", scope="https://mail.google.com/", now=1700000000
    )
    head, body, sig = assertion.split(".")

    def decode(part: str) -> Any:
        return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))

    key.public_key().verify(
        decode(sig), f"{head}.{body}".encode(), padding.PKCS1v15(), hashes.SHA256()
    )
    assert json.loads(decode(head)) == {"alg": "RS256", "typ": "JWT", "kid": "kid-1"}
    assert json.loads(decode(body)) == {
        "iss": "svc@p.iam.gserviceaccount.com",
        "scope": "https://mail.google.com/",
        "aud": "https://oauth2.googleapis.com/token",
        "iat": 1700000000,
        "exp": 1700003600,
        "sub": "a@example.org",
    }


class MemoryKeeper:
    def __init__(self, token: str | None) -> None:
        self.token = token
        self.saved: list[str] = []

    async def load(self) -> str | None:
        return self.token

    async def save(self, token: str) -> None:
        self.token = token
        self.saved.append(token)


async def test_a_refresh_token_grant_keeps_the_rotated_token_and_tries_a_newer_one(
    pki: Any,
) -> None:
    with oauth_endpoint(pki.server_context()) as (provider, _http):
        provider.refresh_tokens.update({"rt-a": True, "rt-b": True})
        endpoint = TokenEndpoint(provider.token_url(), provider="microsoft", timeout=5)
        keeper = MemoryKeeper("rt-a")
        grant = RefreshTokenGrant(
            endpoint,
            client_id=CLIENT_ID,
            client_secret=None,
            scope="https://outlook.office.com/SMTP.Send offline_access",
            keeper=keeper,
            configured=None,
        )
        answer = await grant.fetch()
        assert answer.access_token.startswith("at-")
        assert len(keeper.saved) == 1 and keeper.saved[0] != "rt-a"
        # Another worker rotated behind our back: ours is spent, the keeper has a newer one.
        provider.refresh_tokens[keeper.saved[0]] = False
        keeper.token = "rt-b"
        assert (await grant.fetch()).access_token.startswith("at-")
        used = [g.form["refresh_token"] for g in provider.grants("refresh_token")]
        assert used == ["rt-a", keeper.saved[0], "rt-b"]


async def test_token_endpoint_refusals_carry_the_providers_error(pki: Any) -> None:
    with oauth_endpoint(pki.server_context()) as (provider, _http):
        endpoint = TokenEndpoint(
            provider.token_url(), provider="microsoft", timeout=5, secrets=("wrong-secret-xyz",)
        )
        grant = ClientCredentialsGrant(
            endpoint,
            client_id=CLIENT_ID,
            client_secret="wrong-secret-xyz",
            scope="https://outlook.office365.com/.default",
        )
        with pytest.raises(OAuthError) as caught:
            await grant.fetch()
    exc = caught.value
    assert (exc.stage, exc.reply_code, exc.error) == ("token", 401, "invalid_client")
    assert exc.description is not None and exc.description.startswith("AADSTS7000215")
    assert "wrong-secret-xyz" not in str(exc) + (exc.reply or "")
    diagnosis = diagnose_error(exc)
    assert diagnosis.code == "oauth_token_rejected" and not diagnosis.transient
    assert diagnosis.cause.startswith("Microsoft Entra ID (127.0.0.1) refused")


async def test_an_unreachable_token_endpoint_is_retried(pki: Any) -> None:
    settings = OAuth2Settings(
        provider="generic",
        token_url=f"https://127.0.0.1:{free_port()}/token",
        client_id=CLIENT_ID,
        client_secret=CLIENT_SECRET,
        scope="smtp",
    )
    cache = token_cache(settings, user="a@example.org", timeout=2)
    assert cache is not None
    with pytest.raises(OAuthError) as caught:
        await cache.get()
    diagnosis = diagnose_error(caught.value)
    assert (diagnosis.code, diagnosis.transient, diagnosis.stage) == (
        "connection_refused",
        True,
        "token",
    )
    assert "token endpoint" in diagnosis.cause and CLIENT_SECRET not in diagnosis.cause


async def test_an_untrusted_token_endpoint_certificate_is_refused(pki: Any) -> None:
    with oauth_endpoint(pki.server_context(trusted=False)) as (provider, _http):
        settings = OAuth2Settings(
            provider="generic",
            token_url=provider.token_url(),
            client_id=CLIENT_ID,
            client_secret=CLIENT_SECRET,
            scope="smtp",
        )
        cache = token_cache(settings, user="a@example.org", timeout=2)
        assert cache is not None
        with pytest.raises(OAuthError) as caught:
            await cache.get()
    assert diagnose_error(caught.value).code == "tls_certificate_untrusted"
    assert provider.grants() == []


async def test_api_tenants_may_not_send_token_requests_to_private_addresses(pki: Any) -> None:
    with oauth_endpoint(pki.server_context()) as (provider, _http):
        settings = OAuth2Settings(
            provider="generic",
            token_url=provider.token_url(),
            client_id=CLIENT_ID,
            client_secret=CLIENT_SECRET,
            scope="smtp",
        )
        cache = token_cache(settings, user="a@example.org", timeout=2, allow_private_targets=False)
        assert cache is not None
        with pytest.raises(OAuthError) as caught:
            await cache.get()
    assert diagnose_error(caught.value).code == "target_forbidden"
    assert provider.grants() == []
