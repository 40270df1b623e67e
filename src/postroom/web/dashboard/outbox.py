"""The outbox: the ``.eml`` files the outbox transport wrote, newest first, each rendered, so
that ``make run`` is a complete local mail catcher. Bodies follow the API's rule: shown in dev
mode or when every tenant writing to that folder exposes message bodies."""

from __future__ import annotations

import asyncio
import os
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from email import policy
from email.message import EmailMessage, Message
from email.parser import BytesParser
from email.policy import compat32
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request, Response

from postroom.config import Settings
from postroom.errors import NotFoundError
from postroom.models import REDACTED
from postroom.web.dashboard.headers import header_text, shown_headers
from postroom.web.dashboard.pages import (
    EMAIL_CSP,
    DashboardRoute,
    query,
    render,
)
from postroom.web.dashboard.session import Session, require_viewer
from postroom.web.state import exposes_bodies, registry, store

router = APIRouter(route_class=DashboardRoute, include_in_schema=False)
Viewer = Annotated[Session, Depends(require_viewer)]

PAGE_SIZE = 50
FILE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,200}\.eml$")


@dataclass(frozen=True)
class Folder:
    """An outbox folder and the tenants that write to it."""

    path: Path
    tenants: tuple[str, ...]


@dataclass(frozen=True)
class Captured:
    """One captured email, as the list shows it."""

    name: str
    written: datetime
    size: int
    sender: str
    recipient: str
    subject: str


def folders(settings: Settings) -> list[Folder]:
    """Every outbox folder of a tenant that delivers to the outbox."""
    found: dict[Path, list[str]] = {}
    for name in settings.tenant_names():
        courier = settings.tenant(name)
        if courier.strategy == "outbox":
            found.setdefault(Path(courier.outbox_path), []).append(name)
    return [Folder(path, tuple(names)) for path, names in found.items()]


async def _exposed(request: Request, folder: Folder) -> bool:
    return all([await exposes_bodies(request, name) for name in folder.tenants])


def _parse(path: Path) -> EmailMessage:
    with open(path, "rb") as fh:
        parsed = BytesParser(policy=policy.default).parse(fh)
    return parsed


def _parse_headers(path: Path) -> Message:
    """The headers only, parsed leniently (a malformed address never breaks the page)."""
    with open(path, "rb") as fh:
        return BytesParser(policy=compat32).parse(fh, headersonly=True)


def _scan(folder_list: list[Folder], start: int) -> tuple[list[tuple[Path, os.stat_result]], int]:
    entries: list[tuple[Path, os.stat_result]] = []
    for folder in folder_list:
        try:
            with os.scandir(folder.path) as it:
                for entry in it:
                    if entry.is_file() and FILE_NAME.match(entry.name):
                        entries.append((Path(entry.path), entry.stat()))
        except FileNotFoundError:
            continue
    entries.sort(key=lambda e: (e[1].st_mtime, e[0].name), reverse=True)
    return entries[start : start + PAGE_SIZE + 1], len(entries)


def _summary(path: Path, stat: os.stat_result, exposed: bool) -> Captured:
    try:
        message = _parse_headers(path)
    except OSError:
        message = Message()
    return Captured(
        name=path.name,
        written=datetime.fromtimestamp(stat.st_mtime, UTC),
        size=stat.st_size,
        sender=header_text(message, "From"),
        recipient=header_text(message, "To"),
        subject=header_text(message, "Subject") if exposed else REDACTED,
    )


@router.get("/outbox")
async def outbox(request: Request, _viewer: Viewer, start: int = 0, fragment: str = "") -> Response:
    """The captured emails, newest first."""
    settings = await registry(request).settings()
    folder_list = folders(settings)
    exposed = all([await _exposed(request, f) for f in folder_list])
    start = max(start, 0)
    entries, total = await asyncio.to_thread(_scan, folder_list, start)
    more = len(entries) > PAGE_SIZE
    rows = await asyncio.to_thread(
        lambda: [_summary(path, stat, exposed) for path, stat in entries[:PAGE_SIZE]]
    )
    context: dict[str, Any] = {"rows": rows, "now": datetime.now(UTC)}
    if fragment == "rows":
        return render(request, "outbox_rows.html", **context)
    return render(
        request,
        "outbox.html",
        title="Outbox",
        nav="outbox",
        folders=folder_list,
        total=total,
        start=start,
        newer=query("/outbox", start=str(max(start - PAGE_SIZE, 0))) if start else None,
        older=query("/outbox", start=str(start + PAGE_SIZE)) if more else None,
        refresh=query("/outbox", fragment="rows") if not start else None,
        **context,
    )


async def _find(request: Request, name: str) -> tuple[Path, Folder]:
    if not FILE_NAME.match(name):
        raise NotFoundError(f"no captured email {name!r}")
    settings = await registry(request).settings()
    for folder in folders(settings):
        path = folder.path / name
        if path.is_file():
            return path, folder
    raise NotFoundError(f"no captured email {name!r} in the outbox")


def _part(message: EmailMessage, kind: str) -> str | None:
    try:
        part = message.get_body(preferencelist=(kind,))
        content = None if part is None else part.get_content()
    except (ValueError, LookupError, TypeError, AttributeError):
        return None  # a part this parser cannot read is not shown, the page still is
    return content if isinstance(content, str) else None


@router.get("/outbox/{name}")
async def captured(request: Request, _viewer: Viewer, name: str) -> Response:
    """One captured email: headers, the HTML in a sandbox, the plain text."""
    path, folder = await _find(request, name)
    exposed = await _exposed(request, folder)
    message = await asyncio.to_thread(_parse, path)
    headers = shown_headers(await asyncio.to_thread(_parse_headers, path), exposed=exposed)
    stem = path.stem
    try:
        queued = await store(request).get(stem)
    except NotFoundError:
        queued = None
    return render(
        request,
        "captured.html",
        title="Captured email",
        nav="outbox",
        name=name,
        headers=headers,
        exposed=exposed,
        text=_part(message, "plain") if exposed else None,
        has_html=exposed and _part(message, "html") is not None,
        queued=queued,
        written=datetime.fromtimestamp(path.stat().st_mtime, UTC),
    )


@router.get("/outbox/{name}/html")
async def captured_html(request: Request, _viewer: Viewer, name: str) -> Response:
    """A captured email's HTML part, sandboxed like a message's."""
    path, folder = await _find(request, name)
    message = await asyncio.to_thread(_parse, path)
    html = _part(message, "html")
    if html is None or not await _exposed(request, folder):
        raise NotFoundError("this email has no HTML part to show")
    return Response(
        html,
        media_type="text/html; charset=utf-8",
        headers={"Content-Security-Policy": EMAIL_CSP, "X-Frame-Options": "SAMEORIGIN"},
    )
