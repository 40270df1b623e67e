"""The checks of ``postroom doctor`` that decide whether mail is authenticated: SPF, DKIM,
DMARC and alignment (the informational ones and the run are in ``doctor``).

SPF and DMARC are read and parsed by ``checkdmarc`` (syntax, the ten-lookup limit, policy
tags); MX, DKIM, MTA-STS and TLS-RPT records by ``dnspython``. Every check gives a status
(``ok``, ``warn``, ``fail``), a stable code, a sentence and, unless all is well, the fix: the
record to publish, in the form ``TXT name "value"``. A lookup that does not answer within the
budget is ``dns_unavailable`` (a warning that the check could not be made), never "missing".
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import checkdmarc.dmarc
import checkdmarc.spf
import checkdmarc.utils
import dns.resolver

from postroom.config.settings import CourierSettings
from postroom.deliverability.dkim import covers, txt_strings
from postroom.deliverability.providers import ProviderDns, provider_of
from postroom.deliverability.resolver import UNAVAILABLE, txt_values

Status = Literal["ok", "warn", "fail"]


@dataclass(frozen=True, slots=True)
class Check:
    """One finding: ``code`` is stable (``spf_missing``...), ``fix`` says what to publish."""

    name: str
    status: Status
    code: str
    message: str
    fix: str | None = None


@dataclass(frozen=True, slots=True)
class ExpectedKey:
    """A DKIM key the domain should publish: ``selector._domainkey`` with this ``p=``."""

    selector: str
    public_key: str
    algorithm: str


@dataclass(slots=True)
class Report:
    """Every check for ``domain``; ``failed`` when any of them failed."""

    domain: str
    checks: list[Check] = field(default_factory=list)

    @property
    def failed(self) -> bool:
        """True when a check failed (``doctor`` exits 1)."""
        return any(c.status == "fail" for c in self.checks)

    def to_json(self) -> dict[str, Any]:
        """``{domain, checks: [{name, status, code, message, fix}]}``."""
        return {"domain": self.domain, "checks": [asdict(c) for c in self.checks]}

    def verdict(self) -> str:
        """One line: how many checks failed or warn, naming them."""
        bad = list(dict.fromkeys(c.code for c in self.checks if c.status == "fail"))
        warn = list(dict.fromkeys(c.code for c in self.checks if c.status == "warn"))
        if not bad and not warn:
            return f"deliverability of {self.domain}: every check passed"
        parts = [f"failed: {', '.join(bad)}"] if bad else []
        parts += [f"to look at: {', '.join(warn)}"] if warn else []
        return f"deliverability of {self.domain}: {'; '.join(parts)} (postroom doctor)"


@dataclass(frozen=True, slots=True)
class Setup:
    """What the domain is checked for: the tenant's From address, provider and own DKIM."""

    from_address: str | None = None
    provider: ProviderDns | None = None
    keys: tuple[ExpectedKey, ...] = ()
    signs_for: str | None = None  # the tenant's courier.dkim.domain
    tenant: str | None = None
    pending: ExpectedKey | None = None  # the newest key made but not activated


def setup_of(tenant: str, courier: CourierSettings, keys: Sequence[ExpectedKey]) -> Setup:
    """The set-up of a tenant: its From address, provider, and the keys it signs with."""
    return Setup(
        from_address=courier.smtp.from_address,
        provider=provider_of(courier),
        keys=tuple(keys),
        signs_for=courier.dkim.domain,
        tenant=tenant,
    )


def txt(name: str, value: str) -> str:
    """A record in the form the fixes use: ``TXT name "value"`` (split at 255 bytes)."""
    return f"TXT {name} " + " ".join(f'"{part}"' for part in txt_strings(value))


def unavailable(name: str, what: str, exc: BaseException) -> Check:
    """The check ``name`` that could not be made because DNS did not answer."""
    return Check(
        name,
        "warn",
        "dns_unavailable",
        f"{what} could not be checked: the DNS lookup did not answer in time ({exc})",
        "check that the resolver (--nameserver or dns.nameservers) is reachable, then run "
        "doctor again",
    )


