"""One Jsonnet evaluator process seen from the parent: the command that starts
:mod:`postroom.render.jsonnet.child` within the limits, and the pipes a pool talks to it
through."""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from postroom.render.jsonnet.body import JsonnetLimits, JsonnetUnavailable

CHILD_SCRIPT = Path(__file__).with_name("child.py")
START_TIMEOUT = 10.0  # seconds a child may take to start (a loaded machine, a cold disk)
_READ_LIMIT = 32 * 1024 * 1024  # bytes of one answer line (a batch of JSON-escaped outputs)


def child_command(limits: JsonnetLimits) -> list[str]:
    """The command line of an evaluator process that keeps within ``limits``."""
    return [sys.executable, "-I", str(CHILD_SCRIPT), str(limits.memory), str(limits.max_output)]


class ChildDied(Exception):
    """The child closed its output: it was killed, or died of the memory cap."""


class Child:
    """One evaluator process and its pipes."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process

    @classmethod
    async def start(cls, limits: JsonnetLimits) -> Child:
        """A started child that said it is ready; raise ``JsonnetUnavailable`` otherwise."""
        try:
            process = await asyncio.create_subprocess_exec(
                *child_command(limits),
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
        """True while the process runs."""
        return self.process.returncode is None

    async def call(self, request: Mapping[str, Any]) -> dict[str, Any]:
        """Send one request and return its answer; raise ``ChildDied`` when the child is gone."""
        stdin, stdout = self.process.stdin, self.process.stdout
        assert stdin is not None and stdout is not None
        try:
            stdin.write(json.dumps(request).encode() + b"\n")
            await stdin.drain()
            line = await stdout.readline()
        except (OSError, ValueError) as exc:  # broken pipe; an over-long line
            raise ChildDied from exc
        if not line:
            raise ChildDied
        answer: dict[str, Any] = json.loads(line)
        return answer

    def kill(self) -> None:
        """Kill the process (if it still runs) and close its input."""
        if self.process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.process.kill()
        if self.process.stdin is not None:
            self.process.stdin.close()

    async def wait(self) -> None:
        """Wait until the process has ended (reaped), whatever its exit."""
        with contextlib.suppress(Exception):
            await self.process.wait()
