"""The store reads the dashboard relies on, against every backend: ``activity`` (the
overview's counts per time slice and failure codes) and filtered, keyset-paged lists whose
filters combine (the index each page is read along must not change the answer)."""

from __future__ import annotations

import itertools
from datetime import timedelta

import pytest

from postroom.diagnosis import diagnose
from postroom.models import NewMessage, Status, TemplateType
from postroom.store import Completion, MessageFilter, Store, utcnow


def new(
    n: int, *, tenant: str = "default", template: TemplateType = TemplateType.TEST
) -> NewMessage:
    return NewMessage(
        tenant=tenant,
        recipient=f"user{n % 3}@example.org",
        template_type=template,
        template_data={},
        subject=f"subject {n}",
        body="body",
        html_body=None,
        mime=b"Subject: x\r\n\r\nbody\r\n",
    )


async def test_activity_counts_by_tenant_status_and_slice(any_store: Store) -> None:
    await any_store.enqueue([new(0), new(1), new(2, tenant="acme")], max_attempts=2, ttl=0)
    claimed = await any_store.claim(worker="w", limit=3, lease=60)
    by_tenant = {m.tenant: m for m in claimed}
    default_ids = [m.id for m in claimed if m.tenant == "default"]
    await any_store.complete(
        [
            Completion(default_ids[0], Status.SENT),
            Completion(default_ids[1], Status.ABANDONED, error=diagnose("auth_failed")),
            Completion(
                by_tenant["acme"].id,
                Status.QUEUED,
                error=diagnose("greylisted"),
                next_attempt_at=utcnow() + timedelta(minutes=5),
            ),
        ],
        worker="w",
    )
    since = utcnow() - timedelta(hours=24)
    activity = await any_store.activity(since=since, step=timedelta(hours=1))
    counts = {(c.tenant, c.status, c.slot): c.count for c in activity.counts}
    assert counts == {
        ("default", Status.SENT, 23): 1,
        ("default", Status.ABANDONED, 23): 1,
        ("acme", Status.QUEUED, 23): 1,
    }
    failures = {(f.tenant, f.code, f.status): f.count for f in activity.failures}
    assert failures == {
        ("default", "auth_failed", Status.ABANDONED): 1,
        ("acme", "greylisted", Status.QUEUED): 1,
    }
    later = await any_store.activity(since=utcnow() + timedelta(seconds=1), step=timedelta(1))
    assert later.counts == [] and later.failures == []
    with pytest.raises(ValueError):
        await any_store.activity(since=since, step=timedelta(seconds=1))


async def test_combined_filters_page_through_the_same_rows(any_store: Store) -> None:
    tenants = ["default", "acme"]
    templates = [TemplateType.TEST, TemplateType.LOGIN_CODE_VALID]
    batch = [new(n, tenant=tenants[n % 2], template=templates[(n // 2) % 2]) for n in range(24)]
    created = [m for m, _ in await any_store.enqueue(batch, max_attempts=1, ttl=0)]
    claimed = await any_store.claim(worker="w", limit=8, lease=60)
    await any_store.complete(
        [Completion(m.id, Status.SENT) for m in claimed[:4]]
        + [Completion(m.id, Status.ABANDONED, error=diagnose("auth_failed")) for m in claimed[4:]],
        worker="w",
    )
    everything = {m.id: m for m in await any_store.list_messages(MessageFilter(limit=100))}
    assert set(everything) == {m.id for m in created}
    options = {
        "tenant": [None, "acme"],
        "status": [None, Status.QUEUED, Status.ABANDONED],
        "template_type": [None, "login_code_valid"],
        "recipient": [None, "user1@example.org"],
    }
    for values in itertools.product(*options.values()):
        query = dict(zip(options, values, strict=True))
        expected = [
            m
            for m in sorted(everything.values(), key=lambda m: (m.created_at, m.id), reverse=True)
            if all(
                v is None
                or getattr(m, k) == v
                or (k == "template_type" and m.template_type.value == v)
                for k, v in query.items()
            )
        ]
        seen: list[str] = []
        before = None
        while True:
            page = await any_store.list_messages(MessageFilter(**query, limit=3, before=before))
            seen += [m.id for m in page]
            if len(page) < 3:
                break
            before = (page[-1].created_at, page[-1].id)
        assert seen == [m.id for m in expected], query
