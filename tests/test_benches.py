"""Every benchmark in bench/ still runs and prints its figures, at a size that takes seconds.

Nothing else runs them: ``bench/priority.py --plan`` had been broken for weeks by a change of
``claim_lanes``' arguments before anyone noticed. The figures themselves are not judged here
(they are reported in the notes, measured on a quiet host); a bench that crashes, or that
prints no figure, fails."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import PG_ADMIN_DSN
from procs import clean_env

BENCH = Path(__file__).resolve().parent.parent / "bench"

# A figure as the benches print them: "4.3 ms", "812 msg/s", "1.26x", "17.2 us/msg", ...
FIGURE = re.compile(r"\d[\d,]*(\.\d+)? ?(ms|µs|us/msg|msg/s|x)\b")

RUNS = {
    "backlog": ["--deep", "3000", "--shallow", "300", "--sample", "100"],
    "dashboard": ["--messages", "3000", "--runs", "1"],
    "delivery_events": ["--requests", "60", "--clients", "2", "--suppressed", "500"],
    "dkim_signing": ["--messages", "30"],
    "http_delivery": ["--messages", "60", "--concurrency", "2"],
    "intake": ["--requests", "60", "--clients", "2", "--rounds", "1"],
    "latency": ["--messages", "5", "--interval", "0.05"],
    "listener": ["--messages", "40", "--clients", "2", "--rounds", "1"],
    "priority": ["--urgent", "3", "--spacing", "0.05", "--sizes", "0,300"],
    "priority --plan": ["--plan", "--plan-size", "3000"],
    "render": ["--messages", "20", "--rounds", "1"],
    "throughput": ["--messages", "300"],
    "compare": ["--baseline", "HEAD", "--rounds", "1", "--messages", "100"],
}


@pytest.mark.parametrize("name", sorted(RUNS))
def test_the_bench_runs_and_prints_its_figures(name: str) -> None:
    script = BENCH / f"{name.split()[0]}.py"
    done = subprocess.run(
        [sys.executable, str(script), *RUNS[name]],
        cwd=BENCH.parent,
        env=clean_env(POSTROOM_TEST_PG_DSN=PG_ADMIN_DSN),
        capture_output=True,
        text=True,
        timeout=100,
        check=False,
    )
    assert done.returncode == 0, f"{name} failed:\n{done.stdout[-2000:]}\n{done.stderr[-3000:]}"
    assert FIGURE.search(done.stdout), f"{name} printed no figure:\n{done.stdout[-2000:]}"
