"""Enqueue one message and let a draining worker deliver it, as the worker tests do."""

from __future__ import annotations

from postroom.config import Settings
from postroom.intake import SendRequest, enqueue
from postroom.store import Store
from postroom.worker import Worker


async def deliver_one(store: Store, settings: Settings, to: str = "you@example.org") -> str:
    """Enqueue a test email to ``to``, drain the worker (waiting up to 5 s for retries that
    fall due) and return the message id."""
    [(message, _)] = await enqueue(store, settings, [SendRequest(to=to, template_type="test")])
    await Worker(store, settings).run(drain=True, max_wait=5)
    return message.id
