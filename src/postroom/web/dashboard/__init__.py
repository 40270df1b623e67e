"""The delivery dashboard, served by ``postroom serve`` at ``/``.

Server-rendered pages (Jinja2, autoescaped) with a little vendored JavaScript:

- ``/sign-in``, ``/sign-out``: the admin token opens a session (not needed with ``--dev``);
- ``/``: the overview (last hour and day per tenant, the queue, a chart, failure reasons);
- ``/messages``, ``/messages/{id}``: the list with filters and keyset pages, one message with
  its attempts, retry and cancel;
- ``/tenants``, ``/tenants/{id}``: provider settings with a preset picker, the SMTP test, and
  the SMTP listener's logins with the settings to paste into Keycloak;
- ``/suppressions``: the suppression list, searched, an address removed;
- ``/tenants/{id}/deliverability``: ``doctor``'s checks of the tenant's domain, its DKIM keys;
- ``/listener``: the SMTP listener's refusals (why a client's "Test connection" failed);
- ``/templates``: every template type of a tenant in a locale, HTML beside plain text, with
  "Send me this";
- ``/outbox``, ``/outbox/{name}``: what the outbox transport captured.

``session`` holds sessions and CSRF, ``pages`` what every page shares.
"""

from __future__ import annotations

from fastapi import FastAPI
from starlette.staticfiles import StaticFiles

from postroom.web.dashboard import (
    deliverability,
    listener,
    messages,
    outbox,
    overview,
    previews,
    signin,
    suppressions,
    tenants,
)
from postroom.web.dashboard.pages import HERE

STATIC_PATH = "/static"


def install(app: FastAPI) -> None:
    """Add the dashboard's pages and its static files (CSS, JS) to ``app``."""
    for module in (
        signin,
        overview,
        messages,
        deliverability,
        tenants,
        previews,
        suppressions,
        outbox,
        listener,
    ):
        app.include_router(module.router)
    app.mount(STATIC_PATH, StaticFiles(directory=HERE / "static"), name="dashboard-static")


__all__ = ["install"]
