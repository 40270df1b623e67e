"""Render cost per message: the English-only templates of before (``baseline_templates/``,
copies of the built-ins before locales, rendered the way Postroom rendered them then) beside
today's built-ins in several locales, measured in the same run.

Prints microseconds of CPU time per message (median of several rounds) for:
- before: the old templates in a plain sandboxed Jinja2 environment (subject, text, HTML);
- after, warm: ``render_email`` with the compiled catalogues and templates cached (the hot
  path of intake), per locale, with and without the CSS inlining share;
- after, cold: the same with every cache cleared before each message (what caching saves);
- render + MIME: the same plus the MIME bytes that are stored and sent, before and after (the
  part of intake's ``prepare`` that this change touched).

Usage: python bench/render.py [--messages N] [--rounds R]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from jinja2 import FileSystemLoader
from jinja2.sandbox import ImmutableSandboxedEnvironment

from postroom.models import RenderedEmail, TemplateType
from postroom.render import catalogues, templates
from postroom.render.context import mail_context
from postroom.render.locales import fallback_chain
from postroom.render.mime import build_mime
from postroom.render.templates import render_email

BASELINE = Path(__file__).parent / "baseline_templates"
DATA = {
    "to": "jane@example.org",
    "login_code": "482913",
    "verification_url": "https://id.example.org/verify?flow=1&token=abc",
    "expires_in_minutes": 15,
    "identity": {"traits": {"name": "Jane"}},
}
BRAND = {"product_name": "Acme", "accent_color": "#0f766e", "support_email": "help@acme.example"}
KINDS = (TemplateType.LOGIN_CODE_VALID, TemplateType.VERIFICATION_VALID)
NOW = datetime.now(UTC)


def per_message(work: Callable[[int], object], messages: int, rounds: int) -> float:
    """Median over ``rounds`` of the mean microseconds of CPU time per call of ``work`` (CPU
    time, so that other processes on a shared machine do not count)."""
    results = []
    for _ in range(rounds):
        start = time.process_time()
        for n in range(messages):
            work(n)
        results.append((time.process_time() - start) / messages * 1e6)
    return statistics.median(results)


def with_mime(render: Callable[[int], RenderedEmail]) -> Callable[[int], object]:
    def work(n: int) -> object:
        return build_mime(
            render(n),
            sender="no-reply@example.org",
            sender_name="Acme",
            recipient="jane@example.org",
            date=NOW,
        )

    return work


def before() -> Callable[[int], RenderedEmail]:
    text = ImmutableSandboxedEnvironment(
        loader=FileSystemLoader(str(BASELINE)), autoescape=False, keep_trailing_newline=True
    )
    html = ImmutableSandboxedEnvironment(
        loader=FileSystemLoader(str(BASELINE)), autoescape=True, keep_trailing_newline=True
    )

    def work(n: int) -> RenderedEmail:
        kind = KINDS[n % 2].value
        data = {**DATA, "product_name": "Acme"}
        return RenderedEmail(
            subject=" ".join(text.get_template(f"{kind}/email.subject.j2").render(data).split()),
            text=text.get_template(f"{kind}/email.body.plaintext.j2").render(data),
            html=html.get_template(f"{kind}/email.body.html.j2").render(data),
        )

    return work


def after(locale: str, *, cold: bool = False) -> Callable[[int], RenderedEmail]:
    chain = fallback_chain(locale)

    def work(n: int) -> RenderedEmail:
        if cold:
            templates._environments.cache_clear()
            catalogues.translations.cache_clear()
        return render_email(KINDS[n % 2], dict(DATA), locales=chain, branding=BRAND)

    return work


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    messages, rounds = args.messages, args.rounds
    for locale in ("en", "de", "ar", "ja"):  # warm the caches once, as a running server has
        after(locale)(0), after(locale)(1)
    base = per_message(before(), messages, rounds)
    print(f"{'before: English only, no branding, no inlining':52} {base:8.0f} µs/message")
    for locale in ("en", "de", "ar", "ja"):
        warm = per_message(after(locale), messages, rounds)
        print(f"{'after, warm caches, ' + locale:52} {warm:8.0f} µs/message  ({warm / base:.1f}x)")
    inliner = templates._INLINER
    sample = render_email(KINDS[0], dict(DATA), branding=BRAND)
    raw = (
        templates._environments(None, "en")[1]
        .get_template("login_code_valid/email.body.html.j2")
        .render({**DATA, "mail": mail_context(DATA, locale="en", branding=BRAND)})
    )
    inline = per_message(lambda _n: inliner.inline(raw), messages, rounds)
    print(f"{'  of which CSS inlining (css-inline)':52} {inline:8.0f} µs/message")
    cold = per_message(after("de", cold=True), max(20, messages // 50), rounds)
    print(f"{'after, caches cleared before every message, de':52} {cold:8.0f} µs/message")
    mime_before = per_message(with_mime(before()), messages, rounds)
    print(f"{'before: render + MIME, English':52} {mime_before:8.0f} µs/message")
    for locale in ("en", "de"):
        mime_after = per_message(with_mime(after(locale)), messages, rounds)
        ratio = mime_after / mime_before
        print(
            f"{'after: render + MIME, ' + locale:52} {mime_after:8.0f} µs/message  ({ratio:.1f}x)"
        )
    print(f"HTML size: {len(sample.html or ''):,} bytes (limit 100 KB)")


if __name__ == "__main__":
    main()
