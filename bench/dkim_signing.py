"""DKIM signing speed on one core: Postroom's signer (``cryptography``) for RSA-2048 and Ed25519
against building the same message's MIME (the baseline measured in the same run), and against
dkimpy signing the same message with the same RSA key (its pure-Python RSA).

Prints messages per second and microseconds per message for each.

Usage: python bench/dkim_signing.py [--messages N]
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from datetime import UTC, datetime

import dkim

from postroom.deliverability.dkim import SigningKey, generate_key, private_pem, sign_message
from postroom.models import RenderedEmail, TemplateType
from postroom.render.mime import build_mime
from postroom.render.templates import render_email


def message() -> bytes:
    rendered: RenderedEmail = render_email(
        TemplateType.LOGIN_CODE_VALID, {"login_code": "123456", "to": "you@example.net"}
    )
    return build_mime(
        rendered,
        sender="no-reply@example.org",
        sender_name="Example",
        recipient="you@example.net",
        date=datetime.now(UTC),
    )


def rate(name: str, work: Callable[[], object], count: int, baseline: float | None) -> float:
    work()  # warm up
    start = time.perf_counter()
    for _ in range(count):
        work()
    elapsed = time.perf_counter() - start
    per_second = count / elapsed
    extra = f"   {per_second / baseline:5.2f}x the MIME" if baseline else ""
    print(f"{name:<38} {per_second:9.0f} msg/s  {elapsed / count * 1e6:8.1f} us/msg{extra}")
    return per_second


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--messages", type=int, default=2000)
    args = parser.parse_args()
    mime = message()
    print(f"message: {len(mime)} bytes (login_code_valid, text and HTML)")
    base = rate("render and build the MIME (baseline)", message, args.messages, None)
    rsa = SigningKey("example.org", "bench", "rsa-sha256", generate_key("rsa-sha256"))
    ed = SigningKey("example.org", "bench", "ed25519-sha256", generate_key("ed25519-sha256"))
    rate("sign rsa-sha256 (cryptography)", lambda: sign_message(mime, rsa), args.messages, base)
    rate("sign ed25519-sha256 (cryptography)", lambda: sign_message(mime, ed), args.messages, base)
    pem = private_pem(rsa.key).encode()
    headers = [b"from", b"to", b"subject", b"date", b"message-id", b"mime-version"]

    def dkimpy() -> bytes:
        return bytes(
            dkim.sign(
                mime,
                b"bench",
                b"example.org",
                pem,
                canonicalize=(b"relaxed", b"relaxed"),
                include_headers=headers,
            )
        )

    rate("sign rsa-sha256 (dkimpy, reference)", dkimpy, max(args.messages // 10, 20), base)


if __name__ == "__main__":
    main()
