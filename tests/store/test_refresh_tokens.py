"""Where a device-code sign-in's refresh token is read from and kept: the store's row when it
descends from the configured token, else the configuration; always encrypted."""

from __future__ import annotations

from postroom.config.settings import CourierSettings
from postroom.store import Store
from postroom.store.refresh_tokens import refresh_token_keeper

SECRET = "a-test-secret-that-is-long-enough-0001"


def device(refresh_token: str | None = None) -> CourierSettings:
    oauth = {"provider": "microsoft", "flow": "device_code", "client_id": "app"}
    if refresh_token:
        oauth["refresh_token"] = refresh_token
    return CourierSettings.model_validate(
        {
            "smtp": {
                "connection_uri": "smtp://a%40outlook.com@smtp-mail.outlook.com:587/",
                "oauth2": oauth,
            }
        }
    )


async def test_the_kept_token_wins_until_the_configured_one_changes(store: Store) -> None:
    keeper = refresh_token_keeper(store, device("rt-configured"), "acme", secrets=[SECRET])
    assert keeper is not None
    assert await keeper.load() == "rt-configured"
    await keeper.save("rt-rotated")
    row = await store.get_oauth_token("acme")
    assert row is not None and row.refresh_token.startswith("enc:v1:")
    assert "rt-rotated" not in row.refresh_token
    assert await keeper.load() == "rt-rotated"
    # Someone signed in again (a new configured token): the rotated row is out of date.
    fresh = refresh_token_keeper(store, device("rt-new-login"), "acme", secrets=[SECRET])
    assert fresh is not None
    assert await fresh.load() == "rt-new-login"


async def test_only_device_code_tenants_have_a_keeper(store: Store) -> None:
    plain = CourierSettings()
    assert refresh_token_keeper(store, plain, "default", secrets=[SECRET]) is None
    file_tenant = refresh_token_keeper(store, device(), "default", secrets=[SECRET])
    assert file_tenant is not None
    assert await file_tenant.load() is None
