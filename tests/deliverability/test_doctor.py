"""``doctor``'s checks against a real authoritative DNS server on loopback, one zone per set-up:
each broken set-up gives the right status, code and fix, and a resolver that does not answer
gives ``dns_unavailable``, never "missing"."""

from __future__ import annotations

import time
from dataclasses import replace

import pytest

from postroom.config.settings import CourierSettings
from postroom.deliverability.checks import ExpectedKey, Setup, setup_of
from postroom.deliverability.dkim import generate_key, public_value
from postroom.deliverability.doctor import run_doctor
from postroom.deliverability.resolver import make_resolver

from dns_server import serving_zone, silent_nameserver

KEY = public_value(generate_key("ed25519-sha256"))
OTHER_KEY = public_value(generate_key("ed25519-sha256"))
SENDGRID = CourierSettings.model_validate(
    {
        "smtp": {
            "connection_uri": "smtp://apikey:SG.x@smtp.sendgrid.net:587/",
            "from_address": "no-reply@example.org",
        },
        "dkim": {"domain": "example.org"},
    }
)
SIGNING = setup_of("default", SENDGRID, [ExpectedKey("postroom1", KEY, "ed25519-sha256")])

GOOD = f"""
example.org. 300 IN TXT "v=spf1 include:sendgrid.net ~all"
sendgrid.net. 300 IN TXT "v=spf1 ip4:167.89.0.0/17 -all"
postroom1._domainkey.example.org. 300 IN TXT "v=DKIM1; k=ed25519; p={KEY}"
_dmarc.example.org. 300 IN TXT "v=DMARC1; p=quarantine; rua=mailto:dmarc@example.org"
example.org. 300 IN MX 10 mx.example.org.
"""


def replaced(zone: str, old: str, new: str) -> str:
    assert old in zone
    return zone.replace(old, new)


def codes(zone: str, setup: Setup = SIGNING) -> dict[str, tuple[str, str, str | None]]:
    with serving_zone(zone) as (nameserver, _):
        report = run_doctor("example.org", setup, make_resolver([nameserver], timeout=2))
    return {c.name: (c.status, c.code, c.fix) for c in report.checks}


def test_a_good_set_up_passes_every_check() -> None:
    found = codes(GOOD)
    assert {name: status for name, (status, _, _) in found.items()} == {
        "from_domain": "ok",
        "spf": "ok",
        "dkim": "ok",
        "dmarc": "ok",
        "alignment": "ok",
        "mx": "ok",
        "mta_sts": "ok",
        "tls_rpt": "ok",
    }
    assert found["spf"][1] == "spf_ok" and found["dkim"][1] == "dkim_ok"
    assert found["mta_sts"][1] == "mta_sts_absent"  # informational


def test_spf_without_the_provider_names_the_record_with_its_include() -> None:
    zone = replaced(GOOD, '"v=spf1 include:sendgrid.net ~all"', '"v=spf1 mx ~all"')
    status, code, fix = codes(zone)["spf"]
    assert (status, code) == ("fail", "spf_provider_missing")
    assert fix == 'change it to TXT example.org "v=spf1 mx include:sendgrid.net ~all"'


def test_two_spf_records_fail() -> None:
    zone = GOOD + 'example.org. 300 IN TXT "v=spf1 include:_spf.google.com ~all"\n'
    status, code, fix = codes(zone)["spf"]
    assert (status, code) == ("fail", "spf_multiple")
    assert fix is not None and 'TXT example.org "v=spf1 include:sendgrid.net ~all"' in fix


def test_eleven_lookups_fail() -> None:
    includes = " ".join(f"include:n{n}.ex.net" for n in range(11))
    zone = replaced(GOOD, '"v=spf1 include:sendgrid.net ~all"', f'"v=spf1 {includes} ~all"')
    zone += "".join(f'n{n}.ex.net. 300 IN TXT "v=spf1 ip4:10.0.{n}.0/24 -all"\n' for n in range(11))
    status, code, _ = codes(zone)["spf"]
    assert (status, code) == ("fail", "spf_too_many_lookups")


def test_no_spf_at_all_is_missing_with_the_provider_include() -> None:
    zone = replaced(GOOD, 'example.org. 300 IN TXT "v=spf1 include:sendgrid.net ~all"\n', "")
    status, code, fix = codes(zone)["spf"]
    assert (status, code) == ("fail", "spf_missing")
    assert fix == 'publish TXT example.org "v=spf1 include:sendgrid.net ~all"'


