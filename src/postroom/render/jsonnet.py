"""Jsonnet request bodies for HTTP delivery: where a body comes from, and evaluating it safely.

A body is a Jsonnet function of one top-level argument, ``ctx`` (SPEC.md). It comes from
``file://PATH``, ``base64://DATA``, ``https://URL`` (fetched once, when the configuration is
loaded, and cached) or is inline Jsonnet text; without one, :data:`DEFAULT_BODY` is Ory's
default payload.

The ``jsonnet`` library can neither be interrupted nor limited in memory, so every evaluation
runs in a child process (:mod:`postroom.render.jsonnet_child`) that the parent can kill:

- :class:`JsonnetPool` keeps a few such children for the worker; an evaluation that takes longer
  than :attr:`JsonnetLimits.timeout` is killed and its child replaced, one that passes the memory
  cap (``RLIMIT_AS``) dies by itself, and an output larger than :attr:`JsonnetLimits.max_output`
  is refused. Each of these, and a Jsonnet ``error``, is a :class:`JsonnetError`.
- :func:`check_body` compiles a body once while the configuration loads (in a short-lived
  child, within the same limits) and raises :class:`~postroom.errors.ConfigError` with the line
  of a syntax error.

Imports are allowed only in ``file://`` bodies, and only from the body's own directory.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import functools
import json
import os
import re
import signal
import subprocess
import sys
from collections import deque
from collections.abc import Coroutine, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import unquote, urlsplit

from postroom.errors import ConfigError, DeliveryError, TemplateError
from postroom.net.client import fetch_limited

T = TypeVar("T")

MAX_SOURCE = 256 * 1024
"""Bytes a body may have, whichever its source."""

CHILD_SCRIPT = Path(__file__).with_name("jsonnet_child.py")
START_TIMEOUT = 10.0  # seconds a child may take to start (a loaded machine, a cold disk)
_READ_LIMIT = 32 * 1024 * 1024  # bytes of one answer line (a batch of JSON-escaped outputs)

DEFAULT_BODY = """\
function(ctx) {
  recipient: ctx.recipient,
  template_type: ctx.template_type,
  to: if "template_data" in ctx && "to" in ctx.template_data then ctx.template_data.to else null,
  recovery_code: if "template_data" in ctx && "recovery_code" in ctx.template_data then ctx.template_data.recovery_code else null,
  recovery_url: if "template_data" in ctx && "recovery_url" in ctx.template_data then ctx.template_data.recovery_url else null,
  verification_url: if "template_data" in ctx && "verification_url" in ctx.template_data then ctx.template_data.verification_url else null,
  verification_code: if "template_data" in ctx && "verification_code" in ctx.template_data then ctx.template_data.verification_code else null,
  login_code: if "template_data" in ctx && "login_code" in ctx.template_data then ctx.template_data.login_code else null,
  registration_code: if "template_data" in ctx && "registration_code" in ctx.template_data then ctx.template_data.registration_code else null,
  subject: if "template_data" in ctx && "subject" in ctx.template_data then ctx.template_data.subject else if "subject" in ctx then ctx.subject else null,
  body: if "template_data" in ctx && "body" in ctx.template_data then ctx.template_data.body else if "body" in ctx then ctx.body else null,
}
"""  # noqa: E501 - Ory's documented payload; see the docstring for the two last keys
"""Ory's documented HTTP email payload: the eleven keys of SPEC.md, ``null`` where absent.

