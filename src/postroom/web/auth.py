"""Who may call what: the admin token for everything under /admin and /intake, a tenant's
intake token for that tenant's messages only; nothing in ``--dev``."""

from __future__ import annotations

import hmac
from dataclasses import dataclass

from fastapi import Request
from starlette.exceptions import HTTPException

from postroom.config.tenants import TenantRegistry

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
    if not _is_admin(request, token):
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
    if _is_admin(request, token):
        return Caller(admin=True)
    registry: TenantRegistry = request.app.state.tenants
    tenants = await registry.tenants_for_token(token)
    if not tenants:
        raise HTTPException(401, "the token is not valid here", headers=CHALLENGE)
    return Caller(admin=False, tenants=frozenset(tenants))
