"""JSON Lines files of messages (``postroom send --bulk``): every line validated and rendered
as the API would, and every bad line named with its number and its problem.

A file is read a line at a time with a size cap, so that a huge line (or a file with no line
breaks at all, such as ``/dev/zero``) is reported instead of filling the memory.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import BinaryIO

from postroom.config import Settings
from postroom.config.durations import format_duration
from postroom.errors import InputError
from postroom.intake.enqueue import SendRequest, prepare
from postroom.intake.validate import parse_json
from postroom.models import NewMessage, Priority
from postroom.store.lane_rules import bulk_cap

MAX_LINE = 1024 * 1024
"""The longest line, in bytes: far more than one message's data (64 KiB) and bodies need."""

MAX_SKIP = 16 * MAX_LINE
"""How far past :data:`MAX_LINE` an over-long line is skipped to find its end; a line longer
than that means the file is not JSON Lines, and reading stops."""


MAX_BAD = 1000
"""Bad lines after which reading stops: a file that bad (``/dev/urandom``, a binary, the
wrong file) is not a bulk file with a few mistakes, and listing more helps nobody."""


@dataclass
class BulkFile:
    """What a bulk file holds: the prepared messages of its good lines, in order, and one
    ``line N: problem`` entry per bad line."""

    good: list[NewMessage] = field(default_factory=list)
    bad: list[str] = field(default_factory=list)


def read_bulk(path: Path, settings: Settings, *, priority: str = "bulk") -> BulkFile:
    """Read, validate and render every line of ``path``; nothing is stored.

    A line without a ``priority`` key goes in the lane ``priority`` names (bulk by default).

    A line that is not UTF-8, not a JSON object, nested too deeply, longer than
    :data:`MAX_LINE`, or not a valid message is listed in ``bad``, as is an idempotency key
    used again for a different message. Raise :class:`InputError` naming ``--bulk`` when the
    file cannot be read, when a line has no end within :data:`MAX_SKIP` bytes, or when
    :data:`MAX_BAD` lines are bad and outnumber the good ones.
    """
    result = BulkFile()
    keys: dict[tuple[str, str], tuple[int, str | None]] = {}  # (tenant, key) -> line, hash
    try:
        handle = path.open("rb")
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc.strerror}", field="--bulk") from None
    with handle:
        for number, raw in _lines(handle, path):
            try:
                request = SendRequest.from_mapping(_parse(raw))
                if request.priority is None:
                    request = replace(request, priority=priority)
                new = prepare(request, settings)
            except InputError as exc:
                result.bad.append(f"line {number}: {exc}")
                if len(result.bad) >= MAX_BAD and len(result.bad) > len(result.good):
                    shown = "\n  ".join(result.bad[:5])
                    raise InputError(
                        f"{path} has {MAX_BAD} bad lines by line {number}, more than good ones, "
                        "so it does not look like a JSON Lines file of messages (one JSON "
                        f"object per line); reading stopped, nothing was enqueued. The first:"
                        f"\n  {shown}",
                        field="--bulk",
                    ) from None
                continue
            if new.idempotency_key is not None:
                key = (new.tenant, new.idempotency_key)
                earlier, digest = keys.setdefault(key, (number, new.request_hash))
                if digest != new.request_hash:
                    result.bad.append(
                        f"line {number}: idempotency_key: {new.idempotency_key!r} is already "
                        f"used on line {earlier} for a different message"
                    )
                    continue
            result.good.append(new)
    return result


def _lines(handle: BinaryIO, path: Path) -> Iterator[tuple[int, bytes | None]]:
    """``(number, line)`` for every line that is not blank; ``None`` for one over
    :data:`MAX_LINE` bytes (its rest is skipped)."""
    number = 0
    while raw := handle.readline(MAX_LINE + 1):
        number += 1
        if len(raw) > MAX_LINE and not raw.endswith(b"\n"):
            _skip_rest(handle, path, number)
            yield number, None
        elif raw.strip():
            yield number, raw


def _skip_rest(handle: BinaryIO, path: Path, number: int) -> None:
    skipped = 0
    while skipped <= MAX_SKIP:
        chunk = handle.readline(MAX_LINE)
        if not chunk or chunk.endswith(b"\n"):
            return
        skipped += len(chunk)
    raise InputError(
        f"line {number} of {path} has no line break in its first "
        f"{(MAX_LINE + MAX_SKIP) // MAX_LINE} MiB, so this is not a JSON Lines file (one JSON "
        "object per line); nothing was enqueued",
        field="--bulk",
    )


def _parse(raw: bytes | None) -> object:
    """The JSON value of one line; raise :class:`InputError` saying why there is none."""
    if raw is None:
        raise InputError(f"is longer than {MAX_LINE // 1024 // 1024} MiB; one message per line")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InputError(
            f"is not valid UTF-8 (byte 0x{raw[exc.start]:02x} at byte {exc.start + 1}); "
            "save the file as UTF-8"
        ) from None
    return parse_json(text)


def ttl_warnings(prepared: list[NewMessage], settings: Settings) -> list[str]:
    """One line per tenant whose rate limits cannot hand off this file's bulk messages within
    its ``courier.bulk_ttl`` (the rest would expire), saying what would fit and what to do."""
    counts: dict[str, int] = {}
    for new in prepared:
        if new.priority is Priority.BULK:
            counts[new.tenant] = counts.get(new.tenant, 0) + 1
    warnings = []
    for tenant, count in sorted(counts.items()):
        courier = settings.tenant(tenant)
        limits = courier.effective_rate_limits
        if not limits or courier.bulk_ttl <= 0:
            continue
        fits = min(
            bulk_cap(limit.count, courier.bulk_share) * max(1, int(courier.bulk_ttl // limit.per))
            for limit in limits
        )
        if count > fits:
            warnings.append(
                f"tenant {tenant!r}: its rate limits let bulk mail hand off about {fits} "
                f"message(s) within courier.bulk_ttl ({format_duration(courier.bulk_ttl)}), and "
                f"this file has {count}; the rest would expire. Raise courier.bulk_ttl or the "
                "limits, or split the file"
            )
    return warnings
