"""What an enqueue reads on PostgreSQL does not grow with what is stored: each of its queries
reads index ranges of about its own batch's size, never the messages of the dedupe window."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

import pytest
from sqlalchemy import Engine, create_engine, event
from store_support import new

from postroom.store import Budget, open_store
from postroom.store.sql.engine import postgres_url

FOLD = {"default": Budget(1, 0, dedupe_window=60)}
LIMITS = {"default": Budget(1, 0, dedupe_window=60, cooldown=30, per_hour=10)}


def hashed(n: int) -> Any:
    return replace(new(n), content_hash=f"{n:064x}")


def rows_read(plan: dict[str, Any]) -> int:
    """How many rows of the messages table the scans in ``plan`` looked at, all loops."""
    own = 0
    if plan.get("Relation Name") == "messages":
        looked = plan["Actual Rows"] + plan.get("Rows Removed by Filter", 0)
        own = (looked + plan.get("Rows Removed by Index Recheck", 0)) * plan["Actual Loops"]
    return own + sum(rows_read(p) for p in plan.get("Plans", []))


@pytest.mark.parametrize("rules", [FOLD, LIMITS], ids=["duplicates", "recipient-limits"])
async def test_an_enqueue_reads_its_batch_not_the_window(
    pg_dsn: str, rules: dict[str, Budget]
) -> None:
    store = open_store(pg_dsn)
    await store.migrate()
    try:
        # 4,000 messages inside the dedupe window, on a table not analyzed yet.
        for start in range(0, 4000, 500):
            batch = [hashed(n) for n in range(start, start + 500)]
            await store.enqueue(batch, max_attempts=1, ttl=0, budgets=rules)
        seen: list[tuple[str, Any]] = []

        def note(_c: Any, _cur: Any, statement: str, params: Any, _ctx: Any, many: bool) -> None:
            if statement.lstrip().upper().startswith("SELECT") and not many:
                seen.append((statement, params))

        event.listen(Engine, "before_cursor_execute", note)  # every engine: the store's
        try:
            await store.enqueue(
                [hashed(n) for n in range(10_000, 10_100)], max_attempts=1, ttl=0, budgets=rules
            )
        finally:
            event.remove(Engine, "before_cursor_execute", note)
        assert seen, "the enqueue read nothing"
        engine = create_engine(postgres_url(pg_dsn))
        with engine.connect() as conn:
            driver = conn.connection.driver_connection
            assert driver is not None
            for statement, params in seen:
                [[plan]] = driver.execute(
                    "EXPLAIN (ANALYZE, FORMAT JSON) " + statement, params
                ).fetchall()
                plan = plan if isinstance(plan, list) else json.loads(plan)
                assert rows_read(plan[0]["Plan"]) <= 200, statement
        engine.dispose()
    finally:
        await store.close()
