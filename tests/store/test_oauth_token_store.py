"""The store's two verbs for OAuth2 refresh tokens, on every backend."""

from __future__ import annotations

from postroom.store import Store


async def test_oauth_tokens_are_kept_per_tenant_and_replaced(any_store: Store) -> None:
    assert await any_store.get_oauth_token("default") is None
    first = await any_store.put_oauth_token("default", refresh_token="enc:v1:aaa", origin=None)
    kept = await any_store.get_oauth_token("default")
    assert kept is not None
    assert (kept.tenant, kept.refresh_token, kept.origin) == ("default", "enc:v1:aaa", None)
    assert kept.updated_at == first.updated_at
    await any_store.put_oauth_token("default", refresh_token="enc:v1:bbb", origin="abc123")
    await any_store.put_oauth_token("acme", refresh_token="enc:v1:ccc", origin=None)
    kept = await any_store.get_oauth_token("default")
    assert kept is not None
    assert (kept.refresh_token, kept.origin) == ("enc:v1:bbb", "abc123")
    assert kept.updated_at >= first.updated_at
    other = await any_store.get_oauth_token("acme")
    assert other is not None and other.refresh_token == "enc:v1:ccc"


async def test_deleting_a_tenant_deletes_its_refresh_token(any_store: Store) -> None:
    await any_store.put_tenant("acme", {"smtp": {"from_address": "no-reply@acme.example"}})
    await any_store.put_oauth_token("acme", refresh_token="enc:v1:ccc", origin=None)
    await any_store.put_oauth_token("other", refresh_token="enc:v1:ddd", origin=None)
    assert await any_store.delete_tenant("acme")
    assert await any_store.get_oauth_token("acme") is None
    assert await any_store.get_oauth_token("other") is not None