def timed_out(exc: BaseException) -> bool:
    """True when ``exc`` (or what it wraps) means DNS did not answer, not that it said no."""
    seen: BaseException | None = exc
    for _ in range(6):
        if seen is None:
            return False
        if isinstance(seen, UNAVAILABLE) or "timed out" in str(seen).lower():
            return True
        inner = getattr(seen, "error", None)
        seen = inner if isinstance(inner, BaseException) else (seen.__cause__ or seen.__context__)
    return False


def _includes(parsed: Any) -> Iterator[str]:
    """Every domain an SPF record includes or redirects to, however deep."""
    if isinstance(parsed, dict):
        if parsed.get("mechanism") == "include" and isinstance(parsed.get("value"), str):
            yield parsed["value"].lower().rstrip(".")
        redirect = parsed.get("redirect")
        if isinstance(redirect, dict) and isinstance(redirect.get("domain"), str):
            yield redirect["domain"].lower().rstrip(".")
        for value in parsed.values():
            yield from _includes(value)
    elif isinstance(parsed, list):
        for value in parsed:
            yield from _includes(value)


def _with_include(record: str, include: str) -> str:
    """``record`` with ``include:`` added before its ``all`` (or at the end)."""
    terms = record.split()
    position = next((i for i, t in enumerate(terms) if re.fullmatch(r"[+~?-]?all", t)), len(terms))
    terms.insert(position, f"include:{include}")
    return " ".join(terms)


def check_spf(domain: str, setup: Setup, resolver: dns.resolver.Resolver) -> Check:
    """SPF at ``domain``: one record, valid, at most 10 lookups, authorising the provider."""
    provider = setup.provider
    include = provider.spf_include if provider else None
    suggested = f"v=spf1 include:{include} ~all" if include else "v=spf1 mx ~all"
    try:
        found = checkdmarc.spf.query_spf_record(domain, resolver=resolver)
        parsed = checkdmarc.spf.parse_spf_record(found["record"], domain, resolver=resolver)
    except checkdmarc.spf.MultipleSPFRTXTRecords:
        return Check(
            "spf",
            "fail",
            "spf_multiple",
            f"{domain} has more than one SPF record; receivers then treat SPF as broken "
            "(permerror)",
            f"merge them into one record, e.g. {txt(domain, suggested)}, and delete the others",
        )
    except checkdmarc.spf.SPFTooManyDNSLookups as exc:
        count = (exc.data or {}).get("dns_lookups", "more than 10")
        return Check(
            "spf",
            "fail",
            "spf_too_many_lookups",
            f"the SPF record of {domain} needs {count} DNS lookups; receivers stop at 10 and "
            "treat SPF as broken (permerror)",
            "remove includes you no longer send through, or replace some with the ip4:/ip6: "
            f"ranges they stand for, until the count is 10 or less (keep include:{include})"
            if include
            else "remove includes you no longer send through, or replace some with "
            "the ip4:/ip6: ranges they stand for, until the count is 10 or less",
        )
    except checkdmarc.spf.SPFRecordNotFound as exc:
        if timed_out(exc):
            return unavailable("spf", "SPF", exc)
        missing = str(getattr(exc, "domain", domain)).lower().rstrip(".")
        if missing != domain:
            return Check(
                "spf",
                "fail",
                "spf_invalid",
                f"the SPF record of {domain} includes {missing}, which publishes no SPF record, "
                "so receivers treat SPF as broken (permerror)",
                f"remove include:{missing} from the record (or correct the name)",
            )
        return Check(
            "spf",
            "fail",
            "spf_missing",
            f"{domain} publishes no SPF record, so receivers cannot tell which servers may "
            "send its mail",
            f"publish {txt(domain, suggested)}",
        )
    except checkdmarc.spf.SPFError as exc:
        if timed_out(exc):
            return unavailable("spf", "SPF", exc)
        return Check(
            "spf",
            "fail",
            "spf_invalid",
            f"the SPF record of {domain} is not valid: {exc}",
            f"replace it with a valid one, e.g. {txt(domain, suggested)}",
        )
    record = found["record"]
    if include and include not in set(_includes(parsed.get("parsed"))):
        assert provider is not None
        return Check(
            "spf",
            "fail",
            "spf_provider_missing",
            f"the SPF record of {domain} does not authorise {provider.name} "
            f"(include:{include}), which sends this tenant's mail",
            f"change it to {txt(domain, _with_include(record, include))}",
        )
    lookups = parsed.get("dns_lookups", 0)
    return Check("spf", "ok", "spf_ok", f"one valid SPF record ({lookups} of 10 DNS lookups)")


