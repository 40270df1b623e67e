"""Intake: validate and enqueue. The API and CLI adapters stay thin."""

from postroom.intake.enqueue import SendRequest, enqueue, enqueue_prepared, prepare
from postroom.intake.priority import listener_message, parse_priority

__all__ = [
    "SendRequest",
    "enqueue",
    "enqueue_prepared",
    "listener_message",
    "parse_priority",
    "prepare",
]