def test_an_include_that_publishes_nothing_is_invalid_not_missing() -> None:
    zone = replaced(
        GOOD,
        '"v=spf1 include:sendgrid.net ~all"',
        '"v=spf1 include:sendgrid.net include:gone.example.net ~all"',
    )
    status, code, fix = codes(zone)["spf"]
    assert (status, code) == ("fail", "spf_invalid")
    assert fix == "remove include:gone.example.net from the record (or correct the name)"


def test_dmarc_absent_and_p_none() -> None:
    absent = replaced(
        GOOD,
        '_dmarc.example.org. 300 IN TXT "v=DMARC1; p=quarantine; rua=mailto:dmarc@example.org"\n',
        "",
    )
    status, code, fix = codes(absent)["dmarc"]
    assert (status, code) == ("fail", "dmarc_missing")
    assert fix == (
        'publish TXT _dmarc.example.org "v=DMARC1; p=quarantine; rua=mailto:dmarc@example.org"'
    )
    none = replaced(GOOD, "p=quarantine", "p=none")
    status, code, fix = codes(none)["dmarc"]
    assert (status, code) == ("warn", "dmarc_policy_none")
    assert fix is not None and "p=quarantine" in fix


def test_a_published_key_that_is_not_the_signing_key_is_a_mismatch() -> None:
    zone = replaced(GOOD, f"p={KEY}", f"p={OTHER_KEY}")
    status, code, fix = codes(zone)["dkim"]
    assert (status, code) == ("fail", "dkim_mismatch")
    assert fix is not None and "postroom1._domainkey.example.org" in fix and KEY in fix


def test_a_key_made_but_not_activated_says_what_to_do_next() -> None:
    made = replace(SIGNING, keys=(), pending=ExpectedKey("postroom1", KEY, "ed25519-sha256"))
    status, code, fix = codes(GOOD, made)["dkim"]
    assert (status, code) == ("fail", "dkim_inactive")
    assert fix == "run postroom dkim activate --tenant default --selector postroom1"
    unpublished = replaced(GOOD, f"p={KEY}", f"p={OTHER_KEY}")
    status, code, fix = codes(unpublished, made)["dkim"]
    assert (status, code) == ("fail", "dkim_mismatch")
    assert fix is not None and fix.endswith(
        "then run postroom dkim activate --tenant default --selector postroom1"
    )


def test_no_mx_warns() -> None:
    zone = replaced(GOOD, "example.org. 300 IN MX 10 mx.example.org.\n", "")
    status, code, _ = codes(zone)["mx"]
    assert (status, code) == ("warn", "mx_missing")


def test_a_provider_signing_as_itself_without_spf_alignment_is_unaligned() -> None:
    unsigned = setup_of("default", SENDGRID, [])  # no Postroom key; SendGrid's s1/s2 absent
    found = codes(GOOD, unsigned)
    assert found["dkim"][:2] == ("fail", "dkim_missing")
    status, code, fix = found["alignment"]
    assert (status, code) == ("fail", "dmarc_unaligned")
    assert fix is not None and "postroom dkim generate" in fix
    with_s1 = GOOD + f's1._domainkey.example.org. 300 IN TXT "v=DKIM1; k=rsa; p={KEY}"\n'
    assert codes(with_s1, unsigned)["alignment"][:2] == ("ok", "alignment_ok")


def test_a_resolver_that_does_not_answer_is_dns_unavailable_never_missing() -> None:
    with silent_nameserver() as nameserver:
        start = time.monotonic()
        report = run_doctor("example.org", SIGNING, make_resolver([nameserver], timeout=0.5))
        elapsed = time.monotonic() - start
    assert elapsed < 3
    dns_checks = [c for c in report.checks if c.name != "from_domain"]
    assert {c.code for c in dns_checks} == {"dns_unavailable"}
    assert {c.status for c in dns_checks} == {"warn"}
    assert not report.failed


@pytest.mark.parametrize("entry", ["not-an-ip", "127.0.0.1:99999", "example.org:53"])
def test_a_bad_nameserver_is_refused_with_the_form_to_use(entry: str) -> None:
    with pytest.raises(ValueError, match=r"like 127\.0\.0\.1:5353"):
        make_resolver([entry], timeout=1)
