"""Deliverability: DKIM signing of outgoing mail, and ``doctor``, which checks a sender
domain's DNS (SPF, DKIM, DMARC, MX, MTA-STS, TLS-RPT) and says exactly what to publish."""