One difference from Ory's page: ``subject`` and ``body`` fall back to the rendered email's
subject and plain text when the template data has none, as the Kratos binary's own default
body sends them, so a receiver written for Kratos finds the text it expects."""

DEFAULT_DATA_KEYS = (
    "to",
    "recovery_code",
    "recovery_url",
    "verification_url",
    "verification_code",
    "login_code",
    "registration_code",
    "subject",
    "body",
)


def default_payload(ctx: Mapping[str, Any]) -> str:
    """What :data:`DEFAULT_BODY` produces for ``ctx``, as compact JSON, without Jsonnet.

    The same object (keys sorted, as Jsonnet writes them) at a fraction of the cost: libjsonnet
    spends tens of milliseconds setting up every evaluation, and most tenants send the default.
    """
    data = ctx.get("template_data")
    data = data if isinstance(data, Mapping) else {}
    payload: dict[str, Any] = {key: data.get(key) for key in DEFAULT_DATA_KEYS}
    for key in ("subject", "body"):
        if key not in data:
            payload[key] = ctx.get(key)
    payload["recipient"] = ctx.get("recipient")
    payload["template_type"] = ctx.get("template_type")
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":"), sort_keys=True)


@dataclass(frozen=True, slots=True)
class JsonnetLimits:
    """What one evaluation may use: wall-clock seconds, bytes of memory, bytes of output."""

    timeout: float = 1.0
    memory: int = 256 * 1024 * 1024
    max_output: int = 256 * 1024


@dataclass(frozen=True, slots=True)
class JsonnetBody:
    """A loaded body: its Jsonnet text, the name errors use, and the directory imports may
    come from (None: no imports)."""

    name: str
    source: str
    root: str | None = None


class JsonnetError(TemplateError):
    """A body failed to evaluate. ``limit`` says which limit stopped it (``time``,
    ``memory``, ``output``), or is None for an error of the body itself (a Jsonnet ``error``,
    a missing field...); ``line`` and ``column`` locate it in the body when known."""

    def __init__(
        self,
        message: str,
        *,
        limit: str | None = None,
        line: int | None = None,
        column: int | None = None,
    ) -> None:
        self.limit = limit
        self.line = line
        self.column = column
        super().__init__(message)


class JsonnetUnavailable(TemplateError):
    """The evaluator itself could not run (a child process failed to start)."""


# -- where a body comes from --------------------------------------------------------------


def describe_source(raw: str | None) -> str:
    """How a body source is named in messages: the file, the URL (no query), or its kind."""
    if not raw:
        return "the default body"
    if raw.startswith("file://"):
        return raw.removeprefix("file://")
    if raw.startswith("base64://"):
        return "the base64:// body"
    if raw.startswith("https://"):
        parts = urlsplit(raw)
        return f"https://{parts.netloc.rpartition('@')[2]}{parts.path}"
    return "the inline body"


def _decode(data: bytes, where: str) -> str:
    if len(data) > MAX_SOURCE:
        raise ConfigError(f"{where} is larger than {MAX_SOURCE // 1024} KiB")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise ConfigError(f"{where} is not UTF-8 text") from None


@functools.lru_cache(maxsize=128)
def load_body(raw: str | None, *, allow_private_targets: bool = True) -> JsonnetBody:
    """The body a ``request_config.body`` value names; loaded once per process and cached.

    Raise :class:`ConfigError` when it cannot be read, is not UTF-8, is larger than
    :data:`MAX_SOURCE`, or (``https://``) cannot be fetched; an ``https://`` host that resolves
    to a private address is refused unless ``allow_private_targets``.
    """
    if not raw:
        return JsonnetBody(name="default-body.jsonnet", source=DEFAULT_BODY)
    if raw.startswith("file://"):
        path = Path(unquote(raw.removeprefix("file://"))).expanduser()
        try:
            with open(path, "rb") as fh:
                data = fh.read(MAX_SOURCE + 1)
        except OSError as exc:
            raise ConfigError(f"cannot read {path}: {exc.strerror}") from None
        resolved = path.resolve()
        return JsonnetBody(
            name=str(resolved), source=_decode(data, str(path)), root=str(resolved.parent)
        )
    if raw.startswith("base64://"):
        text = "".join(raw.removeprefix("base64://").split())
        padded = (text + "=" * (-len(text) % 4)).replace("-", "+").replace("_", "/")
        try:
            data = base64.b64decode(padded, validate=True)
        except (binascii.Error, ValueError):
            raise ConfigError("the base64:// body is not valid base64") from None
        return JsonnetBody(name="base64-body.jsonnet", source=_decode(data, "the base64:// body"))
    if raw.startswith("https://"):
        source = _run_blocking(fetch_body(raw, allow_private_targets=allow_private_targets))
        return JsonnetBody(name=describe_source(raw), source=source)
    if raw.startswith("http://"):
        raise ConfigError("a body URL must use https:// (the body is code that Postroom runs)")
    return JsonnetBody(name="inline-body.jsonnet", source=_decode(raw.encode(), "the inline body"))


def _run_blocking(coroutine: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine to completion from synchronous code, even inside a running loop."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coroutine).result()


async def fetch_body(url: str, *, allow_private_targets: bool) -> str:
    """Fetch an ``https://`` body through the guarded client (private addresses refused unless
    ``allow_private_targets``); raise :class:`ConfigError` naming the URL without its query."""
    shown = describe_source(url)
    try:
        data = await fetch_limited(
            url, max_bytes=MAX_SOURCE, allow_private_targets=allow_private_targets
        )
    except DeliveryError as exc:
        raise ConfigError(f"cannot fetch the body from {shown}: {exc}") from None
    return _decode(data, shown)


# -- Jsonnet's error messages ------------------------------------------------------------

_LOCATION = re.compile(r"^\s*(?P<name>.+?):\(?(?P<line>\d+):(?P<column>\d+)")


def tidy_error(text: str, name: str, *, line_offset: int = 0) -> tuple[str, int | None, int | None]:
    """Jsonnet's error text as one line, with the line and column in the body when known.

    ``STATIC ERROR: body:3:5: unexpected "}"`` becomes ``('unexpected "}"', 3, 5)``;
    a runtime error takes its location from the innermost stack frame inside the body.
    ``line_offset`` lines are subtracted (the body was evaluated inside a wrapper); locations
    that fall outside the body are ignored.
    """
    first, *frames = text.strip().splitlines()
    if first.startswith("STATIC ERROR: "):
        rest = first.removeprefix("STATIC ERROR: ")
        match = _LOCATION.match(rest)
        if match:
            message = rest[match.end() :].lstrip(")").lstrip("-0123456789:() ").strip()
            return message or rest, int(match["line"]), int(match["column"])
        return rest, None, None
    message = first.removeprefix("RUNTIME ERROR: ").strip()
    for frame in frames:
        match = _LOCATION.match(frame)
        if match and match["name"].strip() == name and int(match["line"]) > line_offset:
            return message, int(match["line"]) - line_offset, int(match["column"])
    return message, None, None


def _where(line: int | None, column: int | None) -> str:
    if line is None:
        return ""
    return f" at line {line}" + (f", column {column}" if column is not None else "")


# -- the check at load -------------------------------------------------------------------


def _child_command(limits: JsonnetLimits) -> list[str]:
    return [sys.executable, "-I", str(CHILD_SCRIPT), str(limits.memory), str(limits.max_output)]


@dataclass(frozen=True, slots=True)
class BodyCheck:
    """What :func:`check_body` learnt: the body's output for the sample ``ctx`` (JSON text),
    or the error that sample evaluation raised (bodies may depend on data a sample lacks)."""

    sample_output: str | None
    sample_error: str | None


def check_body(
    body: JsonnetBody,
    *,
    sample_ctx: Mapping[str, Any] | None = None,
    limits: JsonnetLimits | None = None,
) -> BodyCheck:
    """Compile ``body`` and make sure it is a function of one argument; with ``sample_ctx``,
    also evaluate it once. Blocking, for configuration loading; cached per body and sample.

    Raise :class:`ConfigError` for a syntax error (with its line and column), a body that is
    not a function of one argument, or an evaluator that cannot run.
    """
    sample = json.dumps(sample_ctx, sort_keys=True) if sample_ctx is not None else None
    return _check_cached(body, sample, limits or JsonnetLimits())


@functools.lru_cache(maxsize=256)
def _check_cached(body: JsonnetBody, sample: str | None, limits: JsonnetLimits) -> BodyCheck:
    common: dict[str, Any] = {"name": body.name, "source": body.source, "root": body.root}
    common["alarm"] = limits.timeout
    requests = [common | {"check": True}]
    if sample is not None:
        requests.append(common | {"ctxs": f"[{sample}]"})
    try:
        done = subprocess.run(
            _child_command(limits),
            input="".join(json.dumps(r) + "\n" for r in requests),
            capture_output=True,
            text=True,
            timeout=START_TIMEOUT + limits.timeout * len(requests),
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise ConfigError(
            f"compiling the Jsonnet body took longer than {limits.timeout:g}s per evaluation"
        ) from None
    except OSError as exc:
        raise ConfigError(f"cannot start the Jsonnet evaluator: {exc.strerror}") from None
    lines = done.stdout.splitlines()
    if not lines or json.loads(lines[0]) != {"ready": True}:
        detail = done.stderr.strip().splitlines()[-1:] or [f"exit status {done.returncode}"]
        raise ConfigError(f"cannot start the Jsonnet evaluator: {detail[0]}")
    answers = [json.loads(line) for line in lines[1:]]
    stopped = (
        f"took longer than {limits.timeout:g}s"
        if done.returncode == -signal.SIGALRM
        else f"used more than {limits.memory // (1024 * 1024)} MiB of memory"
    )
    if not answers:
        raise ConfigError(f"compiling the Jsonnet body {stopped} and was stopped")
    compiled = answers[0]
    if "error" in compiled:
        message, line, column = tidy_error(compiled["error"], body.name)
        kind = "syntax error" if compiled["error"].startswith("STATIC") else "error"
        raise ConfigError(f"Jsonnet {kind}{_where(line, column)}: {message}")
    info = compiled["ok"]
    if info["type"] != "function" or info["params"] != 1:
        got = (
            f"a function of {info['params']} arguments"
            if info["type"] == "function"
            else f"a value of type {info['type']}"
        )
        raise ConfigError(
            f"the body must be a Jsonnet function of one argument, ctx "
            f"(function(ctx) {{...}}), but it is {got}"
        )
    if sample is None:
        return BodyCheck(sample_output=None, sample_error=None)
    if len(answers) < 2:
        return BodyCheck(sample_output=None, sample_error=f"the body {stopped}")
    if "error" in answers[1]:
        message, line, column = tidy_error(answers[1]["error"], body.name, line_offset=1)
        return BodyCheck(sample_output=None, sample_error=f"{message}{_where(line, column)}")
    [result] = answers[1]["ok"]
    if "error" in result:
        return BodyCheck(sample_output=None, sample_error=str(result["error"]))
    return BodyCheck(sample_output=result["ok"], sample_error=None)


# -- form encoding -------------------------------------------------------------------------


def form_fields(output: str) -> list[tuple[str, str]]:
    """The fields of a form-encoded request from a body's JSON output.

    The output must be a flat object: strings, numbers and booleans become field values
    (``true``/``false`` for booleans) and ``null`` leaves the field out. Raise ``ValueError``
    naming the first key whose value is an object or an array.
    """
    value = json.loads(output)
    if not isinstance(value, dict):
        raise ValueError(
            f"a form-encoded body must produce a flat object of strings, not a {_json_type(value)}"
        )
    fields: list[tuple[str, str]] = []
    for key, item in value.items():
        if item is None:
            continue
        if isinstance(item, bool):
            fields.append((key, "true" if item else "false"))
        elif isinstance(item, (str, int, float)):
            fields.append((key, str(item)))
        else:
            raise ValueError(
                f"a form-encoded body must produce a flat object of strings, but {key!r} "
                f"is an {_json_type(item)}"
            )
    return fields


def _json_type(value: Any) -> str:
    if isinstance(value, dict):
        return "object"
    if isinstance(value, list):
        return "array"
    if isinstance(value, str):
        return "string"
    if value is None:
        return "null"
    return "boolean" if isinstance(value, bool) else "number"


# -- the pool the worker uses --------------------------------------------------------------


class _ChildDied(Exception):
    """The child closed its output: it was killed, or died of the memory cap."""


class _Child:
    """One evaluator process and its pipes."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process

    @classmethod
    async def start(cls, limits: JsonnetLimits) -> _Child:
        try:
            process = await asyncio.create_subprocess_exec(
                *_child_command(limits),
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.DEVNULL,
                limit=_READ_LIMIT,
            )
        except OSError as exc:
            raise JsonnetUnavailable(f"cannot start the Jsonnet evaluator: {exc}") from exc
        child = cls(process)
        try:
            assert process.stdout is not None
            line = await asyncio.wait_for(process.stdout.readline(), START_TIMEOUT)
        except (TimeoutError, ValueError) as exc:
            child.kill()
            raise JsonnetUnavailable("the Jsonnet evaluator did not start") from exc
        except BaseException:
            child.kill()
            raise
        if line.strip() != b'{"ready": true}':
            child.kill()
            raise JsonnetUnavailable("the Jsonnet evaluator did not start")
        return child

    @property
    def alive(self) -> bool:
        return self.process.returncode is None

    async def call(self, request: Mapping[str, Any]) -> dict[str, Any]:
        stdin, stdout = self.process.stdin, self.process.stdout
        assert stdin is not None and stdout is not None
        try:
            stdin.write(json.dumps(request).encode() + b"\n")
            await stdin.drain()
            line = await stdout.readline()
        except (OSError, ValueError) as exc:  # broken pipe; an over-long line
            raise _ChildDied from exc
        if not line:
            raise _ChildDied
        answer: dict[str, Any] = json.loads(line)
        return answer

    def kill(self) -> None:
        if self.process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.process.kill()
        if self.process.stdin is not None:
            self.process.stdin.close()

    async def wait(self) -> None:
        with contextlib.suppress(Exception):
            await self.process.wait()


