"""What the CLI and the dashboard share for deliverability: making, listing and activating
DKIM keys, and running ``doctor`` for a tenant off the event loop."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import dns.resolver

from postroom.config import Settings
from postroom.config.secrets import Crypter
from postroom.deliverability.checks import (
    Check,
    ExpectedKey,
    Report,
    Setup,
    dkim_key_check,
    setup_of,
)
from postroom.deliverability.dkim import (
    Algorithm,
    generate_key,
    private_pem,
    public_value,
    txt_record,
)
from postroom.deliverability.doctor import run_doctor
from postroom.deliverability.resolver import make_resolver
from postroom.deliverability.signer import file_signing_key
from postroom.errors import ConfigError, InputError
from postroom.store.base import StoredDkimKey
from postroom.store.roles import DkimKeys


def _courier_domain(settings: Settings, tenant: str) -> str:
    if tenant not in settings.tenant_names():
        raise InputError(
            f"unknown tenant {tenant!r}; known tenants: {', '.join(settings.tenant_names())}",
            field="--tenant",
        )
    courier = settings.tenant(tenant)
    domain = courier.dkim.domain
    if domain is None:
        where = "courier" if tenant == "default" else f"tenants.{tenant}.courier"
        sender = courier.smtp.from_address.rpartition("@")[2]
        raise ConfigError(
            f"is not set, so this tenant does not sign; set it to the domain of its From "
            f"address (dkim: {{domain: {sender}}})",
            path=f"{where}.dkim.domain",
        )
    if courier.dkim.private_key_path is not None:
        raise ConfigError(
            "is set, so this tenant signs with that file and a stored key would never be used; "
            "remove it to use keys made by `postroom dkim generate`",
            path=f"{'courier' if tenant == 'default' else f'tenants.{tenant}.courier'}"
            ".dkim.private_key_path",
        )
    return domain


async def generate(
    store: DkimKeys, settings: Settings, tenant: str, selector: str, algorithm: Algorithm
) -> tuple[StoredDkimKey, str]:
    """Make and store an inactive key for ``tenant``; return it with the TXT record to publish.

    Raise :class:`ConfigError` when the tenant has no ``dkim.domain`` or no secret is
    configured to encrypt the key, ``ConflictError`` when the selector is taken.
    """
    domain = _courier_domain(settings, tenant)
    crypter = Crypter(settings.secrets.default)
    if not crypter.available:
        raise ConfigError(
            "a DKIM private key is stored encrypted, but no secret is configured; set "
            "secrets.default (or SECRETS_DEFAULT) to a random string of 32+ characters",
            path="secrets.default",
        )
    key = await asyncio.to_thread(generate_key, algorithm)  # RSA takes a moment
    stored = StoredDkimKey(
        tenant=tenant,
        selector=selector,
        domain=domain,
        algorithm=algorithm,
        private_key=crypter.encrypt(private_pem(key)),
        public_key=public_value(key),
        state="inactive",
        created_at=datetime.now(UTC),
        activated_at=None,
    )
    await store.add_dkim_key(stored)
    return stored, record_of(stored)


def record_of(key: StoredDkimKey) -> str:
    """The TXT record that publishes a stored key."""
    algorithm: Algorithm = "ed25519-sha256" if key.algorithm == "ed25519-sha256" else "rsa-sha256"
    return txt_record(key.domain, key.selector, algorithm, key.public_key)


def resolver_for(
    settings: Settings, nameservers: Sequence[str] | None, timeout: float | None
) -> dns.resolver.Resolver:
    """The resolver of ``--nameserver`` (else ``dns.nameservers``, else the system's)."""
    try:
        return make_resolver(
            list(nameservers or settings.dns.nameservers),
            timeout=timeout or settings.dns.timeout,
        )
    except ValueError as exc:
        raise InputError(str(exc), field="--nameserver") from None


async def published(
    settings: Settings, key: StoredDkimKey, *, nameservers: Sequence[str] | None = None
) -> Check:
    """Whether ``key``'s TXT record is published as it must be (the DKIM check of doctor)."""
    resolver = resolver_for(settings, nameservers, None)
    expected = ExpectedKey(key.selector, key.public_key, key.algorithm)
    return await asyncio.to_thread(dkim_key_check, key.domain, expected, resolver)


async def expected_keys(
    store: DkimKeys | None, settings: Settings, tenant: str
) -> list[ExpectedKey]:
    """The keys ``tenant`` signs with now: its key file's, else its active stored key (not
    looked up without a ``store``)."""
    courier = settings.tenant(tenant)
    file_key = file_signing_key(tenant, courier)
    if file_key is not None:
        return [ExpectedKey(file_key.selector, file_key.public_value, file_key.algorithm)]
    if courier.dkim.domain is None or store is None:
        return []
    active = await store.active_dkim_key(tenant)
    if active is None:
        return []
    return [ExpectedKey(active.selector, active.public_key, active.algorithm)]


async def doctor(
    store: DkimKeys | None,
    settings: Settings,
    domain: str,
    *,
    tenant: str | None,
    nameservers: Sequence[str] | None = None,
    timeout: float | None = None,
) -> Report:
    """Run every check of ``domain`` (for ``tenant``'s set-up when given) off the event loop."""
    resolver = resolver_for(settings, nameservers, timeout)
    setup = Setup()
    if tenant is not None:
        if tenant not in settings.tenant_names():
            raise InputError(
                f"unknown tenant {tenant!r}; known tenants: {', '.join(settings.tenant_names())}",
                field="--tenant",
            )
        keys = await expected_keys(store, settings, tenant)
        setup = setup_of(tenant, settings.tenant(tenant), keys)
        if not keys and store is not None and settings.tenant(tenant).dkim.domain:
            made = [k for k in await store.list_dkim_keys(tenant) if k.state == "inactive"]
            if made:
                newest = made[0]
                pending = ExpectedKey(newest.selector, newest.public_key, newest.algorithm)
                setup = replace(setup, pending=pending)
    return await asyncio.to_thread(run_doctor, domain, setup, resolver)


VERDICT_BUDGET = 1.0
"""The DNS budget of the one-line verdict after a test email: it must not hold the test up."""


async def verdict(
    store: DkimKeys | None, settings: Settings, tenant: str, sender: str
) -> dict[str, Any]:
    """The deliverability of ``sender``'s domain in one line, for the end of a test email:
    ``{domain, status, line, failed, warnings}`` (status ``ok``, ``warn``, ``fail`` or
    ``skipped`` when DNS could not be reached). Never raises for what DNS does."""
    domain = sender.rpartition("@")[2].lower().rstrip(".")
    hint = f"postroom doctor --domain {domain} --tenant {tenant}"
    try:
        budget = min(settings.dns.timeout, VERDICT_BUDGET)
        report = await doctor(store, settings, domain, tenant=tenant, timeout=budget)
    except (InputError, ConfigError) as exc:
        return {"domain": domain, "status": "skipped", "line": f"not checked: {exc}"}
    checks = [c for c in report.checks if c.name != "from_domain"]
    if checks and all(c.code == "dns_unavailable" for c in checks):
        line = f"deliverability of {domain} not checked: DNS did not answer; run {hint} later"
        return {"domain": domain, "status": "skipped", "line": line}
    failed = list(dict.fromkeys(c.code for c in report.checks if c.status == "fail"))
    warnings = list(dict.fromkeys(c.code for c in report.checks if c.status == "warn"))
    status = "fail" if failed else "warn" if warnings else "ok"
    return {
        "domain": domain,
        "status": status,
        "line": f"{report.verdict().removesuffix(' (postroom doctor)')}; details: {hint}",
        "failed": failed,
        "warnings": warnings,
    }
