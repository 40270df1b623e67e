"""Who may call what: the admin token for everything under /admin and /intake, a tenant's
intake token for that tenant's messages only; nothing in ``--dev``. Wrong tokens count against
the client's address (see :mod:`postroom.web.throttle`)."""

from __future__ import annotations

import base64
import binascii
import hmac
from collections.abc import Iterable
from dataclasses import dataclass

from fastapi import Request
from starlette.exceptions import HTTPException

from postroom.config import Settings
from postroom.config.secrets import token_matches
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


INTAKE_HINT = (
    "send the admin or an intake token as Authorization: Bearer <token> (also accepted: "
    "Authorization: <token>, basic auth with the token as the password, X-Api-Key: <token>, "
    "or the cookie postroom_token; a tenant's courier.ory.token_in names more places)"
)


def _stripped(value: str) -> str:
    scheme, _, rest = value.strip().partition(" ")
    return rest.strip() if scheme.lower() == "bearer" and rest.strip() else value.strip()


def _from_authorization(value: str) -> str | None:
    """The token of an Authorization header: ``Bearer T``, ``Basic`` with T as the password
    (the username is ignored), or a bare ``T``."""
    value = value.strip()
    scheme, _, rest = value.partition(" ")
    if scheme.lower() == "basic" and rest.strip():
        try:
            decoded = base64.b64decode(rest.strip(), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            return None
        _user, colon, password = decoded.partition(":")
        return password if colon and password else None
    return _stripped(value) or None


def default_token(request: Request) -> str | None:
    """The token in one of the places every tenant accepts (see :data:`INTAKE_HINT`), or None."""
    authorization = request.headers.get("authorization")
    token = _from_authorization(authorization) if authorization is not None else None
    if token is not None:
        return token
    api_key = request.headers.get("x-api-key")
    if api_key is not None and api_key.strip():
        return _stripped(api_key)
    cookie = request.cookies.get("postroom_token")
    return cookie.strip() if cookie and cookie.strip() else None


def _holders(settings: Settings, token: str, names: Iterable[str]) -> set[str]:
    """The tenants among ``names`` whose intake tokens include ``token`` (never its hash)."""
    return {name for name in names if token_matches(token, settings.tenant(name).intake_tokens)}


def tenant_tokens(request: Request, settings: Settings) -> dict[str, set[str]]:
    """Tokens found in the places tenants name in ``courier.ory.token_in``: token -> the
    tenants that named the place it was found in (only those may accept it)."""
    found: dict[str, set[str]] = {}
    for name in settings.tenant_names():
        for place in settings.tenant(name).ory.token_in:
            if place.header is not None:
                raw = request.headers.get(place.header)
                token = _stripped(raw) if raw is not None else None
            else:
                cookie = request.cookies.get(place.cookie or "")
                token = cookie.strip() if cookie is not None else None
            if token:
                found.setdefault(token, set()).add(name)
    return found


async def require_intake(request: Request) -> Caller:
    """The operator, or a tenant's intake token (FastAPI dependency), sent in any form Ory
    Kratos's ``request_config.auth`` produces; the route checks that the tenant of each
    message is one the token belongs to. A token's stored hash is never accepted as the token."""
    if request.app.state.dev:
        return Caller(admin=True)
    registry: TenantRegistry = request.app.state.tenants
    token = default_token(request)
    # Read before anything is judged: from here to the verdict nothing awaits, so a burst of
    # guesses cannot pass the throttle together, and good tokens are never counted as failures.
    settings = await registry.settings()
    named = tenant_tokens(request, settings)
    if token is None and not named:
        raise HTTPException(401, INTAKE_HINT, headers=CHALLENGE)
    throttle, client = _unthrottled(request)
    if token is not None and _is_admin(request, token):
        return Caller(admin=True)
    tenants = _holders(settings, token, settings.tenant_names()) if token is not None else set()
    for candidate, places in named.items():
        tenants |= _holders(settings, candidate, places)
    if not tenants:
        throttle.failed(client)
        raise HTTPException(401, "the token is not valid here", headers=CHALLENGE)
    return Caller(admin=False, tenants=frozenset(tenants))
