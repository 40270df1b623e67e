"""A `postroom worker` started by a test ends when the test process is killed, instead of
polling on and loading the next test run on the host."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from procs import clean_env

# Stands in for a test run: starts a worker as the tests do, says its pid, and waits to be killed.
TEST_RUN = textwrap.dedent("""\
    import subprocess, sys, time
    sys.path.insert(0, sys.argv[1])
    from procs import POSTROOM, clean_env
    worker = subprocess.Popen([*POSTROOM, "worker"], env=clean_env(DSN=sys.argv[2]))
    print(worker.pid, flush=True)
    time.sleep(600)
    """)


def ended(pid: int) -> bool:
    """True once ``pid`` has exited (a zombie nobody reaped counts as exited)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return True
    return state in ("Z", "X")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux's")
def test_a_worker_ends_when_the_test_run_that_started_it_is_killed(tmp_path: Path) -> None:
    db = tmp_path / "postroom.db"
    with subprocess.Popen(
        [sys.executable, "-c", TEST_RUN, str(Path(__file__).parent), f"sqlite:///{db}"],
        env=clean_env(),
        stdout=subprocess.PIPE,
        text=True,
    ) as run:
        assert run.stdout is not None
        worker = int(run.stdout.readline())
        kill_and_watch(run, worker, db)


def kill_and_watch(run: subprocess.Popen[str], worker: int, db: Path) -> None:
    try:
        deadline = time.monotonic() + 30
        while not db.exists():  # the worker has migrated its store: it is running
            assert not ended(worker), "the worker did not start"
            assert time.monotonic() < deadline, "the worker did not create its store in 30 s"
            time.sleep(0.05)
        run.send_signal(signal.SIGKILL)  # as a CI timeout ends a test run
        run.wait(10)
        deadline = time.monotonic() + 30
        while not ended(worker):
            assert time.monotonic() < deadline, "the worker outlived its test run by 30 s"
            time.sleep(0.05)
    finally:
        if not ended(worker):
            os.kill(worker, signal.SIGKILL)
