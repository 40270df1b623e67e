"""How busy the host's processors are, and a load of the same share that is not Postroom's.

A bench that times a code beside bulk mail being sent on the same host measures two things
at once: what the queue does to the code, and what the host's load does to every process
that wakes up for it (the database, the worker, the SMTP server). An empty queue timed
while this module keeps the processors as busy separates the two.
"""

from __future__ import annotations

import multiprocessing
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

STAT = Path("/proc/stat")
PERIOD = 0.01  # seconds per busy-then-idle cycle of a burner


def cpu_times() -> tuple[int, int] | None:
    """(busy, total) clock ticks of every processor since boot; None where /proc/stat is
    missing (not Linux)."""
    try:
        fields = [int(x) for x in STAT.read_text().split("\n", 1)[0].split()[1:]]
    except OSError:
        return None
    idle = fields[3] + fields[4]  # idle and iowait
    return sum(fields) - idle, sum(fields)


def busy_share(start: tuple[int, int] | None, end: tuple[int, int] | None) -> float | None:
    """The share (0-1) of the processors' time that was busy between two :func:`cpu_times`."""
    if start is None or end is None or end[1] <= start[1]:
        return None
    return (end[0] - start[0]) / (end[1] - start[1])


def _burn(share: float) -> None:
    busy = PERIOD * share
    while True:
        until = time.perf_counter() + busy
        while time.perf_counter() < until:
            pass
        time.sleep(PERIOD - busy)


@contextmanager
def foreign_load(share: float) -> Iterator[None]:
    """Keep every processor busy ``share`` (0-1) of the time with processes that have nothing
    to do with Postroom, for the duration of the block."""
    share = min(max(share, 0.0), 0.95)
    context = multiprocessing.get_context("spawn")
    burners = [
        context.Process(target=_burn, args=(share,), daemon=True)
        for _ in range(os.cpu_count() or 1)
    ]
    for burner in burners:
        burner.start()
    try:
        yield
    finally:
        for burner in burners:
            burner.terminate()
        for burner in burners:
            burner.join(5)