def _tags(value: str) -> dict[str, str]:
    out = {}
    for part in value.split(";"):
        name, sep, tag = part.partition("=")
        if sep:
            out[name.strip().lower()] = re.sub(r"\s+", "", tag)
    return out


def dkim_key_check(domain: str, key: ExpectedKey, resolver: dns.resolver.Resolver) -> Check:
    """Whether ``key.selector._domainkey.domain`` publishes exactly ``key``'s public key."""
    name = f"{key.selector}._domainkey.{domain}"
    kind = "ed25519" if key.algorithm == "ed25519-sha256" else "rsa"
    wanted = txt(name, f"v=DKIM1; k={kind}; p={key.public_key}")
    try:
        values = [v for v in txt_values(resolver, name) if "p=" in v]
    except UNAVAILABLE as exc:
        return unavailable("dkim", "DKIM", exc)
    if not values:
        return Check(
            "dkim",
            "fail",
            "dkim_missing",
            f"{name} publishes no DKIM key, so receivers cannot verify Postroom's signature",
            f"publish {wanted}",
        )
    if not any(_tags(v).get("p") == key.public_key for v in values):
        return Check(
            "dkim",
            "fail",
            "dkim_mismatch",
            f"{name} publishes a different key from the one this tenant signs with, so every "
            "signature fails",
            f"replace the record with {wanted}",
        )
    return Check("dkim", "ok", "dkim_ok", f"{name} publishes the key this tenant signs with")


def _pending_key(
    domain: str, setup: Setup, key: ExpectedKey, resolver: dns.resolver.Resolver
) -> Check:
    """A key made by ``dkim generate`` and not activated: publish it, or activate it."""
    found = dkim_key_check(domain, key, resolver)
    activate = f"postroom dkim activate --tenant {setup.tenant} --selector {key.selector}"
    if found.code == "dns_unavailable":
        return found
    if found.status == "ok":
        return Check(
            "dkim",
            "fail",
            "dkim_inactive",
            f"key {key.selector} is published but not active, so mail is not signed yet",
            f"run {activate}",
        )
    return Check("dkim", "fail", found.code, found.message, f"{found.fix}, then run {activate}")


def check_dkim(domain: str, setup: Setup, resolver: dns.resolver.Resolver) -> Check:
    """The tenant's own DKIM key, else the provider's usual selectors."""
    if setup.keys:
        return dkim_key_check(domain, setup.keys[0], resolver)
    if setup.pending is not None:
        return _pending_key(domain, setup, setup.pending, resolver)
    provider = setup.provider
    selectors = provider.dkim_selectors if provider else ()
    try:
        for selector in selectors:
            name = f"{selector}._domainkey.{domain}"
            if any("p=" in v for v in txt_values(resolver, name)):
                assert provider is not None
                return Check("dkim", "ok", "dkim_ok", f"{name} publishes {provider.name}'s key")
    except UNAVAILABLE as exc:
        return unavailable("dkim", "DKIM", exc)
    sign = (
        f"let Postroom sign: `postroom dkim generate --tenant {setup.tenant or 'default'} "
        f"--selector postroom1`, publish the record it prints, then `postroom dkim activate`"
    )
    if provider and selectors:
        return Check(
            "dkim",
            "fail",
            "dkim_missing",
            f"no DKIM key at {', '.join(s + '._domainkey.' + domain for s in selectors)}: "
            f"{provider.name} signs as itself, which does not align with {domain}",
            f"{provider.dkim_hint}; or {sign}",
        )
    return Check(
        "dkim",
        "fail",
        "dkim_missing",
        f"no DKIM key is known for {domain}: this tenant does not sign"
        + (f" and {provider.name}'s selectors are not published" if provider else ""),
        (f"{provider.dkim_hint}; or {sign}" if provider else sign),
    )


