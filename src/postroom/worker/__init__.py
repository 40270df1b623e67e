"""The worker: claim -> render -> send -> record; ``retry`` alone decides retry or give up."""

from postroom.worker.worker import Worker, WorkerStats

__all__ = ["Worker", "WorkerStats"]
