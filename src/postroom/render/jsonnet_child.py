"""The child process that evaluates Jsonnet for :mod:`postroom.render.jsonnet`.

Run as a script (``python -I jsonnet_child.py MEMORY_BYTES MAX_OUTPUT_BYTES``), never imported
by Postroom itself: it imports nothing from Postroom so that it starts fast. It caps its own
address space (``RLIMIT_AS``) before loading the Jsonnet library, says ``{"ready": true}``, then
answers one JSON request per line on stdin with one JSON answer per line on stdout:

- request ``{"name", "source", "root", "ctx", "check", "alarm"}``: evaluate ``source`` (named
  ``name`` in error messages) with the top-level argument ``ctx`` (JSON text); with ``check``
  true, only compile it and report its type and, for a function, its number of parameters.
  With ``alarm`` (seconds), the process ends itself when the evaluation takes longer.
- answer ``{"ok": "<JSON text>"}`` or ``{"ok": {"type": ..., "params": ...}}`` (check), or
  ``{"error": "<Jsonnet's message>", "limit": null | "output"}``.

Imports are served only from ``root`` (the template's own directory, symlinks resolved) and
refused entirely when ``root`` is null. The parent kills this process when it runs too long;
when the Jsonnet library runs out of the capped memory it aborts the process, which the parent
reports as the memory limit.
"""

from __future__ import annotations

import json
import os
import resource
import signal
import sys
from typing import Any

MAX_IMPORT = 1024 * 1024  # bytes of one imported file
_CHECK_NAME = "<check>"


def _importer(root: str | None, body_name: str, body_source: str, check: bool) -> Any:
    def load(directory: str, relative: str) -> tuple[str, bytes]:
        if check and relative == body_name:
            return body_name, body_source.encode()
        if root is None:
            raise RuntimeError(
                "imports are allowed only in a file:// body, from the body's own directory"
            )
        wanted = os.path.join(directory or root, relative)
        path = os.path.realpath(wanted)
        if path != root and not path.startswith(root + os.sep):
            raise RuntimeError(f"{relative} is outside the body's directory {root}")
        try:
            with open(path, "rb") as fh:
                content = fh.read(MAX_IMPORT + 1)
        except OSError as exc:
            raise RuntimeError(f"cannot read {relative}: {exc.strerror}") from None
        if len(content) > MAX_IMPORT:
            raise RuntimeError(f"{relative} is larger than {MAX_IMPORT // 1024} KiB")
        return path, content

    return load


def _answer(jsonnet: Any, request: dict[str, Any], max_output: int) -> dict[str, Any]:
    name, source, root = request["name"], request["source"], request.get("root")
    check = bool(request.get("check"))
    importer = _importer(root, name, source, check)
    if request.get("alarm"):
        # SIGALRM's default action ends the process: a bound for callers that cannot kill us.
        signal.setitimer(signal.ITIMER_REAL, float(request["alarm"]))
    try:
        if check:
            wrapper = (
                f"local body = import {json.dumps(name)}; "
                '{type: std.type(body), params: if std.type(body) == "function" '
                "then std.length(body) else null}"
            )
            out = jsonnet.evaluate_snippet(_CHECK_NAME, wrapper, import_callback=importer)
            return {"ok": json.loads(out)}
        out = jsonnet.evaluate_snippet(
            name, source, tla_codes={"ctx": request["ctx"]}, import_callback=importer
        )
    except RuntimeError as exc:
        return {"error": str(exc), "limit": None}
    except MemoryError:
        return {"error": "the body used more memory than allowed", "limit": "memory"}
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
    if len(out) > max_output or len(out.encode()) > max_output:
        return {"error": f"the body produced more than {max_output} bytes", "limit": "output"}
    return {"ok": out}


def main() -> None:
    """Serve evaluation requests until stdin closes."""
    memory, max_output = int(sys.argv[1]), int(sys.argv[2])
    if memory > 0:
        resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
    import _jsonnet  # after the cap, so the library's allocations count against it

    stdout = sys.stdout
    stdout.write('{"ready": true}\n')
    stdout.flush()
    for line in sys.stdin:
        answer = _answer(_jsonnet, json.loads(line), max_output)
        stdout.write(json.dumps(answer) + "\n")
        stdout.flush()


if __name__ == "__main__":
    main()
