"""Compare this checkout's ``worker --drain`` on SQLite with an earlier revision's, in turn.

On a shared host the rate of the same code sways by 10-30% from one run to the next, so three
runs of bench/throughput.py per checkout cannot settle a 5% difference. This runs many short
rounds instead, the two checkouts in turn (ABBA order, so that a drift of the host weighs on
both alike), each round a fresh SQLite database filled through the checkout's own intake with
bench/throughput.py's templates (the same bytes for both) and drained by its own
``postroom worker --drain`` into one shared sink. Prints each run's rate and CPU time per
message, then the geometric mean and the median of the per-round ratios (this checkout over
the revision).

Usage: python bench/compare.py --baseline REV [--this REV] [--rounds 10] [--messages 5000]
(``--this`` measures another revision in place of this checkout; this checkout's bench code
drives both.)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent


def one(port: int, count: int) -> None:
    """Fill and drain once with the ``postroom`` on ``PYTHONPATH``; print the figures as JSON."""
    from throughput import drain, fill, write_config

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        config, settings = write_config(folder, f"sqlite:///{folder / 'compare.db'}", port)
        asyncio.run(fill(settings, count))
        seconds, cpu = drain(config, 1)
    print(json.dumps({"rate": count / seconds, "cpu_ms": cpu * 1000 / count}))


def run_in(tree: Path, port: int, count: int) -> dict[str, float]:
    """One fill and drain by the checkout at ``tree``."""
    env = {**os.environ, "PYTHONPATH": f"{tree / 'src'}{os.pathsep}{HERE}"}
    args = [sys.executable, str(HERE / "compare.py"), "--one", str(port), "--messages", str(count)]
    out = subprocess.run(args, env=env, check=True, capture_output=True, text=True).stdout
    figures: dict[str, float] = json.loads(out.strip().splitlines()[-1])
    return figures


def summary(ratios: list[float]) -> str:
    """The geometric mean and the median of per-round ratios."""
    mean, median = statistics.geometric_mean(ratios), statistics.median(ratios)
    return f"geometric mean {mean:.3f} (median {median:.3f})"


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--baseline", help="the revision to compare with (e.g. a1c3029)")
    parser.add_argument("--this", help="a revision to measure instead of this checkout")
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--messages", type=int, default=5000)
    parser.add_argument("--one", type=int, metavar="PORT", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        one(args.one, args.messages)
        return
    if not args.baseline:
        parser.error("name the revision to compare with: --baseline REV")
    from sinks import sink

    with tempfile.TemporaryDirectory() as tmp, sink() as (port, what):
        base = Path(tmp) / "baseline"
        this = Path(tmp) / "this" if args.this else REPO
        checkouts = [(base, args.baseline)] + ([(this, args.this)] if args.this else [])
        try:
            for folder, revision in checkouts:
                added = subprocess.run(
                    ["git", "-C", str(REPO), "worktree", "add", "--detach", str(folder), revision],
                    capture_output=True,
                    text=True,
                )
                if added.returncode:
                    raise SystemExit(f"cannot check out {revision!r}: {added.stderr.strip()}")
            print(f"sink: {what}; {args.rounds} rounds of {args.messages} messages, SQLite")
            ratios, cpu_ratios = [], []
            for n in range(args.rounds):
                order = [("baseline", base), ("this", this)]
                if n % 2:
                    order.reverse()
                got = {name: run_in(tree, port, args.messages) for name, tree in order}
                for name, _ in order:
                    print(
                        f"round {n + 1:>2} {name:<8} {got[name]['rate']:7.0f} msg/s  "
                        f"{got[name]['cpu_ms']:.3f} ms CPU/msg"
                    )
                ratios.append(got["this"]["rate"] / got["baseline"]["rate"])
                cpu_ratios.append(got["this"]["cpu_ms"] / got["baseline"]["cpu_ms"])
            print(f"{args.this or 'this'} / {args.baseline}: rate {summary(ratios)}")
            print(f"{args.this or 'this'} / {args.baseline}: CPU per message {summary(cpu_ratios)}")
        finally:
            for folder, _ in checkouts:
                subprocess.run(
                    ["git", "-C", str(REPO), "worktree", "remove", "--force", str(folder)],
                    check=False,
                    capture_output=True,
                )


if __name__ == "__main__":
    main()
