"""Who may call what: the admin token for everything under /admin and /intake, a tenant's
intake token for that tenant's messages only; nothing in ``--dev``. Wrong tokens count against
the client's address (see :mod:`postroom.web.throttle`)."""

from __future__ import annotations

import hmac
from dataclasses import dataclass

from fastapi import Request
from starlette.exceptions import HTTPException

from postroom.config.tenants import TenantRegistry
from postroom.web.throttle import Throttle, client_of, throttle_of, wait_text

CHALLENGE = {"WWW-Authenticate": 'Bearer realm="postroom"'}


@dataclass(frozen=True, slots=True)
class Caller:
    """An authenticated caller: the operator, or the holder of some tenants' intake token."""

    admin: bool
    tenants: frozenset[str] = frozenset()

    def may_enqueue_for(self, tenant: str) -> bool:
        """True when the caller may hand over messages for ``tenant``."""
        return self.admin or tenant in self.tenants


def _bearer(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


def _unthrottled(request: Request) -> tuple[Throttle, str]:
    """The app's throttle and this request's client; 429 when the client must wait."""
    throttle, client = throttle_of(request), client_of(request)
    wait = throttle.retry_after(client)
    if wait:
        raise HTTPException(
            429,
            f"too many wrong tokens from your address; try again in {wait_text(wait)}",
            headers={"Retry-After": str(wait)},
        )
    return throttle, client


def _is_admin(request: Request, token: str) -> bool:
    expected: str | None = request.app.state.admin_token
    return expected is not None and hmac.compare_digest(token.encode(), expected.encode())


async def require_admin(request: Request) -> Caller:
    """The operator only (FastAPI dependency)."""
    if request.app.state.dev:
        return Caller(admin=True)
    token = _bearer(request)
    if token is None:
        raise HTTPException(401, "send Authorization: Bearer <admin token>", headers=CHALLENGE)
    throttle, client = _unthrottled(request)
    if not _is_admin(request, token):
        throttle.failed(client)
        raise HTTPException(401, "the token is not valid here", headers=CHALLENGE)
    return Caller(admin=True)


async def require_intake(request: Request) -> Caller:
    """The operator, or a tenant's intake token (FastAPI dependency); the route checks that
    the tenant of each message is one the token belongs to."""
    if request.app.state.dev:
        return Caller(admin=True)
    token = _bearer(request)
    if token is None:
        raise HTTPException(
            401, "send Authorization: Bearer <admin or intake token>", headers=CHALLENGE
        )
    throttle, client = _unthrottled(request)
    if _is_admin(request, token):
        return Caller(admin=True)
    registry: TenantRegistry = request.app.state.tenants
    # A token known good needs no wait and no count: a caller's burst of real requests is
    # never throttled, however slow the store is.
    tenants = registry.known_tenants_for_token(token)
    if tenants:
        return Caller(admin=False, tenants=frozenset(tenants))
    # Counted as failed until the lookup proves it good, so that a burst of guesses cannot
    # all pass the check above while the first ones wait for the lookup.
    stamp = throttle.failed(client)
    tenants = await registry.tenants_for_token(token)
    if not tenants:
        raise HTTPException(401, "the token is not valid here", headers=CHALLENGE)
    throttle.forgive(client, stamp)
    return Caller(admin=False, tenants=frozenset(tenants))
