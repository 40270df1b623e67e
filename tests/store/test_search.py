"""Naming messages as people do, on every store: a short id or any unique start or end of the
id, and a recipient in any case or a whole domain."""

from __future__ import annotations

from dataclasses import replace

import pytest
from store_support import new

from postroom.errors import InputError, NotFoundError
from postroom.store import MessageFilter, Store
from postroom.store.search import SHORT_ID, resolve_message_id, short_id


async def test_a_short_id_or_a_unique_start_or_end_finds_the_message(any_store: Store) -> None:
    stored = await any_store.enqueue([new(n) for n in range(3)], max_attempts=3, ttl=0)
    ids = [m.id for m, _ in stored]
    target = ids[1]
    assert len(short_id(target)) == SHORT_ID == 12
    assert await resolve_message_id(any_store, short_id(target)) == target
    assert await resolve_message_id(any_store, short_id(target).upper()) == target
    assert await resolve_message_id(any_store, target[-6:]) == target
    assert await resolve_message_id(any_store, target) == target
    # The ids of one batch share their clock prefix: a short start names them all.
    with pytest.raises(InputError, match="several messages"):
        await resolve_message_id(any_store, target[:4])
    with pytest.raises(NotFoundError):
        await resolve_message_id(any_store, "ffffffffffff" if target[-1] != "f" else "eeeeeeeeeeee")
    with pytest.raises(NotFoundError, match="short form"):
        await resolve_message_id(any_store, "abc")
    with pytest.raises(NotFoundError, match="short form"):
        await resolve_message_id(any_store, "50%_")


async def test_recipients_match_in_any_case_and_by_domain(any_store: Store) -> None:
    mixed = replace(new(1), recipient="Jane.Doe@Example.ORG")
    other = replace(new(2), recipient="joe@example.net")
    lookalike = replace(new(3), recipient="eve@notexample.org")
    await any_store.enqueue([mixed, other, lookalike], max_attempts=3, ttl=0)

    async def found(recipient: str, **more: object) -> list[str]:
        query = MessageFilter(recipient=recipient, **more)  # type: ignore[arg-type]
        return [m.recipient for m in await any_store.list_messages(query)]

    assert await found("jane.doe@example.org") == ["Jane.Doe@Example.ORG"]
    assert await found(" JANE.DOE@EXAMPLE.ORG ") == ["Jane.Doe@Example.ORG"]
    assert await found("@example.org") == ["Jane.Doe@Example.ORG"]
    assert await found("@EXAMPLE.NET") == ["joe@example.net"]
    assert await found("@example.org", tenant="default") == ["Jane.Doe@Example.ORG"]
    assert await found("%@example.org") == []
