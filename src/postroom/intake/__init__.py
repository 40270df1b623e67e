"""Intake: validate and enqueue. The API and CLI adapters stay thin."""

from postroom.intake.enqueue import SendRequest, enqueue, enqueue_prepared, prepare

__all__ = ["SendRequest", "enqueue", "enqueue_prepared", "prepare"]
