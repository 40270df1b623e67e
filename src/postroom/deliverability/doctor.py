"""``postroom doctor``: check a sender domain's DNS and say exactly what to publish.

:func:`run_doctor` runs every check against one resolver: the From address's domain, SPF,
DKIM, DMARC and alignment (``checks``), then MX, MTA-STS and TLS-RPT (informational). When the
resolver does not answer at all, every check is ``dns_unavailable`` and the run ends at once.
"""

from __future__ import annotations

import checkdmarc.mta_sts
import checkdmarc.smtp_tls_reporting
import checkdmarc.utils
import dns.exception
import dns.resolver

from postroom.deliverability.checks import (
    Check,
    Report,
    Setup,
    check_dkim,
    check_dmarc,
    check_spf,
    timed_out,
    txt,
    unavailable,
)
from postroom.deliverability.resolver import UNAVAILABLE

CHECKS = ("from_domain", "spf", "dkim", "dmarc", "alignment", "mx", "mta_sts", "tls_rpt")
LABELS = {
    "spf": "SPF",
    "dkim": "DKIM",
    "dmarc": "DMARC",
    "alignment": "DMARC alignment",
    "mx": "MX",
    "mta_sts": "MTA-STS",
    "tls_rpt": "TLS-RPT",
}


def check_from(domain: str, setup: Setup) -> Check | None:
    """Whether the tenant's From address is in ``domain`` (None when no tenant is given)."""
    if setup.from_address is None:
        return None
    mail_domain = setup.from_address.rpartition("@")[2].lower().rstrip(".")
    if mail_domain == domain:
        return Check("from_domain", "ok", "from_domain_ok", f"the From address is in {domain}")
    return Check(
        "from_domain",
        "warn",
        "from_domain_mismatch",
        f"the tenant sends as {setup.from_address}, not from {domain}: these checks are for "
        "a domain its mail does not use",
        f"run doctor --domain {mail_domain}, or set smtp.from_address to an address in {domain}",
    )


def check_mx(domain: str, resolver: dns.resolver.Resolver) -> Check:
    """MX records: replies and bounces reach the domain, and some receivers require one."""
    try:
        found = checkdmarc.utils.get_mx_record_set(domain, resolver=resolver)
        hosts = [h["hostname"] for h in found["hosts"]]
    except checkdmarc.utils.DNSException as exc:
        if timed_out(exc):
            return unavailable("mx", "MX", exc)
        hosts = []
    if hosts:
        return Check("mx", "ok", "mx_ok", f"mail for {domain} goes to {', '.join(hosts)}")
    return Check(
        "mx",
        "warn",
        "mx_missing",
        f"{domain} has no MX record: replies and bounces cannot reach it, and some receivers "
        "refuse mail from a domain that cannot receive any",
        f"publish MX {domain} 10 <your inbound mail server>, e.g. the one your mailbox "
        "provider names",
    )


def check_mta_sts(domain: str, resolver: dns.resolver.Resolver) -> Check:
    """MTA-STS (informational): receivers of mail to the domain must use TLS."""
    try:
        checkdmarc.mta_sts.query_mta_sts_record(domain, resolver=resolver)
    except checkdmarc.mta_sts.MTASTSError as exc:
        if timed_out(exc):
            return unavailable("mta_sts", "MTA-STS", exc)
        return Check(
            "mta_sts",
            "ok",
            "mta_sts_absent",
            f"no MTA-STS record at _mta-sts.{domain} (optional: it makes mail sent to "
            f"{domain} require TLS)",
            f"{txt('_mta-sts.' + domain, 'v=STSv1; id=20260101')} with a policy at "
            f"https://mta-sts.{domain}/.well-known/mta-sts.txt",
        )
    return Check("mta_sts", "ok", "mta_sts_ok", f"_mta-sts.{domain} publishes an MTA-STS record")


def check_tls_rpt(domain: str, resolver: dns.resolver.Resolver) -> Check:
    """TLS-RPT (informational): reports of TLS failures on mail to the domain."""
    module = checkdmarc.smtp_tls_reporting
    try:
        module.query_smtp_tls_reporting_record(domain, resolver=resolver)
    except module.SMTPTLSReportingError as exc:
        if timed_out(exc):
            return unavailable("tls_rpt", "TLS-RPT", exc)
        return Check(
            "tls_rpt",
            "ok",
            "tls_rpt_absent",
            f"no TLS-RPT record at _smtp._tls.{domain} (optional: reports of TLS failures on "
            f"mail sent to {domain})",
            txt(f"_smtp._tls.{domain}", f"v=TLSRPTv1; rua=mailto:tls-reports@{domain}"),
        )
    return Check("tls_rpt", "ok", "tls_rpt_ok", f"_smtp._tls.{domain} publishes a TLS-RPT record")


def _unreachable(domain: str, resolver: dns.resolver.Resolver) -> BaseException | None:
    """The error when the resolver does not answer for ``domain`` at all, else None."""
    try:
        resolver.resolve(domain, "SOA", raise_on_no_answer=False)
    except (dns.resolver.NXDOMAIN, dns.resolver.YXDOMAIN):
        return None
    except UNAVAILABLE as exc:
        return exc
    except dns.exception.DNSException:
        return None
    return None


def run_doctor(domain: str, setup: Setup, resolver: dns.resolver.Resolver) -> Report:
    """Check ``domain`` for a tenant's ``setup`` (blocking: DNS lookups, each within the
    resolver's lifetime). Never raises for what DNS answers; see :class:`Report`."""
    domain = domain.lower().rstrip(".")
    # checkdmarc keeps answers for 30 minutes whatever the resolver: a fixed record must
    # show as fixed on the next run.
    checkdmarc.utils.DNS_CACHE.clear()
    report = Report(domain)
    from_check = check_from(domain, setup)
    if from_check is not None:
        report.checks.append(from_check)
    down = _unreachable(domain, resolver)
    if down is not None:
        report.checks += [unavailable(n, LABELS[n], down) for n in CHECKS if n != "from_domain"]
        return report
    spf = check_spf(domain, setup, resolver)
    dkim = check_dkim(domain, setup, resolver)
    report.checks += [spf, dkim, *check_dmarc(domain, setup, resolver, dkim, spf)]
    report.checks += [
        check_mx(domain, resolver),
        check_mta_sts(domain, resolver),
        check_tls_rpt(domain, resolver),
    ]
    return report
