"""Checking a body once, while the configuration loads: compile it in a short-lived child
(within the same limits as the worker's), make sure it is a function of one argument and,
with a sample ``ctx``, evaluate it once."""

from __future__ import annotations

import functools
import json
import signal
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from postroom.errors import ConfigError
from postroom.render.jsonnet.body import JsonnetBody, JsonnetLimits
from postroom.render.jsonnet.process import START_TIMEOUT, child_command
from postroom.render.jsonnet.tidy import tidy_error, where


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
            child_command(limits),
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
        raise ConfigError(f"Jsonnet {kind}{where(line, column)}: {message}")
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
        return BodyCheck(sample_output=None, sample_error=f"{message}{where(line, column)}")
    [result] = answers[1]["ok"]
    if "error" in result:
        return BodyCheck(sample_output=None, sample_error=str(result["error"]))
    return BodyCheck(sample_output=result["ok"], sample_error=None)
