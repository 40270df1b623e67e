"""Signing in with the admin token, and signing out."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Request, Response

from postroom.web.dashboard import session as sessions
from postroom.web.dashboard.pages import (
    DashboardRoute,
    form_value,
    local_path,
    read_form,
    redirect,
    render,
)
from postroom.web.throttle import client_of, throttle_of, wait_text

router = APIRouter(route_class=DashboardRoute, include_in_schema=False)

FAILED_SIGN_IN_DELAY = 0.5
"""Seconds a wrong token waits for its answer (guessing stays slow)."""


@router.get("/sign-in")
async def sign_in_page(request: Request, next: str | None = None) -> Response:
    """The sign-in form; a visitor already signed in (or in dev mode) goes on at once."""
    if sessions.may_view(request):
        return redirect(local_path(next))
    return render(request, "sign_in.html", title="Sign in", next=local_path(next, ""))


@router.post("/sign-in")
async def sign_in(request: Request) -> Response:
    """Check the admin token; on success start a new signed-in session."""
    form = await read_form(request)
    target = local_path(form.get("next"))
    token = form_value(form, "token")
    throttle, client = throttle_of(request), client_of(request)
    wait = throttle.retry_after(client)
    status = 401
    if request.app.state.admin_token is None:
        error = (
            "This server has no admin token, so nobody can sign in. Set serve.admin_token "
            "(or SERVE_ADMIN_TOKEN), or run `postroom serve --dev` on a loopback address."
        )
    elif wait:
        status = 429
        error = (
            f"Too many failed sign-ins from your address. Wait {wait_text(wait)}, then sign in "
            "again with the admin token."
        )
    elif token and sessions.is_admin_token(request, token):
        await sessions.sign_in(request)
        return redirect(target)
    else:
        throttle.failed(client)
        await asyncio.sleep(FAILED_SIGN_IN_DELAY)
        error = (
            "That is not this server's admin token. It is serve.admin_token in the "
            "configuration (or SERVE_ADMIN_TOKEN), or the token `postroom serve` printed at "
            "start when none is configured."
        )
    page = render(
        request,
        "sign_in.html",
        status=status,
        title="Sign in",
        next=local_path(form.get("next"), ""),
        error=error,
    )
    if wait:
        page.headers["Retry-After"] = str(wait)
    return page


@router.post("/sign-out")
async def sign_out(request: Request) -> Response:
    """End the session."""
    await read_form(request)
    await sessions.sign_out(request)
    return redirect("/sign-in?notice=signed-out")
