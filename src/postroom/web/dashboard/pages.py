"""What every dashboard page shares: the Jinja2 environment (autoescaped), the page response
with its security headers and server timing, the route class that signs visitors in, and the
form reader.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Coroutine, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode

import jinja2
from fastapi import Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.routing import APIRoute

from postroom import __version__
from postroom.errors import NotFoundError
from postroom.web.dashboard import session as sessions

HERE = Path(__file__).parent

CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "frame-src 'self'; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; "
    "base-uri 'none'"
)
# A stored email shown in an iframe: no scripts, no forms, no remote content, an opaque origin.
EMAIL_CSP = (
    "sandbox; default-src 'none'; style-src 'unsafe-inline'; img-src data:; frame-ancestors 'self'"
)

NOTICES = {
    "retried": "The message is queued again; the worker picks it up now.",
    "cancelled": "The message was cancelled.",
    "saved": "The tenant's settings are saved. Send a test email to check them.",
    "signed-out": "You are signed out.",
}
"""Fixed texts a redirect may name with ``?notice=``: nothing from the URL is echoed."""


def _when(value: datetime | None) -> str:
    """``2025-01-02 13:04:05`` in UTC."""
    if value is None:
        return ""
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")


def _iso(value: datetime | None) -> str:
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z") if value else ""


def ago(value: datetime | None, now: datetime | None = None) -> str:
    """How long ago (or, for a future time, in how long) in words: ``5 s ago``, ``in 2 min``."""
    if value is None:
        return ""
    seconds = ((now or datetime.now(UTC)) - value).total_seconds()
    future, seconds = seconds < 0, abs(seconds)
    if seconds < 60:
        text = f"{int(seconds)} s"
    elif seconds < 3600:
        text = f"{int(seconds // 60)} min"
    elif seconds < 86400:
        text = f"{int(seconds // 3600)} h"
    else:
        text = f"{int(seconds // 86400)} d"
    return f"in {text}" if future else f"{text} ago"


def duration(seconds: float) -> str:
    """``90`` -> ``1m30s``; ``0`` -> ``never``."""
    if seconds <= 0:
        return "never"
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if seconds >= size:
            parts.append(f"{int(seconds // size)}{unit}")
            seconds %= size
    return "".join(parts) or f"{seconds:.1f}s"


env = jinja2.Environment(
    loader=jinja2.FileSystemLoader(HERE / "templates"),
    autoescape=True,
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)
env.filters["when"] = _when
env.filters["iso"] = _iso
env.filters["ago"] = ago
env.filters["duration"] = duration
env.globals["version"] = __version__


def query(path: str, **params: str | None) -> str:
    """``path`` with the given query parameters (empty ones left out), safely encoded."""
    kept = {k: v for k, v in params.items() if v not in (None, "")}
    return f"{path}?{urlencode(kept)}" if kept else path


env.globals["query"] = query


def render(request: Request, template: str, *, status: int = 200, **context: Any) -> HTMLResponse:
    """A full page (or a fragment) rendered from ``template``."""
    session = sessions.current(request)
    notice = request.query_params.get("notice")
    context.setdefault("notice", NOTICES.get(notice or ""))
    context.setdefault("error", None)
    context.setdefault("title", "Postroom")
    context.setdefault("nav", "")
    html = env.get_template(template).render(
        dev=bool(request.app.state.dev),
        signed_in=session.signed_in,
        csrf=sessions.csrf_token(session, sessions.signing_key(request)),
        path=request.url.path,
        **context,
    )
    return HTMLResponse(html, status_code=status)


def redirect(url: str) -> RedirectResponse:
    """See other: the answer to every successful form POST."""
    return RedirectResponse(url, status_code=303)


def local_path(value: str | None, default: str = "/") -> str:
    """``value`` when it is a path on this site, else ``default`` (no open redirects)."""
    if not value or not value.startswith("/") or value.startswith("//") or "\\" in value:
        return default
    return value


async def read_form(request: Request) -> dict[str, str]:
    """An ``application/x-www-form-urlencoded`` body (the size limit applies before);
    CSRF-checked. The last value of a repeated field wins."""
    body = await request.body()
    try:
        form = dict(parse_qsl(body.decode(), keep_blank_values=True))
    except UnicodeDecodeError:
        form = {}
    sessions.check_csrf(request, form)
    return form


def _finish(request: Request, response: Response) -> Response:
    sessions.apply_cookie(request, response)
    headers = response.headers
    headers.setdefault("Content-Security-Policy", CSP)
    headers.setdefault("X-Frame-Options", "DENY")
    headers.setdefault("X-Content-Type-Options", "nosniff")
    headers.setdefault("Referrer-Policy", "same-origin")
    headers.setdefault("Cache-Control", "no-store")
    started: float | None = getattr(request.state, "dashboard_started", None)
    if started is not None:
        headers["Server-Timing"] = f"app;dur={(time.perf_counter() - started) * 1000:.1f}"
    return response


class DashboardRoute(APIRoute):
    """A dashboard route: timed (``Server-Timing``), with security headers and the session
    cookie on every answer; a visitor who must sign in gets the sign-in page, a missing
    message or tenant a 404 page, a forged form a 403 page."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        """Wrap FastAPI's handler."""
        handler = super().get_route_handler()

        async def route(request: Request) -> Response:
            request.state.dashboard_started = time.perf_counter()
            try:
                await sessions.load(request)
                response = await handler(request)
            except sessions.SignInRequired:
                target = request.url.path
                if request.url.query:
                    target += "?" + request.url.query
                response = redirect(query("/sign-in", next=target))
            except sessions.CsrfFailure:
                response = render(
                    request,
                    "error.html",
                    status=403,
                    title="Form expired",
                    message="This form was not sent from this dashboard, or your session "
                    "changed since the page was loaded. Go back, reload the page and try again.",
                )
            except NotFoundError as exc:
                response = render(
                    request, "error.html", status=404, title="Not found", message=str(exc)
                )
            return _finish(request, response)

        return route


def form_value(form: Mapping[str, str], name: str) -> str:
    """A form field, stripped; empty when absent."""
    return form.get(name, "").strip()
