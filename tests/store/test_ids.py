"""Message and dispatch ids: valid UUIDs (version 7) that sort by the time they were made."""

from __future__ import annotations

import time
import uuid

from postroom.store.base import new_id


def test_ids_are_version_7_uuids_and_unique() -> None:
    ids = [new_id() for _ in range(10_000)]
    assert len(set(ids)) == len(ids)
    for value in ids[:100]:
        parsed = uuid.UUID(value)
        assert str(parsed) == value
        assert parsed.version == 7
        assert parsed.variant == uuid.RFC_4122


def test_ids_made_later_sort_later_and_carry_the_time() -> None:
    before = time.time()
    first = new_id()
    time.sleep(0.003)
    second = new_id()
    assert first < second
    millis = uuid.UUID(first).int >> 80
    assert abs(millis / 1000 - before) < 1
