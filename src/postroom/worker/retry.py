"""The one place that decides: retry with backoff, or give up.

Transports report, ``diagnosis`` classifies, and this module turns a diagnosis into the
message's next state.
"""

from __future__ import annotations

import random
from datetime import datetime, timedelta

from postroom.clock import utcnow
from postroom.config.durations import format_duration
from postroom.config.settings import CourierSettings
from postroom.diagnosis import diagnose
from postroom.diagnosis.catalogue import gave_up
from postroom.models import Diagnosis, Message, Priority, Status, WaitingFor
from postroom.store.base import Completion, SlotWait


def backoff(attempt: int, courier: CourierSettings, *, rng: random.Random | None = None) -> float:
    """Seconds to wait after the ``attempt``-th failed attempt (1-based): exponential from
    ``retry.initial``, capped at ``retry.max``, with +/-20% jitter."""
    base = min(courier.retry.initial * (2 ** (attempt - 1)), courier.retry.max)
    return float(base * (rng or random).uniform(0.8, 1.2))


MAX_RETRY_AFTER = 86400.0
"""The longest server-requested wait (``Retry-After``) honoured, in seconds: one day."""


def after_failure(
    message: Message,
    diagnosis: Diagnosis,
    courier: CourierSettings,
    *,
    now: datetime,
    retry_after: float | None = None,
) -> Completion:
    """Decide what follows a failed attempt.

    A permanent failure abandons at once; a transient one is retried with backoff until the
    message has had ``max_attempts`` attempts. When the server asked for a pause
    (``retry_after`` seconds, from HTTP ``Retry-After``), the next attempt comes no sooner than
    that (at most :data:`MAX_RETRY_AFTER`), even if the backoff is shorter. A retry never goes
    past the message's TTL: it falls due at the expiry instead, where :func:`expired` abandons
    it.
    """
    attempts = message.send_count + 1
    if not diagnosis.transient:
        return Completion(message_id=message.id, status=Status.ABANDONED, error=diagnosis)
    if attempts >= message.max_attempts:  # the attempts ran out: say so, and what to check
        error = gave_up(diagnosis, attempts=attempts)
        return Completion(message_id=message.id, status=Status.ABANDONED, error=error)
    delay = backoff(attempts, courier)
    if retry_after is not None:
        delay = max(delay, min(retry_after, MAX_RETRY_AFTER))
    return Completion(
        message_id=message.id,
        status=Status.QUEUED,
        error=diagnosis,
        next_attempt_at=_capped(message, now + timedelta(seconds=delay)),
        waiting_for=WaitingFor.BACKOFF,
    )


def _capped(message: Message, due: datetime) -> datetime:
    """No later than the message's expiry: the TTL wins over backoff and rate limits."""
    if message.expires_at is not None and message.expires_at < due:
        return message.expires_at
    return due


def is_expired(message: Message, *, now: datetime) -> bool:
    """True when the message outlived its TTL without being handed off."""
    return message.expires_at is not None and now >= message.expires_at


def expired(message: Message, courier: CourierSettings) -> Completion:
    """Abandon a message that outlived ``courier.message_ttl``; no attempt is made."""
    last = message.last_error
    ttl = courier.bulk_ttl if message.priority is Priority.BULK else courier.message_ttl
    setting = "courier.bulk_ttl" if message.priority is Priority.BULK else "courier.message_ttl"
    cause = (
        f"The message was not handed off within its time to live "
        f"({setting}: {format_duration(ttl)})"
    )
    cause += f"; the last attempt failed with {last.code}." if last else "."
    return Completion(
        message_id=message.id,
        status=Status.ABANDONED,
        error=diagnose("expired", cause=cause, fix=last.fix if last else None),
        attempted=False,
    )


def rate_limited(message: Message, wait: SlotWait) -> Completion:
    """Hold a message back until its tenant's rate limit has room for its lane: it stays
    queued (waiting for ``rate_limit``, or ``priority`` when the room is kept for more urgent
    mail), is not an attempt, and never fails because of a limit; its TTL still applies (the
    TTL wins). Held back for more urgent mail, it comes back at a random point of the
    wait's spread, so that a large bulk send is not claimed all at once at every free slot."""
    due = wait.free_at
    if wait.spread > 0:
        due += timedelta(seconds=random.uniform(0, wait.spread))
    return Completion(
        message_id=message.id,
        status=Status.QUEUED,
        attempted=False,
        next_attempt_at=_capped(message, due),
        waiting_for=wait.waiting_for,
    )


def tenant_unusable(message: Message, broken: str | None, fallback: CourierSettings) -> Completion:
    """What becomes of a message whose tenant cannot send: retried with ``fallback``'s backoff
    (the default tenant's) while its saved settings are ``broken`` (an operator may save them
    again in time; every other tenant carries on), abandoned when the configuration no
    longer declares the tenant at all."""
    if broken is not None:
        diagnosis = diagnose(
            "settings_invalid",
            cause=f"Tenant {message.tenant!r} cannot send: its saved settings cannot be "
            f"used ({broken}).",
        )
        return after_failure(message, diagnosis, fallback, now=utcnow())
    diagnosis = diagnose(
        "unknown",
        cause=f"The message belongs to tenant {message.tenant!r}, "
        "which the configuration no longer declares.",
        fix="Declare the tenant again, or cancel the message.",
    )
    return Completion(message.id, Status.ABANDONED, diagnosis, attempted=False)
