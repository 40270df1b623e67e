"""The OpenAPI document as the app really answers: every error status a route can give, in
the JSON error shape (400 where FastAPI would declare 422), and nothing it never gives."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import FastAPI

ERROR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["code", "status", "reason", "message"],
            "properties": {
                "code": {"type": "integer"},
                "status": {"type": "string"},
                "reason": {"type": "string"},
                "message": {"type": "string"},
            },
        }
    },
}

_WHY = {
    "400": "The request is not valid: the message names the field and the fix.",
    "401": "No token, or not one that may call this route.",
    "404": "No such message or tenant.",
    "409": "The resource is not in a state that allows this (or an idempotency key was "
    "reused with another body).",
    "413": "The body is larger than the limit.",
    "429": "Too many wrong tokens from this address; see Retry-After.",
    "503": "The tenant's saved settings cannot be used right now.",
}


def _errors_of(path: str, method: str, operation: dict[str, Any]) -> list[str]:
    """The error statuses ``method path`` can answer."""
    if not path.startswith(("/admin", "/intake")):
        return ["503"] if path == "/health/ready" else []
    codes = ["400", "401", "429"]
    if "{" in path:
        codes.append("404")
    if method in ("post", "put", "delete"):
        codes.append("409")
    if "requestBody" in operation:
        codes.append("413")
    if path.startswith("/intake") or (path == "/admin/courier/messages" and method == "post"):
        codes.append("503")
    return codes


def install_true_openapi(app: FastAPI) -> None:
    """Make ``app.openapi()`` declare the error answers each route really gives."""
    build: Callable[[], dict[str, Any]] = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        schema = build()
        schema.setdefault("components", {}).setdefault("schemas", {})["Error"] = ERROR_SCHEMA
        error = {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
        for path, item in schema.get("paths", {}).items():
            for method, operation in item.items():
                responses = operation.setdefault("responses", {})
                responses.pop("422", None)
                for code in _errors_of(path, method, operation):
                    responses.setdefault(code, {"description": _WHY[code], "content": error})
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
