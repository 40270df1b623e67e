"""Dashboard sessions: who is signed in, and the CSRF token every form carries.

A session is a signed cookie (``postroom_session``: HttpOnly, SameSite=Strict, Secure over
HTTPS) holding a random session id, whether the holder signed in, and when it expires; never
the admin token. It is signed with HMAC-SHA256 under a key derived from the admin token, so
changing the token signs everyone out; without a token (``serve --dev``) the key is random per
process. A signed-in session also lives in the store (a keyed hash of its id): it counts only
while its row is there, so signing out ends it at once on every ``serve`` sharing the database,
even for someone who kept a copy of the cookie. Every visitor gets a session, signed in or not,
so that the sign-in form too carries a CSRF token: an HMAC of the session id, checked on every
POST together with the browser's ``Sec-Fetch-Site`` header.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import secrets
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from fastapi import Request, Response

from postroom.store import Sessions

COOKIE = "postroom_session"
LIFETIME = 12 * 3600
"""Seconds a sign-in lasts."""
ANONYMOUS_LIFETIME = 3600


@dataclass(frozen=True, slots=True)
class Session:
    """One browser's session: ``signed_in`` after a sign-in with the admin token."""

    sid: str
    signed_in: bool
    expires: int

    def to_json(self) -> dict[str, Any]:
        """What the cookie carries (signed, not encrypted: nothing in it is secret)."""
        return {"sid": self.sid, "auth": self.signed_in, "exp": self.expires}


class SignInRequired(Exception):
    """The page needs a signed-in session; the dashboard answers with the sign-in page."""


class CsrfFailure(Exception):
    """A POST without the CSRF token of its session (or from another origin)."""


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def signing_key(request: Request) -> bytes:
    """The app's session key: derived from the admin token, or random for this process."""
    state = request.app.state
    key: bytes | None = getattr(state, "dashboard_key", None)
    if key is None:
        token: str | None = state.admin_token
        if token:
            key = hmac.new(token.encode(), b"postroom dashboard session v1", "sha256").digest()
        else:
            key = secrets.token_bytes(32)
        state.dashboard_key = key
    return key


def encode(session: Session, key: bytes) -> str:
    """The cookie value: ``payload.signature``."""
    payload = _b64(json.dumps(session.to_json(), separators=(",", ":")).encode())
    signature = _b64(hmac.new(key, payload.encode(), hashlib.sha256).digest())
    return f"{payload}.{signature}"


def decode(value: str, key: bytes, *, now: float | None = None) -> Session | None:
    """The session a cookie value holds, or None when it is forged, malformed or expired."""
    payload, _, signature = value.partition(".")
    expected = _b64(hmac.new(key, payload.encode(), hashlib.sha256).digest())
    if not signature or not hmac.compare_digest(signature, expected):
        return None
    try:
        data = json.loads(_unb64(payload))
        session = Session(sid=str(data["sid"]), signed_in=data["auth"] is True, expires=data["exp"])
    except (ValueError, KeyError, TypeError, binascii.Error):
        return None
    if not isinstance(session.expires, int) or session.expires <= (now or time.time()):
        return None
    return session


def new_session(*, signed_in: bool) -> Session:
    """A fresh session id (a new one at every sign-in, so an old id is worth nothing)."""
    lifetime = LIFETIME if signed_in else ANONYMOUS_LIFETIME
    return Session(secrets.token_urlsafe(24), signed_in, int(time.time()) + lifetime)


def csrf_token(session: Session, key: bytes) -> str:
    """The CSRF token of a session."""
    return _b64(hmac.new(key, f"csrf:{session.sid}".encode(), hashlib.sha256).digest())


def stored_id(session: Session, key: bytes) -> str:
    """What the store keeps of a signed-in session: a keyed hash of its id, so a database
    backup holds no usable id, and a new admin token (a new key) matches no old session."""
    return hmac.new(key, f"session:{session.sid}".encode(), hashlib.sha256).hexdigest()


def _store(request: Request) -> Sessions:
    store: Sessions = request.app.state.store
    return store


async def load(request: Request) -> Session:
    """Read this request's session once, before its page runs: a valid cookie, signed in only
    while the store still holds the session; otherwise a new anonymous session, whose cookie
    is set on the response (see :func:`apply_cookie`)."""
    key = signing_key(request)
    raw = request.cookies.get(COOKIE)
    session = decode(raw, key) if raw else None
    if (
        session is not None
        and session.signed_in
        and not await _store(request).session_active(stored_id(session, key))
    ):
        session = None  # signed out (here or on another server), or a new admin token
    if session is None:
        session = new_session(signed_in=False)
        request.state.dashboard_set_cookie = session
    request.state.dashboard_session = session
    return session


def current(request: Request) -> Session:
    """This request's session, as :func:`load` read it."""
    session: Session | None = getattr(request.state, "dashboard_session", None)
    if session is None:
        raise RuntimeError("the dashboard session is read by load() before a page runs")
    return session


async def sign_in(request: Request) -> None:
    """Start a new signed-in session (a new id, recorded in the store) for this browser."""
    session = new_session(signed_in=True)
    expires_at = datetime.fromtimestamp(session.expires, UTC)
    await _store(request).start_session(
        stored_id(session, signing_key(request)), expires_at=expires_at
    )
    _replace(request, session)


async def sign_out(request: Request) -> None:
    """End this browser's session: removed from the store, so the cookie is worth nothing on
    any server from now on, and cleared in the browser."""
    session = current(request)
    if session.signed_in:
        await _store(request).end_session(stored_id(session, signing_key(request)))
    _replace(request, None)


def _replace(request: Request, session: Session | None) -> None:
    """Make ``session`` this browser's session from the response on (None: no session)."""
    request.state.dashboard_session = session or new_session(signed_in=False)
    request.state.dashboard_set_cookie = session if session is not None else False


def apply_cookie(request: Request, response: Response) -> None:
    """Set or clear the session cookie when this request created, replaced or ended one."""
    pending = getattr(request.state, "dashboard_set_cookie", None)
    if pending is None:
        return
    secure = request.url.scheme == "https"
    if pending is False:
        response.delete_cookie(COOKIE, path="/", secure=secure, httponly=True, samesite="strict")
        return
    response.set_cookie(
        COOKIE,
        encode(pending, signing_key(request)),
        max_age=max(0, pending.expires - int(time.time())),
        path="/",
        secure=secure,
        httponly=True,
        samesite="strict",
    )


def may_view(request: Request) -> bool:
    """True in dev mode or with a signed-in session."""
    return bool(request.app.state.dev) or current(request).signed_in


def require_viewer(request: Request) -> Session:
    """The session of someone allowed to see the dashboard, else :class:`SignInRequired`."""
    session = current(request)
    if not may_view(request):
        raise SignInRequired()
    return session


def check_csrf(request: Request, form: dict[str, str]) -> None:
    """Refuse a POST that a browser says comes from another site, or that lacks this
    session's CSRF token. (``Sec-Fetch-Site`` rather than ``Origin`` against ``Host``: a
    reverse proxy may rewrite the Host header, never the browser's own verdict.)"""
    site = request.headers.get("sec-fetch-site")
    if site is not None and site not in ("same-origin", "none"):
        raise CsrfFailure()
    expected = csrf_token(current(request), signing_key(request))
    if not hmac.compare_digest(form.get("csrf", ""), expected):
        raise CsrfFailure()


def is_admin_token(request: Request, token: str) -> bool:
    """Constant-time check of a token typed into the sign-in form."""
    from postroom.web.auth import _is_admin  # the API's check, so both accept the same token

    return _is_admin(request, token)