def check_dmarc(
    domain: str, setup: Setup, resolver: dns.resolver.Resolver, dkim: Check, spf: Check
) -> list[Check]:
    """DMARC at ``_dmarc.domain``: present, its policy and reports, and alignment."""
    suggested = txt(f"_dmarc.{domain}", f"v=DMARC1; p=quarantine; rua=mailto:dmarc@{domain}")
    try:
        found = checkdmarc.dmarc.query_dmarc_record(domain, resolver=resolver)
        parsed = checkdmarc.dmarc.parse_dmarc_record(found["record"], domain, resolver=resolver)
    except checkdmarc.dmarc.DMARCRecordNotFound as exc:
        if timed_out(exc):
            return [unavailable("dmarc", "DMARC", exc)]
        return [
            Check(
                "dmarc",
                "fail",
                "dmarc_missing",
                f"_dmarc.{domain} publishes no DMARC record; Gmail and Yahoo require one from "
                "bulk senders",
                f"publish {suggested}",
            )
        ]
    except checkdmarc.dmarc.DMARCError as exc:
        if timed_out(exc):
            return [unavailable("dmarc", "DMARC", exc)]
        return [
            Check(
                "dmarc",
                "fail",
                "dmarc_invalid",
                f"the DMARC record of {domain} is not valid: {exc}",
                f"replace it with {suggested}",
            )
        ]
    tags = parsed["tags"]
    policy = tags["p"]["value"]
    checks = []
    if policy == "none":
        checks.append(
            Check(
                "dmarc",
                "warn",
                "dmarc_policy_none",
                f"the DMARC policy of {domain} is p=none: nothing is done with mail that fails "
                "(bulk senders are expected to move on to quarantine or reject)",
                f"once the reports show your mail passing, publish {suggested}",
            )
        )
    elif "rua" not in tags or not tags["rua"]["value"]:
        checks.append(
            Check(
                "dmarc",
                "warn",
                "dmarc_no_rua",
                f"the DMARC record of {domain} asks for no aggregate reports (rua)",
                f"add rua=mailto:dmarc@{domain} to it",
            )
        )
    else:
        checks.append(Check("dmarc", "ok", "dmarc_ok", f"DMARC policy p={policy} with reports"))
    strict = tags.get("adkim", {}).get("value") == "s"
    signs = setup.signs_for is not None and (
        setup.signs_for == domain if strict else covers(setup.signs_for, domain)
    )
    dkim_aligned = dkim.status == "ok" and (signs or not setup.keys)
    keeps = setup.provider is None or setup.provider.keeps_envelope_sender
    spf_aligned = spf.status == "ok" and keeps
    if dkim.code == "dns_unavailable" or spf.code == "dns_unavailable":
        checks.append(unavailable("alignment", "DMARC alignment", TimeoutError("see above")))
    elif dkim_aligned or spf_aligned:
        by = "DKIM" if dkim_aligned else "SPF"
        checks.append(
            Check("alignment", "ok", "alignment_ok", f"{by} aligns with the From domain {domain}")
        )
    else:
        checks.append(
            Check(
                "alignment",
                "fail",
                "dmarc_unaligned",
                f"neither DKIM nor SPF will align with {domain} for this set-up, so DMARC fails "
                "for every message",
                dkim.fix or "sign with a key of this domain (`postroom dkim generate`)",
            )
        )
    return checks
