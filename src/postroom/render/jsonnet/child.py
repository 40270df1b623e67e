"""The child process that evaluates Jsonnet for :mod:`postroom.render.jsonnet`.

Run as a script (``python -I child.py MEMORY_BYTES MAX_OUTPUT_BYTES``, the command of
:func:`postroom.render.jsonnet.process.child_command`), never imported
by Postroom itself: it imports nothing from Postroom so that it starts fast. It caps its own
address space (``RLIMIT_AS``) before loading the Jsonnet library, says ``{"ready": true}``, then
answers one JSON request per line on stdin with one JSON answer per line on stdout:

- request ``{"name", "source", "root", "ctxs", "check", "alarm"}``: call the body ``source``
  (named ``name`` in error messages) once per element of ``ctxs`` (JSON text of an array), all
  in one evaluation; with ``check`` true, only compile it and report its type and, for a
  function, its number of parameters. With ``alarm`` (seconds), the process ends itself when
  the evaluation takes longer.
- answer ``{"ok": [{"ok": "<compact JSON>"} | {"error": ..., "limit": "output"}, ...]}`` (one
  per ctx), ``{"ok": {"type": ..., "params": ...}}`` (check), or, when the evaluation as a
  whole failed, ``{"error": "<Jsonnet's message>", "limit": null | "memory"}``.

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


def _importer(root: str | None, body_name: str, body_source: str) -> Any:
    def load(directory: str, relative: str) -> tuple[str, bytes]:
        if not directory and relative == body_name:  # the wrapper importing the body
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


def _evaluate(jsonnet: Any, request: dict[str, Any], max_output: int) -> Any:
    name = request["name"]
    importer = _importer(request.get("root"), name, request["source"])
    body = f"local body = import {json.dumps(name)};"
    if request.get("check"):
        wrapper = (
            f'{body} {{type: std.type(body), params: if std.type(body) == "function" '
            "then std.length(body) else null}"
        )
        return json.loads(jsonnet.evaluate_snippet("<check>", wrapper, import_callback=importer))
    # Many messages in one evaluation: libjsonnet sets up its standard library for every
    # evaluation (and every imported file), which costs far more than rendering one body. The
    # body is inlined from its second line on, under its own name, so that its imports resolve
    # from its directory; the parent subtracts the one line of the wrapper from error lines.
    wrapper = f"function(ctxs) local body = (\n{request['source']}\n); [body(ctx) for ctx in ctxs]"
    out = jsonnet.evaluate_snippet(
        name, wrapper, tla_codes={"ctxs": request["ctxs"]}, import_callback=importer
    )
    results = []
    for value in json.loads(out):
        text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
        if len(text) > max_output or len(text.encode()) > max_output:
            message = f"the body produced more than {max_output} bytes"
            results.append({"error": message, "limit": "output"})
        else:
            results.append({"ok": text})
    return results


def _answer(jsonnet: Any, request: dict[str, Any], max_output: int) -> dict[str, Any]:
    if request.get("alarm"):
        # SIGALRM's default action ends the process: a bound for callers that cannot kill us.
        signal.setitimer(signal.ITIMER_REAL, float(request["alarm"]))
    try:
        return {"ok": _evaluate(jsonnet, request, max_output)}
    except RuntimeError as exc:
        return {"error": str(exc), "limit": None}
    except MemoryError:
        return {"error": "the body used more memory than allowed", "limit": "memory"}
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)


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
