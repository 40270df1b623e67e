"""Running the real `postroom` command in tests, in a clean environment."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

# `postroom ARGS` for a process that runs beside a test: it ends when this process ends,
# even when this process is killed (with_parent.py says how).
POSTROOM = [sys.executable, str(Path(__file__).with_name("with_parent.py")), str(os.getpid())]
POSTROOM += ["postroom.cli"]


def clean_env(**extra: str) -> dict[str, str]:
    """The caller's environment without anything that would configure Postroom, plus extra."""
    prefixes = ("POSTROOM_", "COURIER_", "SERVE_", "SECRETS_", "LISTENER_")
    env = {k: v for k, v in os.environ.items() if not k.startswith(prefixes) and k != "DSN"}
    env["NO_COLOR"] = "1"
    env.update(extra)
    return env


def postroom(
    cwd: Path, *args: str, env: dict[str, str] | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """Run `postroom ARGS` in ``cwd`` and return what it printed and its exit code."""
    return subprocess.run(
        [*POSTROOM, *args],
        cwd=cwd,
        env={**clean_env(), **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
