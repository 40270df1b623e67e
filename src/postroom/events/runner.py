"""The background work after the hand-off, in every process that serves or delivers: webhook
deliveries sent, and events of messages unknown when they came matched once the send is
recorded."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from postroom.events.intake import EventIntake
from postroom.events.webhooks import WebhookSender

log = logging.getLogger("postroom.events")

MATCH_EVERY = 2.0  # seconds between looks for events that can be matched now


async def after_handoff(intake: EventIntake, sender: WebhookSender, stop: asyncio.Event) -> None:
    """Send webhooks and match pending events until ``stop`` is set."""
    sending = asyncio.create_task(sender.run(stop))
    try:
        while not stop.is_set():
            try:
                if await intake.match_pending():
                    sender.nudge()
            except Exception:
                log.exception("matching pending delivery events failed; retrying")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), MATCH_EVERY)
    finally:
        await sending
