"""Run ``python -m MODULE ARGS`` so that it ends with the test process that started it.

Usage: python with_parent.py PARENT_PID MODULE [ARGS...]

A test run that is killed (a CI timeout, a developer's Ctrl-C twice) does not stop the
``postroom worker`` and ``postroom serve`` processes its tests started: they keep polling
and loaded the next run on the same host. On Linux the kernel sends this process SIGTERM
when its parent ends (prctl PR_SET_PDEATHSIG, set here in the child, where no thread of the
parent can be caught half-way; it is kept across the module's imports because no exec
follows), and a process whose parent ended before that was set does not start at all.
"""

from __future__ import annotations

import ctypes
import os
import runpy
import signal
import sys

PR_SET_PDEATHSIG = 1


def main() -> None:
    parent, module, *args = sys.argv[1:]
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG) failed")
    if os.getppid() != int(parent):
        sys.exit(f"the test process {parent} that started {module} has ended")
    sys.argv = [sys.argv[0], *args]
    sys.path[0] = os.getcwd()  # as `python -m` has it, not this file's folder
    runpy.run_module(module, run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main()