@dataclass(slots=True)
class _Pending:
    body: JsonnetBody
    ctx: str  # the message's ctx as JSON text, taken when it was queued
    future: asyncio.Future[str]
    since: float  # loop time it started waiting


class JsonnetPool:
    """Evaluates bodies in up to ``size`` child processes, started on demand and reused.

    Evaluations that wait while the children are busy go to a child together, in one Jsonnet
    evaluation (up to ``max_batch``): libjsonnet pays tens of milliseconds of set-up per
    evaluation, far more than a body costs. So a batch starts ``linger`` seconds after its first
    evaluation arrived (at once when ``max_batch`` are waiting), and while one batch makes
    normal progress the next evaluations wait and gather; another child takes them only when
    every running batch has taken longer than ``spill_after`` seconds (a runaway body, a batch
    being split).

    When a batch fails (a Jsonnet error, a limit), it is split in halves until the failing
    message is alone, so one bad message never fails another. A child that runs out of time is
    killed and a fresh one takes its place, so a runaway body costs its own message, never the
    worker.
    """

    def __init__(
        self,
        *,
        size: int = 2,
        limits: JsonnetLimits | None = None,
        max_batch: int = 32,
        spill_after: float = 0.25,
        linger: float = 0.005,
    ) -> None:
        self.size = max(1, size)
        self.limits = limits or JsonnetLimits()
        self.max_batch = max(1, max_batch)
        self.spill_after = spill_after
        self.linger = linger
        self._pending: deque[_Pending] = deque()
        self._idle: list[_Child] = []
        self._dead: list[_Child] = []
        self._started: dict[asyncio.Task[None], float] = {}
        self._recheck: asyncio.TimerHandle | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._closed = False

    async def evaluate(self, body: JsonnetBody, ctx: Mapping[str, Any]) -> str:
        """The body's output for ``ctx``, as compact JSON text.

        Raise :class:`JsonnetError` when the body fails or passes a limit, and
        :class:`JsonnetUnavailable` when no evaluator could be started.
        """
        if self._closed:
            raise RuntimeError("the Jsonnet pool is closed")
        future: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        ctx_text = json.dumps(ctx, default=str)
        self._pending.append(_Pending(body, ctx_text, future, asyncio.get_running_loop().time()))
        self._dispatch()
        return await future

    def _dispatch(self) -> None:
        loop = asyncio.get_running_loop()
        while len(self._started) < self.size and self._pending and not self._closed:
            now = loop.time()
            fresh = [t for t in self._started.values() if now - t < self.spill_after]
            if fresh:  # a batch is on its way: let the waiting ones gather behind it
                self._wake_at(min(fresh) + self.spill_after)
                return
            oldest = self._pending[0].since
            if len(self._pending) < self.max_batch and now - oldest < self.linger:
                # Senders come back from their requests a moment apart: wait for them.
                self._wake_at(oldest + self.linger)
                return
            batch = self._take_batch()
            if not batch:
                return
            task = asyncio.create_task(self._run(batch))
            self._started[task] = now
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    def _wake_at(self, when: float) -> None:
        if self._recheck is not None:
            if self._recheck.when() <= when:
                return
            self._recheck.cancel()
        self._recheck = asyncio.get_running_loop().call_at(when, self._rechecked)

    def _rechecked(self) -> None:
        self._recheck = None
        self._dispatch()

    def _take_batch(self) -> list[_Pending]:
        """The oldest waiting evaluations that share the first one's body."""
        batch: list[_Pending] = []
        others: list[_Pending] = []
        while self._pending and len(batch) < self.max_batch:
            item = self._pending.popleft()
            if item.future.done():  # its caller gave up
                continue
            if not batch or item.body == batch[0].body:
                batch.append(item)
            else:
                others.append(item)
        self._pending.extendleft(reversed(others))
        return batch

    async def _run(self, batch: list[_Pending]) -> None:
        child: _Child | None = self._idle.pop() if self._idle else None
        try:
            child = await self._evaluate(child, batch)
        except JsonnetUnavailable as exc:
            self._fail(batch, exc)
        except Exception as exc:  # a bug or a garbled answer: the messages are worth a retry
            self._fail(batch, JsonnetUnavailable(f"the Jsonnet evaluator failed: {exc!r}"))
        finally:
            self._fail(batch, JsonnetUnavailable("the Jsonnet pool was closed"))
            if child is not None and child.alive and not self._closed:
                self._idle.append(child)
            elif child is not None:
                self._retire(child)
            current = asyncio.current_task()
            if current is not None:
                self._started.pop(current, None)
            self._dispatch()

    async def _evaluate(self, child: _Child | None, items: list[_Pending]) -> _Child | None:
        """Evaluate ``items`` on ``child`` (started when None); settle every item's future and
        return the child that is still usable, if any."""
        items = [item for item in items if not item.future.done()]
        if not items:
            return child
        if child is None:
            child = await _Child.start(self.limits)
        body = items[0].body
        request = {
            "name": body.name,
            "source": body.source,
            "root": body.root,
            "ctxs": "[" + ",".join(item.ctx for item in items) + "]",
        }
        failure: JsonnetError
        try:
            answer = await asyncio.wait_for(child.call(request), self.limits.timeout)
        except TimeoutError:
            self._retire(child)
            child = None
            failure = JsonnetError(
                f"the body took longer than {self.limits.timeout:g}s to evaluate "
                "(an endless loop or far too much work) and was stopped",
                limit="time",
            )
        except _ChildDied:
            self._retire(child)
            child = None
            failure = JsonnetError(
                f"the body used more than {self.limits.memory // (1024 * 1024)} MiB of memory "
                "and was stopped",
                limit="memory",
            )
        except BaseException:
            self._retire(child)
            raise
        else:
            if "ok" in answer:
                for item, result in zip(items, answer["ok"], strict=True):
                    if "ok" in result:
                        item.future.set_result(result["ok"])
                    else:
                        item.future.set_exception(
                            JsonnetError(
                                f"the body produced more than "
                                f"{self.limits.max_output // 1024} KiB of output and was refused",
                                limit="output",
                            )
                        )
                return child
            failure = self._failure(answer, body)
        if len(items) == 1:
            items[0].future.set_exception(failure)
            return child
        half = len(items) // 2
        child = await self._evaluate(child, items[:half])
        return await self._evaluate(child, items[half:])

    @staticmethod
    def _failure(answer: Mapping[str, Any], body: JsonnetBody) -> JsonnetError:
        if answer.get("limit") == "memory":
            return JsonnetError(str(answer["error"]), limit="memory")
        message, line, column = tidy_error(str(answer["error"]), body.name, line_offset=1)
        return JsonnetError(f"{message}{_where(line, column)}", line=line, column=column)

    @staticmethod
    def _fail(items: list[_Pending], error: Exception) -> None:
        for item in items:
            if not item.future.done():
                item.future.set_exception(error)

    def _retire(self, child: _Child) -> None:
        child.kill()
        self._dead.append(child)

    async def close(self) -> None:
        """Stop every child; the pool may not be used afterwards."""
        self._closed = True
        if self._recheck is not None:
            self._recheck.cancel()
            self._recheck = None
        for item in self._pending:
            if not item.future.done():
                item.future.set_exception(RuntimeError("the Jsonnet pool is closed"))
        self._pending.clear()
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        children, self._idle = self._idle, []
        for child in children:
            self._retire(child)
        dead, self._dead = self._dead, []
        await asyncio.gather(*(child.wait() for child in dead))


def default_pool_size() -> int:
    """Children per pool: Jsonnet is CPU-bound, so as many as the machine has cores (two at
    least, so that a runaway body never stalls every other message; four at most)."""
    return max(2, min(4, os.cpu_count() or 1))
