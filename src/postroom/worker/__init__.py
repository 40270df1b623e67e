"""The worker: claim -> render -> send -> record; ``retry`` alone decides retry or give up."""

from postroom.worker.outcomes import WorkerStats
from postroom.worker.worker import Worker

__all__ = ["Worker", "WorkerStats"]
