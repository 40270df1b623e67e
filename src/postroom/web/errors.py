"""Every error answer is the documented JSON shape, never an HTML page or a traceback."""

from __future__ import annotations

import logging
from http import HTTPStatus
from typing import Any
from urllib.parse import unquote_to_bytes

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from postroom.errors import (
    ConfigError,
    ConflictError,
    DuplicateRequestError,
    InputError,
    NotFoundError,
    RecipientLimitError,
    SuppressedError,
    UnavailableError,
)
from postroom.text import terminal_safe

log = logging.getLogger("postroom.web")
MAX_BODY = 1024 * 1024

_MESSAGES = {
    400: "The request was malformed or contained invalid parameters.",
    401: "The request could not be authorized.",
    403: "The requested action was forbidden.",
    404: "The requested resource could not be found.",
    405: "The method is not allowed for this resource.",
    409: "The request could not be completed due to a conflict.",
    429: "Too many messages for this recipient; try again after Retry-After seconds.",
    503: "The service is temporarily unavailable for this request.",
    413: "The request body is too large.",
    422: "The request was understood but cannot be carried out.",
    500: "An internal server error occurred, please contact the system administrator.",
}


def error_body(code: int, reason: str) -> dict[str, Any]:
    """The error object; control characters and lone surrogates in ``reason`` are
    escaped."""
    status = HTTPStatus(code)
    return {
        "error": {
            "code": code,
            "status": status.phrase,
            # Reasons quote what the caller sent: printable, and always encodable as UTF-8.
            "reason": terminal_safe(reason, keep_newlines=True),
            "message": _MESSAGES.get(code, status.description or status.phrase),
        }
    }


def error_response(code: int, reason: str, headers: dict[str, str] | None = None) -> JSONResponse:
    """A JSON error answer."""
    return JSONResponse(error_body(code, reason), status_code=code, headers=headers)


# Postroom's errors and their HTTP status; the first match wins (subclasses first).
STATUS_OF: tuple[tuple[type[Exception], int], ...] = (
    (DuplicateRequestError, 409),
    (InputError, 400),
    (SuppressedError, 422),
    (ConfigError, 400),
    (NotFoundError, 404),
    (ConflictError, 409),
    (RecipientLimitError, 429),
    (UnavailableError, 503),
)


def allowed_methods(app: FastAPI, scope: Scope) -> str:
    """The ``Allow`` header for the path of ``scope``: the methods of every route on it."""
    methods: set[str] = set()
    pending: list[Any] = list(app.router.routes)
    while pending:
        route = pending.pop()
        if hasattr(route, "original_router"):  # an included router, kept whole
            pending.extend(route.original_router.routes)
            continue
        if getattr(route, "methods", None) and route.matches(scope)[0] is not Match.NONE:
            methods |= set(route.methods)
    if "GET" in methods:
        methods.add("HEAD")
    return ", ".join(sorted(methods))


def install_error_handlers(app: FastAPI) -> None:
    """Map Postroom's and the framework's errors to the JSON error shape."""

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        headers = getattr(exc, "headers", None)
        if exc.status_code == 405:  # every method of the path, not only one route's
            headers = {**(headers or {}), "Allow": allowed_methods(app, request.scope)}
        return error_response(exc.status_code, str(exc.detail), headers)

    @app.exception_handler(RequestValidationError)
    async def validation_error(_request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = []
        for err in exc.errors():
            loc = ".".join(str(p) for p in err.get("loc", ()) if p not in ("body", "query"))
            problems.append(f"{loc or 'body'}: {err.get('msg', 'invalid')}")
        return error_response(400, "; ".join(problems) or "invalid request")

    async def postroom_error(_request: Request, exc: Exception) -> JSONResponse:
        status = next(code for kind, code in STATUS_OF if isinstance(exc, kind))
        if isinstance(exc, RecipientLimitError):  # which limit, and when to come back
            body = error_body(status, str(exc))
            body["error"]["limit"] = exc.limit
            body["error"]["retry_after"] = exc.retry_after
            headers = {"Retry-After": str(exc.retry_after)}
            return JSONResponse(body, status_code=status, headers=headers)
        response = error_response(status, str(exc))
        if isinstance(exc, SuppressedError):  # a code a program can test, and the evidence
            body = error_body(status, str(exc))
            body["error"] |= {
                "id": "suppressed",
                "details": {"address": exc.address, "reason": exc.reason, "since": exc.since},
            }
            response = JSONResponse(body, status_code=status)
        return response

    for kind, _status in STATUS_OF:
        app.add_exception_handler(kind, postroom_error)

    @app.exception_handler(Exception)
    async def unexpected(_request: Request, exc: Exception) -> JSONResponse:
        log.error("unhandled %s in a request", type(exc).__name__, exc_info=exc)
        return error_response(500, "unexpected error; see the server log")


class BodyLimit:
    """Answer 413 for request bodies over ``limit`` bytes, declared or streamed."""

    def __init__(self, app: ASGIApp, limit: int = MAX_BODY) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope.get("headers", []):
            if name == b"content-length" and value.isdigit() and int(value) > self.limit:
                await self._too_large(scope, receive, send)
                return
        # Read the body first (it is at most ``limit`` bytes), then replay it to the app.
        chunks: list[bytes] = []
        seen = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                await self.app(scope, _replay(receive, [], message), send)
                return
            chunk = message.get("body", b"")
            seen += len(chunk)
            if seen > self.limit:
                await self._too_large(scope, receive, send)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        await self.app(scope, _replay(receive, chunks, None), send)

    async def _too_large(self, scope: Scope, receive: Receive, send: Send) -> None:
        reason = f"the request body is larger than {self.limit // 1024} KiB"
        await error_response(413, reason)(scope, receive, send)


class NoNulInUrl:
    """Answer 400 for a URL whose path or query holds a NUL (``%00``): no message id, tenant
    or filter holds one, and PostgreSQL refuses it in a query instead of finding nothing."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and (
            "\x00" in scope.get("path", "")
            or b"\x00" in unquote_to_bytes(scope.get("query_string", b""))
        ):
            reason = "the URL contains a NUL character (%00); no id, name or filter holds one"
            await error_response(400, reason)(scope, receive, send)
            return
        await self.app(scope, receive, send)


def _replay(receive: Receive, chunks: list[bytes], last: Message | None) -> Receive:
    """A ``receive`` that gives the buffered body, then whatever the client sends next."""
    body: Message = {"type": "http.request", "body": b"".join(chunks), "more_body": False}
    pending: list[Message] = [last] if last is not None else [body]

    async def replayed() -> Message:
        if pending:
            return pending.pop(0)
        return await receive()

    return replayed
