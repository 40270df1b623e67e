"""The Tenants and Sessions contracts, run against every backend: saved tenants, the OAuth2
refresh tokens kept per tenant, and dashboard sessions shared by every process."""

from __future__ import annotations

from datetime import timedelta

from postroom.store import Store, open_store, utcnow


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


async def test_saved_tenants_are_listed_replaced_and_deleted(any_store: Store) -> None:
    before = await any_store.tenants_version()
    assert await any_store.list_tenants() == []
    first = await any_store.put_tenant("acme", {"smtp": {"from_address": "a@acme.example"}})
    changed = await any_store.tenants_version()
    assert changed != before
    second = await any_store.put_tenant("acme", {"smtp": {"from_address": "b@acme.example"}})
    assert second.created_at == first.created_at and second.updated_at >= first.updated_at
    await any_store.put_tenant("beta", {})
    assert [t.id for t in await any_store.list_tenants()] == ["acme", "beta"]
    kept = await any_store.get_tenant("acme")
    assert kept is not None and kept.courier == {"smtp": {"from_address": "b@acme.example"}}
    assert await any_store.get_tenant("nobody") is None
    assert await any_store.delete_tenant("beta")
    assert not await any_store.delete_tenant("beta")
    assert await any_store.tenants_version() != changed


async def test_a_dashboard_session_lives_until_it_ends_or_expires(any_store: Store) -> None:
    signed_in, old, never = "a" * 64, "b" * 64, "c" * 64
    await any_store.start_session(signed_in, expires_at=utcnow() + timedelta(hours=12))
    await any_store.start_session(old, expires_at=utcnow() - timedelta(seconds=1))
    assert await any_store.session_active(signed_in)
    assert not await any_store.session_active(old)  # past its expiry
    assert not await any_store.session_active(never)
    await any_store.end_session(signed_in)
    assert not await any_store.session_active(signed_in)
    await any_store.end_session(signed_in)  # ending it twice is no error
    await any_store.end_session(never)


async def test_a_dashboard_session_is_shared_by_two_stores_on_one_database(sql_dsn: str) -> None:
    one, two = open_store(sql_dsn), open_store(sql_dsn)  # two processes, one database
    await one.migrate()
    signed_in, old, never = "a" * 64, "b" * 64, "c" * 64
    try:
        await one.start_session(signed_in, expires_at=utcnow() + timedelta(hours=12))
        await one.start_session(old, expires_at=utcnow() - timedelta(seconds=1))
        assert await two.session_active(signed_in)
        assert not await two.session_active(old)  # past its expiry
        assert not await two.session_active(never)
        await two.end_session(signed_in)  # signing out on the other process ...
        assert not await one.session_active(signed_in)  # ... ends it here at once
        await one.end_session(signed_in)  # ending it twice is no error
        await one.end_session(never)
    finally:
        await one.close()
        await two.close()
