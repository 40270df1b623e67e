"""Prometheus metrics: what was enqueued, what each attempt came to, how long messages waited,
and how deep the queue is. One :class:`Metrics` per process, shared by the web app and the
worker; ``GET /metrics`` and ``worker --metrics-port`` expose it."""

from __future__ import annotations

from collections.abc import Mapping

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

__all__ = ["CONTENT_TYPE_LATEST", "Metrics"]

# From a few milliseconds (an idle worker) to hours (retries with backoff).
HANDOFF_BUCKETS = (
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1,
    2.5,
    5,
    10,
    30,
    60,
    300,
    900,
    3600,
    14400,
)


class Metrics:
    """The metric families, in a registry of their own."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.enqueued = Counter(
            "postroom_messages_enqueued",
            "Messages stored by intake.",
            ["tenant"],
            registry=self.registry,
        )
        self.dispatches = Counter(
            "postroom_dispatches",
            "Delivery attempts by outcome; code is the diagnosis code, or 'ok'.",
            ["tenant", "transport", "result", "code"],
            registry=self.registry,
        )
        self.queue = Gauge(
            "postroom_queue_messages",
            "Messages in the store by status.",
            ["status"],
            registry=self.registry,
        )
        self.handoff = Histogram(
            "postroom_enqueue_to_handoff_seconds",
            "Time from enqueue to the provider accepting the message.",
            ["tenant"],
            buckets=HANDOFF_BUCKETS,
            registry=self.registry,
        )

        self.lane_queued = Gauge(
            "postroom_queued_messages_by_priority",
            "Queued messages per priority lane (urgent, normal, bulk).",
            ["priority"],
            registry=self.registry,
        )
        self.lane_oldest_due = Gauge(
            "postroom_oldest_due_seconds",
            "How long the oldest due queued message of each priority lane has been due "
            "(0 when none is due).",
            ["priority"],
            registry=self.registry,
        )

    def set_queue(self, counts: Mapping[str, int]) -> None:
        """Update the queue depth gauge from a count per status."""
        for status, count in counts.items():
            self.queue.labels(status=status).set(count)

    def set_lanes(self, lanes: Mapping[str, tuple[int, float]]) -> None:
        """Update the per-priority gauges from (queued, seconds the oldest has been due)."""
        for priority, (queued, overdue) in lanes.items():
            self.lane_queued.labels(priority=priority).set(queued)
            self.lane_oldest_due.labels(priority=priority).set(overdue)

    def render(self) -> bytes:
        """The Prometheus text format."""
        return generate_latest(self.registry)
